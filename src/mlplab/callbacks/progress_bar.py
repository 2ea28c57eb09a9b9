"""Lightning's TQDM progress bar, showing the training loss without a host sync every step; in a file (not a
terminal), one line per epoch instead."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

log = logging.getLogger(__name__)


class ProgressBar(TQDMProgressBar):
    """TQDMProgressBar that also shows the latest logged `train/loss`; where stdout is not a terminal, it logs one
    line per epoch (the epoch, its training and validation metrics, its time) instead of drawing bars.

    A value logged with `prog_bar=True` stays in Lightning's step results, and Lightning turns it into a
    Python number after every batch (`.item()`): on a GPU, a wait for the device each step, even for a value
    logged only every 50 steps. The module logs the loss for the loggers only; the bar reads it when it redraws.

    Args:
        epoch_lines: True: lines, no bars; False: bars; None: lines unless stdout is a terminal (a bar redrawn
            in a log file is thousands of carriage returns).
    """

    def __init__(
        self, refresh_rate: int = 50, loss_key: str = "train/loss", epoch_lines: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.loss_key = loss_key
        self.epoch_lines = not sys.stdout.isatty() if epoch_lines is None else epoch_lines
        if self.epoch_lines:
            self.disable()
        self._epoch_start = 0.0
        self._finished: tuple[int, float] | None = None  # (epoch, seconds) not logged yet

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = trainer.callback_metrics.get(self.loss_key)
        if loss is not None and self.loss_key not in metrics:
            metrics[self.loss_key] = f"{loss.item():.3g}"
        return metrics

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # a run resumed mid-epoch goes on without on_train_epoch_start: its first epoch is timed from here
        self._epoch_start = time.perf_counter()

    # The epoch's metrics are complete only after the module's own on_train_epoch_end, which Lightning calls after
    # this callback's: the line of an epoch is written when the next one starts, or training ends.
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if not self.epoch_lines:
            self.train_progress_bar.set_description(epoch_name(trainer, trainer.current_epoch))
        else:
            self._log_finished_epoch(trainer)
            self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.epoch_lines:
            self._finished = (trainer.current_epoch, time.perf_counter() - self._epoch_start)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.epoch_lines:
            self._log_finished_epoch(trainer)

    def _log_finished_epoch(self, trainer: L.Trainer) -> None:
        if self._finished is None or not trainer.is_global_zero:
            return
        epoch, seconds = self._finished
        self._finished = None
        log.info("%s", epoch_line(trainer, epoch, seconds, self.loss_key))


def epoch_name(trainer: L.Trainer, epoch: int) -> str:
    """`Epoch 2/4`: Lightning's 0-based epoch, as in the checkpoint names (best-epoch002.ckpt), over the last epoch's
    number (as Lightning's rich progress bar writes it)."""
    last = f"/{trainer.max_epochs - 1}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    return f"Epoch {epoch}{last}"


def epoch_line(trainer: L.Trainer, epoch: int, seconds: float, loss_key: str = "train/loss") -> str:
    """`Epoch 2/4: train/loss 0.1234, train/acc 0.9612, val/loss 0.1102, val/acc 0.9671 (2.4 s)` (see epoch_name)."""
    metrics = dict(trainer.callback_metrics)
    if f"{loss_key}_epoch" in metrics:  # the epoch's mean, not the last logged step
        metrics[loss_key] = metrics.pop(f"{loss_key}_epoch")
    shown = ", ".join(
        f"{name} {_number(float(value))}"
        for name, value in sorted(metrics.items(), key=_train_then_val)
        if name.split("/")[0] in ("train", "val") and name.count("/") == 1
    )
    return f"{epoch_name(trainer, epoch)}: {shown} ({seconds:.1f} s)"


def _number(value: float) -> str:
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.3e}"


def _train_then_val(item: tuple[str, Any]) -> tuple[int, bool, str]:
    name = item[0]
    return (0 if name.startswith("train/") else 1, not name.endswith("/loss"), name)
