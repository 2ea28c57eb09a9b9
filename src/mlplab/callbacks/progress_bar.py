"""Lightning's TQDM progress bar, showing the training loss without a host sync every step."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """TQDMProgressBar that also shows the latest logged `train/loss`.

    A value logged with `prog_bar=True` stays in Lightning's step results, and Lightning turns it into a
    Python number after every batch (`.item()`): on a GPU, a wait for the device each step, even for a value
    logged only every 50 steps. The module logs the loss for the loggers only; the bar reads it when it redraws.
    """

    def __init__(self, refresh_rate: int = 50, loss_key: str = "train/loss", **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.loss_key = loss_key

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = trainer.callback_metrics.get(self.loss_key)
        if loss is not None and self.loss_key not in metrics:
            metrics[self.loss_key] = f"{loss.item():.3g}"
        return metrics
