"""Checks on a composed config, run before anything is created: bad values fail early and clearly."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mlplab.models.mlp import ACTIVATIONS, INITS, NORMS
from mlplab.utils.run_names import config_choices, run_name, sweep_group

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "conf"

# `${mlplab_root:}` in conf/paths: the repository folder, wherever the command is launched from
OmegaConf.register_new_resolver("mlplab_root", lambda: str(PROJECT_ROOT), replace=True)
# names for W&B (conf/logger/wandb.yaml): what the run changed, which sweep it belongs to, the groups' choices
OmegaConf.register_new_resolver("mlplab_run_name", run_name, replace=True)
OmegaConf.register_new_resolver("mlplab_sweep_group", sweep_group, replace=True)
OmegaConf.register_new_resolver("mlplab_choices", config_choices, replace=True)


class ConfigError(ValueError):
    """A config value is invalid; the message names the key, the value and what is valid."""


def _require(ok: bool, key: str, value: object, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {valid}")


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value found."""
    lr = cfg.get("lr")
    _require(isinstance(lr, (int, float)) and lr > 0, "lr", lr, "must be a number > 0")

    model = cfg.model
    hidden = list(model.get("hidden", []))
    _require(all(isinstance(h, int) and h >= 1 for h in hidden), "model.hidden", hidden,
             "must be a list of layer widths >= 1, or [] for a linear model")
    dropout = model.get("dropout", 0.0)
    _require(isinstance(dropout, (int, float)) and 0 <= dropout < 1, "model.dropout", dropout, "must be in [0, 1)")
    for key, valid in (("activation", ACTIVATIONS), ("init", INITS), ("norm", NORMS)):
        if key in model:
            _require(model[key] in valid, f"model.{key}", model[key],
                     f"valid: {', '.join(str(v) for v in valid if v is not None)}")

    for key in ("batch_size", "eval_batch_size"):
        if key in cfg.data:
            value = cfg.data[key]
            _require(isinstance(value, int) and value >= 1, f"data.{key}", value, "must be an integer >= 1")
