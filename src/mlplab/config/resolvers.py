"""The `${mlplab_...:}` resolvers the configs use."""

from __future__ import annotations

from omegaconf import OmegaConf

from mlplab.config.location import PROJECT_ROOT
from mlplab.config.names import config_choices, run_name, sweep_group


def register_resolvers() -> None:
    """Register the resolvers (again: idempotent), before a config with them is resolved."""
    # `${mlplab_root:}` in conf/paths: the project folder, wherever the command is launched from
    OmegaConf.register_new_resolver("mlplab_root", lambda: str(PROJECT_ROOT), replace=True)
    # names for W&B (conf/logger/wandb.yaml): what the run changed, which sweep it belongs to, the groups' choices
    OmegaConf.register_new_resolver("mlplab_run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("mlplab_sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("mlplab_choices", config_choices, replace=True)
