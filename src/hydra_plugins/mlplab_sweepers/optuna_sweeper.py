"""hydra/sweeper=mlplab_optuna: mlplab's own Optuna sweeper (Optuna >= 5; pruning; several processes, one study).

A thin plugin (Hydra finds plugins in the `hydra_plugins` namespace package only); the logic is in
mlplab.sweeps.optuna. Its settings are hydra-optuna-sweeper's, so configs written for that keep working, plus
`directions`, `pruner` and `rerun`.

No `from __future__ import annotations` here: Hydra's plugin scan loads this module without putting it in
sys.modules, and dataclasses look string annotations up there.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING

SAMPLERS = {  # hydra/sweeper/sampler=<name>: each only names its class; its settings go beside (seed: 42)
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "gp": "optuna.samplers.GPSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
    "grid": "optuna.samplers.GridSampler",
}


@dataclass
class MlplabOptunaSweeperConf:
    _target_: str = "hydra_plugins.mlplab_sweepers.optuna_sweeper.MlplabOptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner are made by the search, GridSampler with the grid of params
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: Any = MISSING  # any Optuna sampler by _target_, with its arguments
    direction: Any = "minimize"  # minimize | maximize, or a list of them (several objectives)
    directions: list[str] | None = None  # several objectives: train.py's optimized_metric is then a list too
    storage: str | None = None  # a database URL or a journal file; null: <sweep>/optuna_journal.log
    study_name: str | None = None  # null: the sweep folder's name
    n_trials: int = 20  # trials in all, over reruns and over every sweeper process on the storage
    n_jobs: int = 2  # trials per batch: asked together, launched as one batch of jobs
    max_failure_rate: float = 0.0
    params: dict[str, Any] | None = None  # the search space, in Hydra's override grammar
    custom_search_space: str | None = None  # dotpath of a function (config, trial) suggesting more
    pruner: Any = None  # an Optuna pruner by _target_ (optuna.pruners.MedianPruner); null: no pruning
    rerun: list[str] = field(default_factory=list)  # sweep_rerun=pruned: pruned trials run again to their end
    trial_id: int | None = None  # set by the sweeper in each job's config: the job's trial


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlplab_optuna", node=MlplabOptunaSweeperConf, provider="mlplab"
)
for _name, _target in SAMPLERS.items():
    ConfigStore.instance().store(
        group="hydra/sweeper/sampler", name=_name, node={"_target_": _target}, provider="mlplab"
    )


class MlplabOptunaSweeper(Sweeper):
    """Asks Optuna for trials, launches them in batches of n_jobs, tells their results (mlplab.sweeps.optuna)."""

    def __init__(self, **settings: Any) -> None:  # read again from the config in setup (interpolations resolve there)
        self.config = None
        self.launcher = None
        self.hydra_context = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.settings = config.hydra.sweeper
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Any:
        from mlplab.sweeps.optuna.search import run_search

        return run_search(self.settings, self.config, self.launcher, arguments)
