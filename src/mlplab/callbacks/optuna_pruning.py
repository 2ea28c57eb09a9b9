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

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.pruned_at_epoch is not None:
            return
        prune = False
        if trainer.is_global_zero:  # one process asks the study
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None and math.isfinite(float(value)):
                self._trial = self._trial or self._open_trial()
                self._trial.report(float(value), step=trainer.current_epoch)
                prune = self._trial.should_prune()
        if trainer.world_size > 1:
            prune = bool(trainer.strategy.broadcast(prune, src=0))  # every rank stops at the same epoch
        if prune:
            self.pruned_at_epoch = trainer.current_epoch
            trainer.should_stop = True
            if trainer.is_global_zero:
                self._trial.set_user_attr(PRUNED_AT, trainer.current_epoch)
                log.info(
                    "Trial %d pruned at epoch %d (%s %.4g): the fit stops here",
                    self._trial.number,
                    trainer.current_epoch,
                    self.monitor,
                    float(trainer.callback_metrics[self.monitor]),
                )


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
