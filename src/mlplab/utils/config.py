"""Checks on a composed config, run before anything is created: bad values fail early and clearly."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra._internal.utils import _locate  # hydra.utils.get_object also logs an error of its own
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from mlplab.models.mlp import ACTIVATIONS, INITS, NORMS
from mlplab.utils.errors import ConfigError
from mlplab.utils.run_names import config_choices, run_name, sweep_group

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "conf"

# `${mlplab_root:}` in conf/paths: the repository folder, wherever the command is launched from
OmegaConf.register_new_resolver("mlplab_root", lambda: str(PROJECT_ROOT), replace=True)
# names for W&B (conf/logger/wandb.yaml): what the run changed, which sweep it belongs to, the groups' choices
OmegaConf.register_new_resolver("mlplab_run_name", run_name, replace=True)
OmegaConf.register_new_resolver("mlplab_sweep_group", sweep_group, replace=True)
OmegaConf.register_new_resolver("mlplab_choices", config_choices, replace=True)


def compose_run_config(overrides: Sequence[str], output_dir: str | Path, config_name: str = "train") -> DictConfig:
    """Compose conf/<config_name>.yaml as `python <config_name>.py <overrides>` would, outputs in `output_dir`
    (for the benchmark and the tests, which run in-process without Hydra's command line)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # the config reads ${hydra:...} values
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    GlobalHydra.instance().clear()
    return cfg


def _require(ok: bool, key: str, value: object, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {valid}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value found."""
    _check_targets(cfg)
    lr = cfg.get("lr")
    _require(_is_number(lr) and lr > 0, "lr", lr, "must be a number > 0")
    _check_model(cfg.model)
    _check_data(cfg.data)
    check_devices(cfg.trainer)
    for key in ("max_epochs", "max_steps"):  # 0 would "complete" and report an untrained network's test metrics
        value = cfg.trainer.get(key)
        _require(value != 0, f"trainer.{key}", value, "must be >= 1 (or -1 for no limit): 0 trains nothing")
    threads = cfg.get("torch_threads")
    _require(threads is None or (isinstance(threads, int) and threads >= 1), "torch_threads", threads,
             "must be an integer >= 1, or null for torch's default")
    precision = cfg.get("matmul_precision", "highest")
    _require(precision in MATMUL_PRECISIONS, "matmul_precision", precision, f"valid: {', '.join(MATMUL_PRECISIONS)}")


def _check_model(model: DictConfig) -> None:
    hidden = list(model.get("hidden", []))
    _require(all(isinstance(h, int) and h >= 1 for h in hidden), "model.hidden", hidden,
             "must be a list of layer widths >= 1, or [] for a linear model")
    dropout = model.get("dropout", 0.0)
    _require(_is_number(dropout) and 0 <= dropout < 1, "model.dropout", dropout, "must be in [0, 1)")
    for key, valid in (("activation", ACTIVATIONS), ("init", INITS), ("norm", NORMS)):
        if key in model:
            _require(model[key] in valid, f"model.{key}", model[key],
                     f"valid: {', '.join(str(v) for v in valid if v is not None)}")


def _check_data(data: DictConfig) -> None:
    for key in ("batch_size", "eval_batch_size", "val_size"):
        if key in data:
            value = data[key]
            _require(isinstance(value, int) and value >= 1, f"data.{key}", value, "must be an integer >= 1")
    # split shares, whatever the data module calls them (val_fraction, test_fraction, ...)
    fractions = {key: data[key] for key in data if str(key).endswith("_fraction")}
    for key, value in fractions.items():
        _require(_is_number(value) and 0 < value < 1, f"data.{key}", value, "must be a share in (0, 1)")
    if len(fractions) > 1:
        total = sum(fractions.values())
        keys = " + ".join(f"data.{k}" for k in fractions)
        _require(total < 1, keys, round(total, 10), "the held-out shares must sum below 1, leaving rows to train on")


def _devices_here(accelerator: str) -> tuple[str, int] | None:
    """(accelerator, how many devices of it this machine has); None for accelerators not checked here."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if accelerator in ("gpu", "cuda"):
        return accelerator, torch.cuda.device_count()
    if accelerator == "mps":
        return accelerator, int(mps)
    if accelerator == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return accelerator, cores
    return None


def check_devices(trainer: DictConfig) -> None:
    """`trainer.devices` must name devices this machine has (a count, a list of indices, "auto" or -1)."""
    devices = trainer.get("devices", "auto")
    here = _devices_here(str(trainer.get("accelerator", "auto")))
    if here is None or devices in ("auto", -1, "-1", None):
        return
    accelerator, available = here
    _require(available > 0, "trainer.accelerator", accelerator,
             f"this machine has no {accelerator} device; use accelerator=cpu (or auto)")
    valid = f"{accelerator} has {available} device(s) here: use a count from 1 to {available}, a list of indices below {available}, or auto"
    if isinstance(devices, str) and "," in devices:
        devices = [int(i) for i in devices.split(",") if i.strip()]
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, int):
        _require(1 <= devices <= available, "trainer.devices", devices, valid)
    else:
        indices = list(devices) if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)) else [devices]
        _require(len(indices) > 0 and all(isinstance(i, int) and 0 <= i < available for i in indices),
                 "trainer.devices", indices, valid)


def _targets(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, target) for every `_target_` in a plain container tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{key}.{k}" if key else str(k)
            if k == "_target_" and isinstance(v, str):
                yield path, v
            else:
                yield from _targets(v, path)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{key}[{i}]")


def _check_targets(cfg: DictConfig) -> None:
    """Every `_target_` must name an importable class or function (a typo fails here, not after the data loads)."""
    for key, target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        try:
            _locate(target)
        except Exception as e:  # ImportError whose last line says which part could not be found
            raise ConfigError(f"{key}={target!r} is invalid: no such class or function. {str(e).splitlines()[-1]}") from None
