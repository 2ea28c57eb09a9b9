"""Hydra's basic and Optuna sweepers, made resumable: a rerun into a sweep's folder finishes that sweep.

Thin plugins (Hydra finds plugins in the `hydra_plugins` namespace package only); the logic is in
mlplab.sweeps.resume and mlplab.sweeps.optuna. Selected in conf/hydra/default.yaml (`mlplab_basic`) and
conf/hparams_search/*.yaml (`mlplab_optuna`).
"""

from dataclasses import dataclass, field
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


@dataclass
class ResumableBasicSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.mlplab_sweepers.sweepers.ResumableBasicSweeper"
    rerun: list[str] = field(default_factory=list)  # statuses run again on a rerun: failed, diverged


@dataclass
class ResumableOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.mlplab_sweepers.sweepers.ResumableOptunaSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlplab_basic", node=ResumableBasicSweeperConf, provider="mlplab"
)
ConfigStore.instance().store(
    group="hydra/sweeper", name="mlplab_optuna", node=ResumableOptunaSweeperConf, provider="mlplab"
)


class ResumableBasicSweeper(BasicSweeper):
    """BasicSweeper whose launcher gets only the jobs still to run, each with its number (mlplab.sweeps.resume)."""

    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None, rerun: Any = ()) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.rerun = [str(status) for status in rerun or ()]

    def sweep(self, arguments: list[str]) -> Any:
        from mlplab.sweeps.resume import resumable_basic_sweep

        return resumable_basic_sweep(self, arguments)


class ResumableOptunaSweeper(OptunaSweeper):
    """OptunaSweeper that continues a stored study toward n_trials in all and numbers jobs after the folder's."""

    def __init__(
        self, *args: Any, **kwargs: Any
    ) -> None:  # OptunaSweeper's arguments; its __init__ only makes the impl
        from mlplab.sweeps.optuna import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(*args, **kwargs)
