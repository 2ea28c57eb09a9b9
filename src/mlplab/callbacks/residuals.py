"""The distribution of a regression model's test errors."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from mlplab.callbacks.datamodule_views import predict_split
from mlplab.callbacks.drawing import new_figure
from mlplab.callbacks.picture import PictureCallback
from mlplab.models.tasks import RegressionTask


def residual_figure(residuals: torch.Tensor, target_name: str, bins: int) -> Figure:
    values = residuals.float().cpu().numpy()
    figure = new_figure(6, 4)
    ax = figure.add_subplot()
    ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(0, color="black", linewidth=1)
    ax.set(
        xlabel=f"predicted - true {target_name}",
        ylabel="test samples",
        title=f"test residuals: mean {values.mean():.3g}, std {values.std():.3g}",
    )
    return figure


class ResidualHistogram(PictureCallback):
    """After testing a regression model: a histogram of predicted - true on the test split.
    Saved as <dirpath>/test/residuals.png; W&B key `test/residuals`.
    """

    def __init__(self, dirpath: str, bins: int = 50) -> None:
        super().__init__(dirpath)
        self.bins = bins

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        task = pl_module.task
        if not trainer.is_global_zero or not isinstance(task, RegressionTask):
            return
        _, targets, outputs = predict_split(trainer, pl_module)
        self.publish(
            trainer, "test/residuals", residual_figure(task.predict(outputs) - targets, task.target_name, self.bins)
        )
