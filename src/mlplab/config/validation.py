"""Checks on a composed config, run before anything is created: every key's type (from the signature of the
`_target_` it is passed to, or the rules table) and range (the rules table), then the rules across keys.
A bad value fails early with a ConfigError naming the key, the value and what is valid."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError, MissingMandatoryValue

from mlplab.config.devices import check_devices
from mlplab.config.rules import known_keys, require, rule_for
from mlplab.config.types import UNKNOWN, describe, element_hint, fits, locate, parameters
from mlplab.data.splits import check_fold_sizes
from mlplab.utils.errors import ConfigError

MISSING = "???"
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid value found."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    _check_targets(raw)
    resolved = _resolved(cfg)
    # values typed in directly first: `trainer.max_epochs=abc` is reported as that, not as the scheduler's T_max
    for check in sorted(_checks(resolved, raw), key=lambda c: c.interpolated):
        check.run()
    if cfg.get("data"):
        _check_data(cfg.data)
    if cfg.get("trainer"):
        check_devices(cfg.trainer)


UNRESOLVED = object()


def _resolved(node: Any) -> Any:
    """`node` as plain values, resolved; a value whose interpolation cannot be resolved here is UNRESOLVED
    (eval.yaml's `data` reads `${seed}` from the checkpoint's config, where it is resolved)."""
    if not OmegaConf.is_config(node):
        return node
    if OmegaConf.is_list(node):
        return [_resolved(_get(node, i)) for i in range(len(node))]
    return {str(k): _resolved(_get(node, k)) for k in node.keys()}


def _get(node: Any, key: Any) -> Any:
    try:
        return node[key]
    except MissingMandatoryValue:
        return MISSING
    except (InterpolationKeyError, InterpolationResolutionError):
        return UNRESOLVED


@dataclass(frozen=True)
class _Check:
    key: str
    value: Any
    hint: Any
    interpolated: bool

    def run(self) -> None:
        if self.value is UNRESOLVED:
            return
        if self.value == MISSING:
            raise ConfigError(f"{self.key} must be set: give it on the command line ({self.key}=...)")
        rule = rule_for(self.key)
        hint = rule.type if rule is not None and rule.type is not None else self.hint
        valid = rule.valid if rule is not None else f"must be {describe(hint)}"
        if not fits(self.value, hint) and rule is None and isinstance(self.value, list):
            item = element_hint(hint)  # name the item that does not fit: trainer.plugins[1]=5
            for i, value in enumerate(self.value):
                require(fits(value, item), f"{self.key}[{i}]", value, f"must be {describe(item)}")
        require(fits(self.value, hint), self.key, self.value, valid)
        # nan and the infinities are floats that fit any float key, and no run can use one (lr=inf trains until
        # the divergence check stops it): refused for every key, whatever its rule
        if isinstance(self.value, float):
            require(math.isfinite(self.value), self.key, self.value, f"not a finite number; {valid}")
        if rule is not None:
            require(rule.ok(self.value), self.key, self.value, valid)


def _checks(node: Any, raw: Any, key: str = "", hint: Any = UNKNOWN) -> Iterator[_Check]:
    """One check per key under `node` (resolved) with its hint; `raw` is the same node before interpolation."""
    interpolated = isinstance(raw, str) and "${" in raw
    if key:
        yield _Check(key, node, hint, interpolated)
    raw_children = raw if isinstance(raw, (dict, list)) else None
    if isinstance(node, dict):
        hints: dict[str, Any] = {}
        if not key or (_is_section(key) and "_target_" not in node):
            yield _KnownKeys(key, node)  # after the section's own check: `scheduler={wrong: 1}` is named as that
        if isinstance(node.get("_target_"), str):
            accepted = parameters(node["_target_"])
            unknown = [k for k in node if k not in HYDRA_KEYS and k not in accepted.hints]
            if unknown and not accepted.takes_any:
                path = f"{key}.{unknown[0]}" if key else str(unknown[0])
                raise ConfigError(
                    f"{path} is invalid: {node['_target_']} takes no parameter {unknown[0]!r}; "
                    f"it takes: {', '.join(accepted.hints)}"
                )
            hints = accepted.hints
        for k, v in node.items():
            if k in HYDRA_KEYS:
                continue
            sub_raw = raw_children.get(k) if isinstance(raw_children, dict) else raw
            yield from _checks(v, sub_raw, f"{key}.{k}" if key else str(k), hints.get(k, UNKNOWN))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            sub_raw = raw_children[i] if isinstance(raw_children, list) and i < len(raw_children) else raw
            yield from _checks(v, sub_raw, f"{key}[{i}]")


def _is_section(key: str) -> bool:
    """A mapping that the rules table describes key by key (monitor, scheduler, paths, ...), not one of values."""
    rule = rule_for(key)
    return rule is not None and rule.type in (dict, dict | None)


@dataclass(frozen=True)
class _KnownKeys:
    """Every key of the top level or of a section is one that something reads: `+optimzer=adam` or `+tag=[a]` is
    refused naming the nearest known key, not ignored (keys under a `_target_` are checked against its signature)."""

    key: str
    node: dict
    interpolated: bool = False

    def run(self) -> None:
        _check_known(self.node, self.key)


def _check_known(node: dict, key: str) -> None:
    for k in node:
        path = f"{key}.{k}" if key else str(k)
        if k in HYDRA_KEYS or rule_for(path) is not None:
            continue
        near = difflib.get_close_matches(str(k), known_keys(key), n=1)
        where = f"under {key}" if key else "at the top level"
        raise ConfigError(
            f"{path} is invalid: no part of mlplab reads a key {k!r} {where}"
            + (f"; did you mean {key + '.' if key else ''}{near[0]}?" if near else "")
            + (" (a config group is chosen without +: optimizer=adam)" if not key else "")
        )


def _check_data(data: DictConfig) -> None:
    """Rules across the data keys (shares, folds), and split sizes the config alone tells."""
    fractions = {key: data[key] for key in data if str(key).endswith("_fraction")}
    if len(fractions) > 1:
        total = sum(fractions.values())
        keys = " + ".join(f"data.{k}" for k in fractions)
        require(total < 1, keys, round(total, 10), "the held-out shares must sum below 1, leaving rows to train on")
    _check_folds(data)
    _check_max_shift(data)
    rows = known_rows(data)
    if rows is not None:
        check_split_sizes(data, rows)
        if data.get("folds") is not None:  # the pool: the rows that are not test rows (housing's test_fraction)
            check_fold_sizes(data.folds, rows - round(rows * data.get("test_fraction", 0)))


def _check_max_shift(data: DictConfig) -> None:
    """data.max_shift moves images by less than their side (the data module's image_shape)."""
    shape = getattr(locate(data._target_), "image_shape", None)
    shift = data.get("max_shift")
    if shape is not None and isinstance(shift, int):
        require(shift < min(shape), "data.max_shift", shift, f"must be an integer in [0, {min(shape)}) pixels")


def _check_folds(data: DictConfig) -> None:
    """k-fold cross-validation: data.folds=K (an integer >= 2) with data.fold in [0, K), or neither."""
    folds, fold = data.get("folds"), data.get("fold")
    if folds is None:
        require(
            fold is None, "data.fold", fold, "needs data.folds=K (k-fold cross-validation), or null for the fixed split"
        )
        return
    require(
        isinstance(folds, int) and not isinstance(folds, bool) and folds >= 2,
        "data.folds",
        folds,
        "must be an integer >= 2 (the number of folds), or null for the fixed split",
    )
    every = ",".join(str(i) for i in range(folds)) if folds <= 10 else f"'range(0,{folds})'"  # a Hydra sweep
    require(
        isinstance(fold, int) and not isinstance(fold, bool) and 0 <= fold < folds,
        "data.fold",
        fold,
        f"with data.folds={folds} it must be an integer in [0, {folds}) (every fold: -m data.folds={folds} data.fold={every})",
    )


def known_rows(data: DictConfig) -> int | None:
    """How many rows the splits are carved from, when the config says it: the data module's `known_rows`, unless
    the config names files of its own (`data.files`, an `md5` of the module or a source other than its `known_md5s`)."""
    module = locate(data._target_)
    rows = getattr(module, "known_rows", None)
    if rows is None or data.get("files") is not None:
        return None
    if any(md5 not in getattr(module, "known_md5s", ()) for md5 in _values_of("md5", _resolved(data))):
        return None
    return rows


def _values_of(name: str, node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from [v] if k == name else _values_of(name, v)
    elif isinstance(node, list):
        for v in node:
            yield from _values_of(name, v)


def check_split_sizes(data: DictConfig, rows: int) -> None:
    """The held-out splits of `rows` rows leave every split at least one row."""
    if "val_size" in data:
        require(
            data.val_size < rows,
            "data.val_size",
            data.val_size,
            f"must be below {rows}, the number of training images it is carved from, leaving some to train on",
        )
    fractions = {key: data[key] for key in data if str(key).endswith("_fraction")}
    if fractions:
        sizes = {key: round(rows * share) for key, share in fractions.items()}
        left = rows - sum(sizes.values())
        shown = ", ".join(f"data.{k}={v} ({sizes[k]} rows)" for k, v in fractions.items())
        require(
            min(sizes.values()) >= 1 and left >= 1,
            " and ".join(f"data.{k}" for k in fractions),
            list(fractions.values()),
            f"of {rows} rows they leave an empty split: {shown}, {left} to train on",
        )


def check_data_fits(cfg: DictConfig, datamodule: Any) -> None:
    """Split sizes that only the data files tell (the user's own files): loads the data, so call it before any
    logger starts; does nothing when `validate_config` could check them from the config."""
    if not cfg.get("data") or known_rows(cfg.data) is not None:
        return
    datamodule.prepare_data()
    datamodule.setup()
    sizes = {split: len(target) for split, (_, target) in datamodule.splits.items()}
    empty = [split for split, n in sizes.items() if n == 0]
    if empty:
        keys = [f"data.{k}" for k in cfg.data if k == "val_size" or str(k).endswith("_fraction")]
        values = [cfg.data[k.split(".", 1)[1]] for k in keys]
        raise ConfigError(
            f"{' and '.join(keys)}={values[0] if len(values) == 1 else values} is invalid: it leaves "
            f"the {' and '.join(empty)} split empty ({', '.join(f'{s} {n}' for s, n in sizes.items())})"
        )


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


def _check_targets(cfg: Any) -> None:
    """Every `_target_` must name an importable class or function (a typo fails here, not after the data loads)."""
    for key, target in _targets(cfg):
        try:
            locate(target)
        except Exception as e:  # ImportError whose last line says which part could not be found
            raise ConfigError(
                f"{key}={target!r} is invalid: no such class or function. {str(e).splitlines()[-1]}"
            ) from None
