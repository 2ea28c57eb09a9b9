"""The schemas of hydra/launcher=stacked_submitit_local and stacked_slurm: Hydra's submitit_local and submitit_slurm
settings, every key, plus `max_members`, targeting the launchers in submitit_launcher.py.

No `from __future__ import annotations` here: Hydra's plugin scan loads this module without putting it in
sys.modules, and dataclasses look string annotations up there.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class StackedLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.mlplab_stacked.submitit_launcher.StackedLocalLauncher"
    max_members: int = 16


@dataclass
class StackedSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.mlplab_stacked.submitit_launcher.StackedSlurmLauncher"
    max_members: int = 16


# the schemas conf/hydra/launcher/stacked_submitit_local.yaml and stacked_slurm.yaml start from
ConfigStore.instance().store(group="hydra/launcher", name="stacked_submitit_local_schema", node=StackedLocalQueueConf)
ConfigStore.instance().store(group="hydra/launcher", name="stacked_slurm_schema", node=StackedSlurmQueueConf)
