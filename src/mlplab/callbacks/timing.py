"""How long each training epoch takes and how many samples per second it trains on."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work, so the clock measures work done rather than work launched."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class EpochTimer(L.Callback):
    """Logs `time/epoch_s` (the training part of each epoch, validation left out) and `time/samples_per_s`
    (training samples of all processes per second).

    Batch sizes come from tensor shapes, and the device is synchronised only when the clock starts or stops:
    at the epoch's start and end, and around validation, never per step (and once after the first step).
    An epoch resumed mid-way (Lightning skips its on_train_epoch_start) counts what this process trains of it,
    from its first batch here.

    It also keeps what it measured, for the benchmark (mlplab.bench): each epoch's training time and samples
    (this process's), and when the first training step ended (`time.perf_counter()` of this process).
    """

    def __init__(self) -> None:
        self._elapsed = 0.0
        self._started: float | None = None
        self._samples = 0
        self.epoch_times_s: list[float] = []
        self.samples_per_epoch: list[int] = []
        self.first_step_at: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._elapsed, self._samples = 0.0, 0
        self._start(pl_module)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._started is None:  # training goes on after a validation within the epoch
            self._start(pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        self._samples += len(inputs)
        if self.first_step_at is None:
            synchronize(pl_module.device)
            self.first_step_at = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._during_training(trainer):
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(pl_module)
        self.epoch_times_s.append(self._elapsed)
        self.samples_per_epoch.append(self._samples)
        if self._elapsed > 0:
            pl_module.log("time/epoch_s", self._elapsed, on_step=False, on_epoch=True)
            pl_module.log(
                "time/samples_per_s", self._samples * trainer.world_size / self._elapsed, on_step=False, on_epoch=True
            )

    def _during_training(self, trainer: L.Trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def _start(self, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self._started = time.perf_counter()

    def _stop(self, pl_module: L.LightningModule) -> None:
        if self._started is not None:
            synchronize(pl_module.device)
            self._elapsed += time.perf_counter() - self._started
            self._started = None
