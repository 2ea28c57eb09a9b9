"""The `${mlplab_...:}` resolvers the configs use."""

from __future__ import annotations

from omegaconf import OmegaConf

from mlplab.config.location import PROJECT_ROOT
from mlplab.config.names import config_choices, run_name, sweep_group


def gpus_per_node(accelerator: str, devices: int | str) -> int:
    """The GPUs a cluster job asks for on each node: none for the CPU, one per device otherwise."""
    if str(accelerator).lower() in ("cpu", "mps"):
        return 0
    try:
        return max(int(devices), 1)
    except (TypeError, ValueError):
        return 1  # auto or a list: one GPU


def register_resolvers() -> None:
    """Register the resolvers (again: idempotent), before a config with them is resolved."""
    # `${mlplab_root:}` in conf/paths: the project folder, wherever the command is launched from
    OmegaConf.register_new_resolver("mlplab_root", lambda: str(PROJECT_ROOT), replace=True)
    # names for W&B (conf/logger/wandb.yaml): what the run changed, which sweep it belongs to, the groups' choices
    OmegaConf.register_new_resolver("mlplab_run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("mlplab_sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("mlplab_choices", config_choices, replace=True)
    # conf/hydra/launcher/slurm.yaml: a job asks for the GPUs its trainer uses (none with accelerator=cpu)
    OmegaConf.register_new_resolver("mlplab_gpus_per_node", gpus_per_node, replace=True)
