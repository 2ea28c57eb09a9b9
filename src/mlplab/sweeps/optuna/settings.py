"""The sweeper's settings (`hydra.sweeper.*`) checked and turned into Optuna objects, before any trial runs."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from mlplab.sweeps.optuna.space import grid_of
from mlplab.utils.errors import ConfigError

DIRECTIONS = ("minimize", "maximize")


def directions_of(direction: Any, directions: Any = None) -> list[str]:
    """`direction` (one, or a list as hydra-optuna-sweeper took) or `directions`, as Optuna's names."""
    given = directions if directions is not None else direction
    items = list(given) if isinstance(given, (list, tuple, ListConfig)) else [given]
    names = [str(getattr(item, "name", item)).lower() for item in items]
    bad = [name for name in names if name not in DIRECTIONS]
    if not names or bad:
        raise ConfigError(f"hydra.sweeper.direction(s)={given} is invalid: each must be minimize or maximize")
    if directions is not None and direction is not None:
        single = [
            str(getattr(d, "name", d)).lower()
            for d in (direction if isinstance(direction, (list, ListConfig)) else [direction])
        ]
        if single not in (names, names[:1], ["minimize"]):  # minimize: the schema's default, not a choice
            raise ConfigError(f"hydra.sweeper.direction={direction} and directions={directions} disagree: set one")
    return names


def _to_container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def make_sampler(config: Any, distributions: Mapping[str, Any]) -> optuna.samplers.BaseSampler | None:
    """The sampler `hydra.sweeper.sampler` names by `_target_` (None: Optuna's default); GridSampler gets the grid of
    `params`."""
    config = _to_container(config)
    if not config:
        return None
    if not isinstance(config, dict) or "_target_" not in config:
        raise ConfigError(f"hydra.sweeper.sampler={config} is invalid: give its _target_ (optuna.samplers.TPESampler)")
    config = {key: value for key, value in config.items() if key != "_partial_"}
    if config["_target_"].rsplit(".", 1)[-1] == "GridSampler":
        return instantiate({**config, "search_space": grid_of(distributions)})
    return instantiate(config)


def make_pruner(config: Any) -> optuna.pruners.BasePruner:
    """The pruner `hydra.sweeper.pruner` names by `_target_`; null: none (Optuna's NopPruner)."""
    config = _to_container(config)
    if not config:
        return optuna.pruners.NopPruner()
    if not isinstance(config, dict) or "_target_" not in config:
        raise ConfigError(f"hydra.sweeper.pruner={config} is invalid: give its _target_ (optuna.pruners.MedianPruner)")
    return instantiate(config)


@dataclass
class Objective:
    """What each trial's job returns: the optimised metric(s), and the monitored metric pruning compares."""

    directions: list[str]
    pruning: bool


SAMPLER_CHOICE = "hydra/sweeper/sampler="


def check_sampler_choice(config: Any) -> None:
    """Refuse a `hydra/sweeper/sampler=<name>` on the command line that the search config's own `sampler:` outranks
    (Hydra merges a config's explicit values over its defaults list's choices): the search would silently run
    another sampler. The message gives the overrides that do pick it."""
    chosen = [o.lstrip("+").removeprefix(SAMPLER_CHOICE) for o in config.hydra.overrides.hydra if SAMPLER_CHOICE in o]
    if not chosen:
        return
    target = ConfigStore.instance().load(f"hydra/sweeper/sampler/{chosen[-1]}.yaml").node["_target_"]
    sampler = _to_container(config.hydra.sweeper.sampler) or {}
    if sampler.get("_target_") == target:
        return
    accepted = inspect.signature(get_class(target)).parameters
    dropped = [f"~hydra.sweeper.sampler.{key}" for key in sampler if key != "_target_" and key not in accepted]
    raise ConfigError(
        f"{SAMPLER_CHOICE}{chosen[-1]} is outranked by the search config's own sampler ({sampler.get('_target_')}), "
        f"which the search would run instead. Pick {target} with: hydra.sweeper.sampler._target_={target} "
        + " ".join(dropped)
        + " (or in a search config's defaults list: `override /hydra/sweeper/sampler: "
        + f"{chosen[-1]}`)"
    )


def check_pruning(directions: list[str], pruner: optuna.pruners.BasePruner, monitor: Any) -> bool:
    """Whether trials report to a pruner; ConfigError when pruning cannot compare the monitored metric."""
    if isinstance(pruner, optuna.pruners.NopPruner):
        return False
    if len(directions) > 1:
        raise ConfigError(
            "hydra.sweeper.pruner is set, but the study has several objectives: Optuna prunes single-objective studies only (set pruner=null)"
        )
    if monitor is None or not monitor.get("metric"):
        raise ConfigError("hydra.sweeper.pruner needs the run's monitored validation metric (`monitor.metric`)")
    if {"max": "maximize", "min": "minimize"}[monitor.mode] != directions[0]:
        raise ConfigError(
            f"hydra.sweeper.pruner compares trials on monitor.metric={monitor.metric} (mode {monitor.mode}) while the "
            f"study is to {directions[0]}: make them agree (monitor.mode, or optimized_metric and direction)"
        )
    return True
