"""The LightningModule: one network, one task, an optimizer and an optional scheduler."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, Metric

from mlplab.models.mlp import count_parameters
from mlplab.models.tasks import Task
from mlplab.utils.errors import ConfigError
from mlplab.utils.steps import is_logging_step

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
KEPT_TRAIN_STEPS = "mlplab_kept_train_steps"  # checkpoint key: the epoch's training steps not yet in the metrics


class StageMetrics(nn.Module):
    """The epoch's mean loss and the task's metrics for one stage (train, val or test).

    A step only keeps its loss, predictions and targets (on the device: no sync, ~10 us where updating
    torchmetrics costs ~80 us); the metrics are updated with many steps at once.
    """

    flush_every = 64  # steps kept before updating the metrics: bounds the memory held

    def __init__(self, task: Task, stage: str, loss_name: str | None = None) -> None:
        super().__init__()
        self.task = task
        self.loss_name = loss_name or f"{stage}/loss"
        # no NaN check: it syncs with the GPU, and a NaN loss should show in the epoch's mean anyway
        self.loss = MeanMetric(nan_strategy="disable")
        self.values = task.metric_collection(stage)
        self._kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        # steps kept since the last update. The metrics are updated every `flush_every` steps of the epoch and at
        # its end, never elsewhere: a float sum depends on how it is chunked, and a resumed epoch must chunk its
        # steps exactly as an uninterrupted one (a checkpoint carries the kept steps instead: `kept_state`)
        self._kept_steps = 0

    def keep(self, loss: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> None:
        # the batch's mean loss once per sample, so the epoch loss is the mean over samples whatever the
        # last batch's size (not `weight=`: with nan_strategy="disable" torchmetrics 1.9 ignores weights)
        self._kept.append((loss.detach().expand(len(target)), self.task.predict(output.detach()), target))
        self._kept_steps += 1
        if self._kept_steps == self.flush_every:
            self.update()

    def update(self) -> None:
        """Update the metrics with the steps kept so far (call it at the epoch's end)."""
        if self._kept:
            losses, predictions, targets = self._concatenated()
            self._kept.clear()
            self.loss.update(losses)
            self.values.update(predictions, targets)
        self._kept_steps = 0

    def reset(self) -> None:
        """Forget the epoch: the kept steps and the metrics' sums."""
        self._kept.clear()
        self._kept_steps = 0
        self.loss.reset()
        self.values.reset()

    def kept_state(self) -> dict[str, Any]:
        """The steps kept since the last update, for a checkpoint (plain tensors: loadable with weights_only)."""
        if not self._kept:
            return {"steps": 0}
        losses, predictions, targets = self._concatenated()
        return {"steps": self._kept_steps, "losses": losses, "predictions": predictions, "targets": targets}

    def restore_kept(self, state: Mapping[str, Any]) -> None:
        """Continue from `kept_state()`'s steps: concatenated with the next ones, they make the same tensors."""
        self._kept_steps = int(state.get("steps", 0))
        device = self.loss.device
        self._kept = (
            [tuple(state[name].to(device) for name in ("losses", "predictions", "targets"))] if self._kept_steps else []
        )

    def _concatenated(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        losses, predictions, targets = (torch.cat(parts) for parts in zip(*self._kept))
        return losses, predictions, targets


class SupervisedModule(L.LightningModule):
    """Trains `network` on `task`.

    Args:
        network: any nn.Module mapping a batch of inputs to outputs (mlplab.models.MLP by default).
        task: loss, metrics and prediction (mlplab.models.tasks).
        optimizer: a callable taking the parameters (a Hydra `_partial_` optimizer).
        scheduler: Lightning's lr_scheduler dict, except that `scheduler` is a callable taking the
            optimizer; None for a constant learning rate.
        compile: `torch.compile` the network (True, or a mapping of torch.compile's options such as
            `{mode: max-autotune}`); False runs it eagerly.
    """

    def __init__(
        self,
        network: nn.Module,
        task: Task,
        optimizer: OptimizerFactory,
        scheduler: Mapping[str, Any] | None = None,
        compile: bool | Mapping[str, Any] = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.compile_options = (dict(compile) if isinstance(compile, Mapping) else {}) if compile else None
        self._compiled = False
        self.task = task
        self.optimizer_factory = optimizer
        self.scheduler_config = dict(scheduler) if scheduler else None
        # one set per stage: torchmetrics accumulates over the epoch (and across processes)
        self.train_metrics = StageMetrics(task, "train", loss_name="train/loss_epoch")  # train/loss is per step
        self.val_metrics = StageMetrics(task, "val")
        self.test_metrics = StageMetrics(task, "test")
        # a checkpoint saved mid-epoch (Ctrl-C, SIGTERM) keeps the epoch's running training metrics, so the
        # resumed epoch reports the same numbers as an uninterrupted one
        for metric in self.train_metrics.modules():
            if isinstance(metric, Metric):
                metric.persistent(True)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` around every hook call, ~40 times a step; nn.Module's
        # __setattr__ checks for parameters, modules and buffers first (~0.1 ms a step). A string never is one.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_model(self) -> None:
        # compiled in place, once (fit and test both call this): the state_dict keeps its keys, so
        # checkpoints load into an eager network
        if self.compile_options is not None and not self._compiled:
            self.network.compile(**self.compile_options)
            self._compiled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, self.train_metrics)
        if is_logging_step(self.trainer):
            # not prog_bar=True: Lightning would then read the value back every step (mlplab's ProgressBar shows it)
            self.log("train/loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_metrics)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.test_metrics)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], metrics: StageMetrics) -> torch.Tensor:
        x, y = batch
        output = self(x)
        loss = self.task.loss(output, y)
        metrics.keep(loss, output, y)
        return loss

    # Epoch metrics are logged once, at the epoch's end: logging the metric objects makes Lightning
    # compute them (synchronised across processes) and reset them for the next epoch.
    def on_train_epoch_end(self) -> None:
        self._log_epoch(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.val_metrics, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics)

    def _log_epoch(self, metrics: StageMetrics, prog_bar: bool = False) -> None:
        metrics.update()
        self.log(metrics.loss_name, metrics.loss, prog_bar=prog_bar)
        self.log_dict(metrics.values, prog_bar=prog_bar)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_config is None:
            return optimizer
        # estimated_stepping_batches loads the training data early, before a resumed run restores where its epoch
        # stood in the data: ask only when the schedule needs the step count
        total_steps = self.trainer.estimated_stepping_batches if self.schedule_needs_total_steps else 0
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler(optimizer, total_steps)}

    @property
    def schedule_needs_total_steps(self) -> bool:
        """Whether the scheduler config leaves `total_steps` null for the run's step count to fill (OneCycleLR)."""
        make_scheduler = self.scheduler_config["scheduler"] if self.scheduler_config else None
        return isinstance(make_scheduler, partial) and make_scheduler.keywords.get("total_steps", 0) is None

    def lr_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: float | int) -> dict[str, Any]:
        """Lightning's lr_scheduler dict for `optimizer`; `total_steps` (the run's optimizer steps) fills a null
        `total_steps` (OneCycleLR). Also used by stacked sweeps (mlplab.sweeps.stacked) for each member's schedule."""
        if self.scheduler_config is None:
            raise ValueError("this module has no scheduler (scheduler=none)")
        make_scheduler = self.scheduler_config["scheduler"]
        if self.schedule_needs_total_steps:  # the step count depends on the data and trainer
            _check_warm_up(make_scheduler.keywords, int(total_steps))  # the config's settings
            make_scheduler = partial(make_scheduler, total_steps=int(total_steps))
        return {**self.scheduler_config, "scheduler": make_scheduler(optimizer)}

    def on_train_epoch_start(self) -> None:
        # a new epoch (Lightning skips this hook when it resumes one mid-way): drop any running sums and kept
        # steps restored from a checkpoint saved at the end of the previous epoch
        self.train_metrics.reset()

    # A checkpoint saved mid-epoch (Ctrl-C, SIGTERM) carries the training steps not yet counted in the metrics,
    # so the resumed epoch sums them in the same chunks as an uninterrupted one: the same numbers, bit for bit
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEPT_TRAIN_STEPS] = self.train_metrics.kept_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_metrics.restore_kept(checkpoint.get(KEPT_TRAIN_STEPS, {}))

    def on_train_start(self) -> None:
        # a schedule that asked for the step count (OneCycleLR's total_steps) made Lightning build the training loader
        # before a resume restored the loops, and Lightning loads a resumed epoch's place in the data only into a
        # loader it builds later: load it now, or the epoch restarts its data (private, Lightning 2.6 as pinned;
        # tests/checkpoints/test_resume.py's exact-resume test with scheduler=onecycle fails without it)
        self.trainer.fit_loop._load_combined_loader_states()
        for logger in self.loggers:
            logger.log_metrics(self.size_metrics(), step=0)

    def size_metrics(self) -> dict[str, float]:
        """What a run logs of its network's size when its fit starts (a stacked member's too)."""
        return {"model/params": float(count_parameters(self.network))}


def _check_warm_up(settings: dict[str, Any], total_steps: int) -> None:
    """OneCycleLR divides by zero (and a shorter warm-up means nothing) unless its warm-up lasts more than one step."""
    pct_start = float(settings.get("pct_start", 0.3))
    if pct_start * total_steps <= 1:
        raise ConfigError(
            f"scheduler=onecycle warms up for pct_start x total_steps = {pct_start} x {total_steps} = "
            f"{pct_start * total_steps:g} step(s) of this run's {total_steps}: it needs more than one. Train more "
            "steps (more trainer.max_epochs or a smaller data.batch_size), raise scheduler.scheduler.pct_start, or "
            "pick another schedule (scheduler=cosine)"
        )
