"""Hydra's basic sweeper, made resumable: a rerun into a sweep's folder finishes that sweep.

A thin plugin (Hydra finds plugins in the `hydra_plugins` namespace package only); the logic is in
mlplab.sweeps.resume. Selected in conf/hydra/default.yaml (`mlplab_basic`). mlplab's Optuna sweeper
(`mlplab_optuna`, conf/hparams_search/*.yaml) is in optuna_sweeper.py.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class ResumableBasicSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.mlplab_sweepers.sweepers.ResumableBasicSweeper"
    rerun: list[str] = field(default_factory=list)  # statuses run again on a rerun: failed, diverged


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlplab_basic", node=ResumableBasicSweeperConf, provider="mlplab"
)


class ResumableBasicSweeper(BasicSweeper):
    """BasicSweeper whose launcher gets only the jobs still to run, each with its number (mlplab.sweeps.resume)."""

    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None = None, rerun: Any = ()) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.rerun = [str(status) for status in rerun or ()]

    def sweep(self, arguments: list[str]) -> Any:
        from mlplab.sweeps.resume import resumable_basic_sweep

        return resumable_basic_sweep(self, arguments)
