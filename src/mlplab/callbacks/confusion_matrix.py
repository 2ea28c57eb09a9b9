"""The test split's confusion matrix, with class names."""

from __future__ import annotations

import lightning as L
import torch
from matplotlib.figure import Figure

from mlplab.callbacks.datamodule_views import predict_split
from mlplab.callbacks.drawing import new_figure
from mlplab.callbacks.picture import PictureCallback
from mlplab.models.tasks import ClassificationTask


def confusion_counts(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """counts[true, predicted] over all samples, in one bincount."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def confusion_figure(counts: torch.Tensor, class_names: list[str]) -> Figure:
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2)
    figure = new_figure(size + 1, size)
    ax = figure.add_subplot()
    shown = ax.imshow(counts.numpy(), cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(n), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    ax.set_title(f"test confusion matrix: {counts.sum().item()} samples, accuracy {accuracy:.2%}")
    if n <= 30:  # numbers stay legible up to about this many classes
        threshold = counts.max().item() / 2
        for (true, predicted), count in zip(
            torch.cartesian_prod(torch.arange(n), torch.arange(n)).tolist(), counts.flatten().tolist()
        ):
            ax.text(
                predicted,
                true,
                count,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > threshold else "black",
            )
    figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    return figure


class ConfusionMatrix(PictureCallback):
    """After testing a classifier: counts of each (true, predicted) class pair on the test split.

    Saved as <dirpath>/test/confusion_matrix.png; W&B key `test/confusion_matrix`.
    """

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        task = pl_module.task
        if not trainer.is_global_zero or not isinstance(task, ClassificationTask):
            return
        _, targets, outputs = predict_split(trainer, pl_module)
        counts = confusion_counts(targets, task.predict(outputs), task.num_classes)
        self.publish(trainer, "test/confusion_matrix", confusion_figure(counts, task.class_names))
