"""The LightningModule: one network, one task, an optimizer and an optional scheduler."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, Metric

from mlplab.models.tasks import Task

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class StageMetrics(nn.Module):
    """The epoch's mean loss and the task's metrics for one stage (train, val or test)."""

    def __init__(self, task: Task, stage: str) -> None:
        super().__init__()
        self.loss = MeanMetric()
        self.values = task.metric_collection(stage)


class MLPModule(L.LightningModule):
    """Trains `network` on `task`.

    Args:
        network: any nn.Module mapping a batch of inputs to outputs (mlplab.models.MLP by default).
        task: loss, metrics and prediction (mlplab.models.tasks).
        optimizer: a callable taking the parameters (a Hydra `_partial_` optimizer).
        scheduler: Lightning's lr_scheduler dict, except that `scheduler` is a callable taking the
            optimizer; None for a constant learning rate.
    """

    def __init__(
        self,
        network: nn.Module,
        task: Task,
        optimizer: OptimizerFactory,
        scheduler: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.task = task
        self.optimizer_factory = optimizer
        self.scheduler_config = dict(scheduler) if scheduler else None
        # one set per stage: torchmetrics accumulates over the epoch (and across processes)
        self.train_metrics = StageMetrics(task, "train")
        self.val_metrics = StageMetrics(task, "val")
        self.test_metrics = StageMetrics(task, "test")
        # a checkpoint saved mid-epoch (Ctrl-C, SIGTERM) keeps the epoch's running training metrics, so the
        # resumed epoch reports the same numbers as an uninterrupted one
        for metric in self.train_metrics.modules():
            if isinstance(metric, Metric):
                metric.persistent(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/loss_epoch", self.train_metrics.loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")
        self.log("val/loss", self.val_metrics.loss, on_epoch=True, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")
        self.log("test/loss", self.test_metrics.loss, on_epoch=True)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        output = self(x)
        loss = self.task.loss(output, y)
        metrics: StageMetrics = getattr(self, f"{stage}_metrics")
        # weight by batch size so the epoch loss is the mean over samples, whatever the last batch's size
        metrics.loss.update(loss.detach(), weight=y.shape[0])
        metrics.values.update(self.task.predict(output.detach()), y)
        self.log_dict(metrics.values, on_step=False, on_epoch=True, prog_bar=stage == "val")
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_config is None:
            return optimizer
        make_scheduler = self.scheduler_config["scheduler"]
        # the step count depends on the data and trainer: a config leaves `total_steps` null to get it
        if isinstance(make_scheduler, partial) and make_scheduler.keywords.get("total_steps", 0) is None:
            make_scheduler = partial(make_scheduler, total_steps=int(self.trainer.estimated_stepping_batches))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {**self.scheduler_config, "scheduler": make_scheduler(optimizer)},
        }

    def on_train_epoch_start(self) -> None:
        # a new epoch (Lightning skips this hook when it resumes one mid-way): drop any running sums restored
        # from a checkpoint saved at the end of the previous epoch
        self.train_metrics.loss.reset()
        self.train_metrics.values.reset()

    def on_train_start(self) -> None:
        num_parameters = sum(p.numel() for p in self.network.parameters())
        for logger in self.loggers:
            logger.log_metrics({"model/params": float(num_parameters)}, step=0)
