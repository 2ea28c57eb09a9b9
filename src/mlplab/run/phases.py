"""Which phase a run is in, for the stop a signal causes (mlplab.utils.stops): loading data, fit, validation, test,
the baselines' and the pictures' hooks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import lightning as L

from mlplab.run.hooks import BATCH_HOOKS
from mlplab.utils import stops


class PhaseTracker(L.Callback):
    """Follows fit, validation and test; raises a stop that was asked for but not acted on when training ends."""

    def __init__(self) -> None:
        self._before_validation = "fit"

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stops.set_phase("fit")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._before_validation = stops.phase()
        stops.set_phase("validation")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stops.set_phase(self._before_validation)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stops.raise_pending()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stops.set_phase("test")


def _in_phase(name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(hook)
    def run(*args: Any, **kwargs: Any) -> Any:
        with stops.in_phase(name):
            return hook(*args, **kwargs)

    return run


def _callback_phase(callback: L.Callback) -> str | None:
    from mlplab.callbacks.baselines import Baselines
    from mlplab.callbacks.loss_curves import LossCurves
    from mlplab.callbacks.picture import PictureCallback

    if isinstance(callback, Baselines):
        return "baselines"
    if isinstance(callback, (PictureCallback, LossCurves)):
        return "pictures"
    return None


def track_phases(trainer: L.Trainer, datamodule: L.LightningDataModule) -> None:
    """Let `phase()` follow the run: loading data, fit, validation, test, the baselines' and pictures' hooks.

    The hooks are wrapped on the instances (Lightning looks them up with getattr); per-batch hooks are left
    alone, so a training step costs what it did.
    """
    stops.forget_signals()  # a signal before this raised at once: what is pending from here on is this run's
    for name in ("prepare_data", "setup"):
        setattr(datamodule, name, _in_phase("data", getattr(datamodule, name)))
    for callback in trainer.callbacks:
        name = _callback_phase(callback)
        if name is None:
            continue
        for hook in dir(L.Callback):
            own = getattr(type(callback), hook, None)
            if (
                hook.startswith("on_")
                and hook not in BATCH_HOOKS
                and callable(own)
                and own is not getattr(L.Callback, hook)
            ):
                setattr(callback, hook, _in_phase(name, getattr(callback, hook)))
    trainer.callbacks.append(PhaseTracker())
