"""Composing a config in-process, as `python train.py <overrides>` would (for the benchmark and the tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers


def compose_run_config(overrides: Sequence[str], output_dir: str | Path, config_name: str = "train") -> DictConfig:
    """Compose conf/<config_name>.yaml with `overrides`, outputs in `output_dir`, without Hydra's command line."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # the config reads ${hydra:...} values
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    GlobalHydra.instance().clear()
    return cfg
