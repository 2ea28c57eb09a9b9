"""A PNG of the per-epoch training and validation curves in the run folder, for users without a dashboard."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mlplab.callbacks.drawing import new_figure, save_png

STAGES = ("train", "val")


def epoch_metrics(callback_metrics: dict[str, object], stage: str) -> dict[str, float]:
    """The stage's epoch-level metrics by name ("loss", "acc", ...): `train/loss_epoch` stands for `train/loss`,
    whose plain name holds the last step's value."""
    values: dict[str, float] = {}
    for key in sorted(callback_metrics, key=lambda k: k.endswith("_epoch")):  # "_epoch" keys win
        prefix, _, name = key.partition("/")
        if prefix == stage and name and not name.endswith("_step"):
            values[name.removesuffix("_epoch")] = float(callback_metrics[key])
    return values


def curves_figure(history: dict[str, dict[str, dict[int, float]]]) -> Figure:
    """One panel per metric, one line per stage, epochs on the x axis."""
    names = sorted({name for stage in history.values() for name in stage}, key=lambda n: (n != "loss", n))
    columns = min(len(names), 3)
    rows = math.ceil(len(names) / columns)
    figure = new_figure(4.2 * columns, 3.2 * rows)
    for i, name in enumerate(names):
        ax = figure.add_subplot(rows, columns, i + 1)
        for stage in STAGES:
            points = sorted(history.get(stage, {}).get(name, {}).items())
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, marker="o", markersize=3, label=stage)
        ax.set(title=name, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return figure


class LossCurves(L.Callback):
    """Records each epoch's train and validation metrics (loss and accuracy, or mse/rmse/mae/r2: whatever the task
    logs) and draws them to `path` every `every_n_epochs` epochs, at the end of training, and if training fails."""

    def __init__(self, path: str | Path, every_n_epochs: int = 10) -> None:
        self.path = Path(path)
        self.every_n_epochs = every_n_epochs
        self.history: dict[str, dict[str, dict[int, float]]] = {stage: defaultdict(dict) for stage in STAGES}
        self._validated = False
        self._unrecorded_epoch: int | None = None  # the epoch whose training metrics are not yet logged

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        # validation may skip epochs (check_val_every_n_epoch): its metrics are then last epoch's
        if self._validated:
            self._record(trainer, "val", epoch)
        self._validated = False
        # Lightning calls this hook of callbacks before the module's, which logs the epoch's training metrics:
        # callback_metrics still hold the previous epoch's. They are there once Lightning counts the epoch done.
        self._unrecorded_epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = self._record_training(trainer)
        if epoch is not None and (epoch + 1) % self.every_n_epochs == 0:
            self.draw(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record_training(trainer)
        self.draw(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._record_training(trainer)
        self.draw(trainer)

    def _record(self, trainer: L.Trainer, stage: str, epoch: int) -> None:
        for name, value in epoch_metrics(trainer.callback_metrics, stage).items():
            self.history[stage][name][epoch] = value

    def _record_training(self, trainer: L.Trainer) -> int | None:
        """Record the last finished epoch's training metrics if they are logged (a failure may come first); its
        number, or None."""
        epoch = self._unrecorded_epoch
        if epoch is None or trainer.fit_loop.epoch_progress.current.completed <= epoch:
            return None
        self._record(trainer, "train", epoch)
        self._unrecorded_epoch = None
        return epoch

    def draw(self, trainer: L.Trainer) -> Path | None:
        if not trainer.is_global_zero or not any(self.history.values()):
            return None
        return save_png(curves_figure(self.history), self.path)
