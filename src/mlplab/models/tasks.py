"""What is learned: the loss, the metrics and how a prediction is read from the network's output.

The LightningModule holds one task and never asks which data set it is training on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection, R2Score
from torchmetrics.classification import MulticlassAccuracy


class Task:
    """Base for tasks: subclasses set `output_size` and implement the three methods."""

    output_size: int

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self) -> dict[str, Metric]:
        """Fresh metric objects, one set per stage (train/val/test)."""
        raise NotImplementedError

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metric_collection(self, stage: str) -> MetricCollection:
        return MetricCollection(self.metrics(), prefix=f"{stage}/")


class ClassificationTask(Task):
    """Cross-entropy over `num_classes` logits (with `label_smoothing`, Szegedy et al. 2016); accuracy."""

    def __init__(
        self, num_classes: int, class_names: Sequence[str] | None = None, label_smoothing: float = 0.0
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes} must be >= 2")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1)")
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes
        self.output_size = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target, label_smoothing=self.label_smoothing)

    def metrics(self) -> dict[str, Metric]:
        # labels are checked when the data is loaded; this check would sync with the GPU (torch.unique) at each update
        return {"acc": MulticlassAccuracy(self.num_classes, average="micro", validate_args=False)}

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=-1)


class RegressionTask(Task):
    """Mean squared error on one output; mse, rmse, mae and r2."""

    output_size = 1

    def __init__(self, feature_names: Sequence[str] | None = None, target_name: str = "target") -> None:
        self.feature_names = list(feature_names or [])
        self.target_name = target_name

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output.squeeze(-1), target)

    def metrics(self) -> dict[str, Metric]:
        return {
            "mse": MeanSquaredError(),
            "rmse": MeanSquaredError(squared=False),
            "mae": MeanAbsoluteError(),
            "r2": R2Score(),
        }

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.squeeze(-1)
