"""Stops a run whose training loss became NaN or infinite, naming the step and the likely cause."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from mlplab.utils.errors import DivergedError


class DivergenceCheck(L.Callback):
    """Raises DivergedError when a training loss is not finite.

    Each step's loss is kept on the device (a list append: no sync, no kernel) and the kept losses are
    checked together every `check_every_n_steps` steps and at the end of each epoch, one host sync a
    check; the epoch-end check runs before validation and checkpointing, so no diverged weights are saved.
    """

    def __init__(self, check_every_n_steps: int = 50) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._losses: list[torch.Tensor] = []  # the losses since the last check, one per batch
        self._steps: list[int] = []  # and the step each belongs to, as the loggers number steps
        self._step = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step  # before this batch's optimizer step counts

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(loss.detach().reshape(()))
            self._steps.append(self._step)
        if (batch_idx + 1) % self.check_every_n_steps == 0 or batch_idx + 1 >= trainer.num_training_batches:
            self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        if not self._losses:
            return
        losses, steps = torch.stack(self._losses), self._steps
        self._losses, self._steps = [], []
        bad = ~torch.isfinite(losses)
        # the first bad loss's place (-1: none), reduced so that under DDP every rank stops together (ranks
        # keep as many losses): the one host sync
        first = torch.where(bad.any(), bad.int().argmax(), -1)
        index = int(trainer.strategy.reduce(first, reduce_op="max"))
        if index < 0:
            return
        step = steps[index]
        loss = float(losses[index]) if bool(bad[index]) else float("nan")  # nan: another rank's loss
        lrs = sorted({group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups})
        lr = ", ".join(f"{value:g}" for value in lrs)
        raise DivergedError(
            f"Training diverged: the training loss became {loss} at step {step} (epoch {trainer.current_epoch}). "
            f"The likely cause is a learning rate too large for this model (lr={lr} at the time): try a smaller lr "
            f"(e.g. lr={lrs[0] / 10:g}), a scheduler with warm-up, or gradient clipping (trainer.gradient_clip_val=1.0)."
        )
