"""A regression model's test predictions plotted against the true values."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from mlplab.callbacks.datamodule_views import predict_split
from mlplab.callbacks.drawing import new_figure
from mlplab.callbacks.picture import PictureCallback
from mlplab.models.tasks import RegressionTask


def pred_vs_true_figure(targets: torch.Tensor, predictions: torch.Tensor, target_name: str) -> Figure:
    true, predicted = targets.float().cpu().numpy(), predictions.float().cpu().numpy()
    figure = new_figure(5, 5)
    ax = figure.add_subplot()
    ax.scatter(true, predicted, s=8, alpha=0.5, linewidths=0)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="perfect prediction")
    r2 = 1 - ((true - predicted) ** 2).sum() / max(((true - true.mean()) ** 2).sum(), 1e-12)
    ax.set(
        xlabel=f"true {target_name}",
        ylabel=f"predicted {target_name}",
        aspect="equal",
        title=f"test predictions: {len(true)} samples, R² {r2:.3f}",
    )
    ax.legend(loc="upper left")
    return figure


class PredictedVsTrue(PictureCallback):
    """After testing a regression model: predicted against true target on the test split, with the diagonal.
    Saved as <dirpath>/test/pred_vs_true.png; W&B key `test/pred_vs_true`.
    """

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        task = pl_module.task
        if not trainer.is_global_zero or not isinstance(task, RegressionTask):
            return
        _, targets, outputs = predict_split(trainer, pl_module)
        self.publish(
            trainer, "test/pred_vs_true", pred_vs_true_figure(targets, task.predict(outputs), task.target_name)
        )
