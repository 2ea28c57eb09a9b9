"""Every key of every shipped config is checked: set to a value of the wrong type, each fails with a ConfigError
naming that key, from validate_config alone (so before train.py builds anything)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from omegaconf import OmegaConf

from mlplab.config.compose import compose_run_config
from mlplab.config.location import CONFIG_DIR
from mlplab.config.validation import HYDRA_KEYS, validate_config
from mlplab.utils.errors import ConfigError

# keys whose value is free-form by design: any wrong value is a right one
FREE_FORM = ("logger.wandb.config.",)  # extra W&B run config: any mapping


def group_options(config_name: str) -> list[list[str]]:
    """The config as shipped, then once with each other option of each config group (conf/<group>/<option>.yaml)."""
    runs = [[]]
    for group in sorted(p for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        runs += [[f"{group.name}={option.stem}"] for option in sorted(group.glob("*.yaml"))]
    if config_name == "eval":  # its `data` options read the checkpoint's ${seed}: the train walk checks them
        runs = [["ckpt_path=run.ckpt", *r] for r in runs if not r or r[0].split("=")[0] in ("accelerator", "paths")]
    if config_name == "predict":
        runs = [["ckpt_path=run.ckpt", "inputs=digits", *r] for r in runs if not r or r[0].startswith("paths=")]
    return runs


def keys(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) for every key under `node`: leaves, lists and mappings; the items of lists of mappings."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, value in items:
        if k in HYDRA_KEYS:
            continue
        path = f"{key}[{k}]" if isinstance(node, list) else f"{key}.{k}" if key else str(k)
        if isinstance(node, dict) or isinstance(value, dict):
            yield path, value
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
            yield from keys(value, path)


def wrong_value(value: Any) -> Any:
    """A value of another type: text for numbers and switches, a mapping for text and null, a number for the rest."""
    if isinstance(value, (bool, int, float)):
        return "abc"
    if value is None or isinstance(value, str):
        return {"wrong": 1}
    return 5


def set_key(container: dict, key: str, value: Any) -> None:
    parts = key.replace("[", ".").replace("]", "").split(".")
    node = container
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value


@pytest.mark.parametrize("config_name", ["train", "eval", "predict"])
def test_every_key_refuses_a_value_of_the_wrong_type_naming_the_key(tmp_path, config_name):
    checked: set[str] = set()
    for overrides in group_options(config_name):
        cfg = compose_run_config(overrides, tmp_path / "run", config_name)
        shipped = OmegaConf.to_container(cfg, resolve=True)
        for key, value in keys(shipped):
            if key in checked or key.startswith(FREE_FORM):
                continue
            checked.add(key)
            broken = copy.deepcopy(shipped)
            set_key(broken, key, wrong_value(value))
            with pytest.raises(ConfigError) as error:
                validate_config(OmegaConf.create(broken))
            message = str(error.value)
            assert message.startswith((f"{key}=", f"{key} ")), f"{overrides} {key}={wrong_value(value)!r}: {message}"
    assert len(checked) > {"train": 150, "eval": 15, "predict": 8}[config_name]  # the walk did reach the keys
