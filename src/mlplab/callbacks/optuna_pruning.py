"""A search's trial, seen from its job: the monitored validation metric reported to the trial after every
validation, and the fit stopped, like early stopping (checkpoints kept, the best one tested), when the pruner
says so.

The sweeper (mlplab.sweeps.optuna) tells each job its trial in Hydra's config (`hydra.sweeper.trial_id`, with the
storage and study name), so a job in any process (the basic launcher's, a joblib worker, a submitit job) finds it
in the study's storage. Under DDP rank 0 asks the study and every rank stops together.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
from omegaconf import DictConfig, ListConfig, OmegaConf

from mlplab.utils.hydra_runtime import hydra_config

log = logging.getLogger(__name__)

PRUNED_AT = "pruned_at_epoch"  # the trial's user attr the sweeper reads (mlplab.sweeps.optuna.study)


class OptunaPruning(L.Callback):
    """Reports `monitor` to trial `trial_id` of `study_name` in `storage` after every validation (the step: the
    epoch) and stops the fit when `pruner` prunes it; `pruned_at_epoch` is then that epoch."""

    def __init__(self, storage: str, study_name: str, trial_id: int, monitor: str, pruner: Any = None) -> None:
        self.storage = storage
        self.study_name = study_name
        self.trial_id = int(trial_id)
        self.monitor = monitor
        self.pruner = pruner
        self.pruned_at_epoch: int | None = None
        self._trial: Any = None

    def _open_trial(self) -> Any:
        import optuna

        from mlplab.utils.optuna_storage import load_study

        pruner = optuna.pruners.NopPruner()
        if self.pruner:
            from hydra.utils import instantiate

            pruner = instantiate(self.pruner)
        return optuna.trial.Trial(load_study(self.storage, self.study_name, pruner), self.trial_id)

    def report(self, value: float | None, epoch: int) -> bool:
        """Report the monitored metric's `value` after `epoch` to the trial; whether the pruner prunes the trial now
        (then `pruned_at_epoch` is `epoch`, in this callback and in the trial's user attrs). A missing or non-finite
        value is not reported and prunes nothing."""
        if value is None or not math.isfinite(float(value)):
            return False
        self._trial = self._trial or self._open_trial()
        self._trial.report(float(value), step=epoch)
        if not self._trial.should_prune():
            return False
        self.pruned_at_epoch = epoch
        self._trial.set_user_attr(PRUNED_AT, epoch)
        log.info(
            "Trial %d pruned at epoch %d (%s %.4g): the fit stops here", self._trial.number, epoch, self.monitor, value
        )
        return True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After every validation (a stacked member's too: mlplab.sweeps.stacked.members calls it with its stand-in
        trainer). One process asks the study; under DDP every rank stops at the same epoch."""
        if trainer.sanity_checking or self.pruned_at_epoch is not None:
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            prune = self.report(float(value) if value is not None else None, trainer.current_epoch)
        if trainer.world_size > 1:
            prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            self.pruned_at_epoch = trainer.current_epoch
            trainer.should_stop = True


def _objectives(sweeper: DictConfig) -> int:
    given = sweeper.get("directions") or sweeper.get("direction")
    return len(given) if isinstance(given, ListConfig) else 1


def trial_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """[OptunaPruning] for a job of mlplab's Optuna sweeper (its Hydra config names its trial) in a study with one
    objective, pruner or not (the intermediate values are the search's learning curves); [] otherwise."""
    hydra = hydra_config()
    sweeper = hydra.get("sweeper") if hydra is not None else None
    if sweeper is None or sweeper.get("trial_id") is None or _objectives(sweeper) > 1:
        return []  # not a trial, or one of a study with several objectives (Optuna takes no intermediate values there)
    pruner = sweeper.get("pruner")
    return [
        OptunaPruning(
            storage=str(sweeper.storage),
            study_name=str(sweeper.study_name),
            trial_id=int(sweeper.trial_id),
            monitor=str(cfg.monitor.metric),
            pruner=OmegaConf.to_container(pruner, resolve=True) if isinstance(pruner, DictConfig) else pruner,
        )
    ]
