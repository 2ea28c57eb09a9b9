"""Every float key of every shipped config refuses nan, inf and -inf, naming the key, from validate_config alone:
no run can use them (`lr=inf` would train until the divergence check stops it), and each has a range."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from omegaconf import OmegaConf

from mlplab.config.compose import compose_run_config
from mlplab.config.rules import rule_for
from mlplab.config.validation import HYDRA_KEYS, validate_config
from mlplab.utils.errors import ConfigError
from tests.helpers.configs import FREE_FORM, group_options, set_key


def float_keys(node: Any, key: str = "") -> Iterator[tuple[str, float]]:
    """(key, value) for every float under `node`, list items included (`optimizer.betas[0]`)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, value in items:
        if k in HYDRA_KEYS:
            continue
        path = f"{key}[{k}]" if isinstance(node, list) else f"{key}.{k}" if key else str(k)
        if isinstance(value, float):
            yield path, value
        yield from float_keys(value, path)


def shipped_float_keys() -> dict[str, tuple[list[str], dict]]:
    """Each float key of conf/train.yaml composed with each option of each group: (the overrides, the config)."""
    found: dict[str, tuple[list[str], dict]] = {}
    for overrides in group_options("train"):
        cfg = OmegaConf.to_container(compose_run_config(overrides, None, "train"), resolve=True)
        for key, _ in float_keys(cfg):
            if not key.startswith(FREE_FORM):
                found.setdefault(key, (overrides, cfg))
    return found


FLOAT_KEYS = shipped_float_keys()


def test_the_walk_finds_the_float_keys_of_every_group():
    assert {"lr", "optimizer.lr", "optimizer.betas[1]", "model.dropout", "scheduler.scheduler.pct_start"} <= set(
        FLOAT_KEYS
    )
    assert len(FLOAT_KEYS) > 20


@pytest.mark.parametrize("key", sorted(FLOAT_KEYS))
def test_every_float_key_refuses_nan_and_the_infinities_naming_the_key(key):
    overrides, shipped = FLOAT_KEYS[key]
    validate_config(OmegaConf.create(shipped))  # as shipped it passes
    for value in (math.nan, math.inf, -math.inf):
        broken = copy.deepcopy(shipped)
        set_key(broken, key, value)
        with pytest.raises(ConfigError) as error:
            validate_config(OmegaConf.create(broken))
        named = (f"{key}={value!r} is invalid: ", f"{key.split('[')[0]}=")  # an item, or its list as a whole
        assert str(error.value).startswith(named), f"{overrides}: {error.value}"


@pytest.mark.parametrize("key", sorted(FLOAT_KEYS))
def test_every_float_key_has_a_range(key):
    name = key.split("[")[0]  # optimizer.betas[0]: the rule of the list
    assert rule_for(name) is not None, f"{key}: add its range to mlplab.config.rules.RULES"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=inf", "lr=inf is invalid: not a finite number; must be a number > 0"),
        (
            "optimizer.betas=[0.9,1.5]",
            "optimizer.betas=[0.9, 1.5] is invalid: must be a list of 2 numbers, each in [0, 1)",
        ),
        ("+optimizer.eps=-1e-8", "optimizer.eps=-1e-08 is invalid: must be a number > 0"),
    ],
)
def test_out_of_range_floats_are_refused(override, message):
    with pytest.raises(ConfigError) as error:
        validate_config(compose_run_config([override], None, "train"))
    assert str(error.value) == message
