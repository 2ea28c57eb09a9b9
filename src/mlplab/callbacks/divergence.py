"""Stops a run whose training loss became NaN or infinite, naming the step and the likely cause."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from mlplab.utils.errors import DivergedError


class DivergenceCheck(L.Callback):
    """Raises DivergedError when a training loss is not finite.

    The first bad step is recorded on the device every step and read back only every
    `check_every_n_steps` steps and at the end of each epoch, so the check costs no host sync per
    step; the epoch-end check runs before validation and checkpointing, so no diverged weights are saved.
    """

    def __init__(self, check_every_n_steps: int = 50) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps={check_every_n_steps} must be >= 1")
        self.check_every_n_steps = check_every_n_steps
        self._step = 0
        self._bad_step: torch.Tensor | None = None  # on the device: the first step with a non-finite loss, -1 for none
        self._bad_loss: torch.Tensor | None = None  # and that loss

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._step = trainer.global_step  # the step this batch's loss belongs to, as the loggers number it

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            loss = loss.detach()
            if self._bad_step is None:
                self._bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
                self._bad_loss = torch.zeros((), dtype=loss.dtype, device=loss.device)
            first = (self._bad_step < 0) & ~torch.isfinite(loss)
            # device-side updates (the step is a scalar argument, not a host-to-device copy): no sync here
            self._bad_step = torch.where(first, self._step, self._bad_step)
            self._bad_loss = torch.where(first, loss, self._bad_loss)
        if (batch_idx + 1) % self.check_every_n_steps == 0 or batch_idx + 1 >= trainer.num_training_batches:
            self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        if self._bad_step is None:
            return
        # the one host sync, every check_every_n_steps steps; reduced so that under DDP every rank stops together
        step = int(trainer.strategy.reduce(self._bad_step.clone(), reduce_op="max"))
        if step < 0:
            return
        loss = float(self._bad_loss) if int(self._bad_step) == step else float("nan")
        lrs = sorted({group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups})
        lr = ", ".join(f"{value:g}" for value in lrs)
        raise DivergedError(
            f"Training diverged: the training loss became {loss} at step {step} (epoch {trainer.current_epoch}). "
            f"The likely cause is a learning rate too large for this model (lr={lr} at the time): try a smaller lr "
            f"(e.g. lr={lrs[0] / 10:g}), a scheduler with warm-up, or gradient clipping (trainer.gradient_clip_val=1.0)."
        )
