"""The schema of hydra/launcher=parallel: Hydra's joblib settings, every key, plus `devices` and `devices_per_job`,
targeting the launcher in isolated_joblib.py.

No `from __future__ import annotations` here: Hydra's plugin scan loads this module without putting it in
sys.modules, and dataclasses look string annotations up there.
"""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf


@dataclass
class ParallelLauncherConf(JobLibLauncherConf):
    _target_: str = "hydra_plugins.mlplab_launchers.isolated_joblib.IsolatedJoblibLauncher"
    n_jobs: int = 2
    # null: the GPUs CUDA_VISIBLE_DEVICES names (else all torch sees) when the jobs run on a GPU; a list of device ids
    devices: Any | None = None
    devices_per_job: int | None = None  # null: the jobs' trainer.devices when it is a number, else 1


ConfigStore.instance().store(group="hydra/launcher", name="parallel_schema", node=ParallelLauncherConf)
