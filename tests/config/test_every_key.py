"""Every key of every shipped config is checked: set to a value of the wrong type, each fails with a ConfigError
naming that key, from validate_config alone (so before train.py builds anything)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from omegaconf import OmegaConf

from mlplab.config.compose import compose_run_config
from mlplab.config.validation import HYDRA_KEYS, validate_config
from mlplab.utils.errors import ConfigError
from tests.helpers.configs import FREE_FORM, group_options, set_key


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
