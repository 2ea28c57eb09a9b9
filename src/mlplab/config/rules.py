"""The one table of what each config key may hold beyond its type: ranges, choices, and the types of keys that
no `_target_` signature describes. Keys are dotted config paths; `*` matches within one part of a path."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mlplab.config.location import CONFIG_DIR
from mlplab.config.types import describe
from mlplab.data.features import FEATURE_TRANSFORMS
from mlplab.models.mlp import ACTIVATIONS, INITS, NORMS
from mlplab.utils.errors import ConfigError


def require(ok: bool, key: str, value: object, valid: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {valid}")


@dataclass(frozen=True)
class Rule:
    """`ok(value)` (called once the value has the right type) and the words for what is valid.

    `type` is the key's type where no signature gives one (keys outside `_target_` nodes), or overrides it.
    """

    valid: str
    ok: Callable[[Any], bool] = lambda value: True
    type: Any = None


def typed(hint: Any) -> Rule:
    """Any value of this type."""
    return Rule(f"must be {describe(hint)}", type=hint)


def at_least(minimum: int, *, null: str | None = None, also: tuple[int, ...] = ()) -> Rule:
    """An integer >= minimum (or one of `also`); `null`: what null means, when it is allowed."""
    words = (
        f"must be an integer >= {minimum}"
        + "".join(f", or {a}" for a in also)
        + (f", or null ({null})" if null else "")
    )
    return Rule(words, lambda v: v is None or v >= minimum or v in also, int | None if null else int)


def interval(
    low: float, high: float | None, *, low_open: bool = False, high_open: bool = True, type: Any = None, what: str = ""
) -> Rule:
    """A number in the interval; `type` where no signature gives one; `what` the number is ("a share")."""
    left, right = "(" if low_open else "[", ")" if high_open or high is None else "]"
    words = (
        f"must be a number > {low}"
        if high is None and low_open
        else f"must be a number >= {low}"
        if high is None
        else f"must be {what + ' ' if what else ''}in {left}{low}, {high}{right}"
    )

    def ok(v: Any) -> bool:
        return v is None or (
            (v > low if low_open else v >= low) and (high is None or (v < high if high_open else v <= high))
        )

    return Rule(words, ok, type)


def one_of(*choices: Any, type: Any = None) -> Rule:
    return Rule("valid: " + ", ".join(str(c) for c in choices if c is not None), lambda v: v in choices, type)


def _batches(what: str) -> Rule:
    """Lightning's count-or-share knobs: limit_*_batches, overfit_batches."""
    return Rule(
        f"must be a number of {what} (an integer >= 0), a share of them in [0.0, 1.0], or null (all)",
        lambda v: v is None or (v >= 0 if isinstance(v, int) else 0 <= v <= 1),
    )


def _compile_options(value: Any) -> bool:
    return isinstance(value, bool) or set(value) <= set(inspect.signature(torch.compile).parameters) - {"model"}


MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's


def node(what: str, *, null: bool = False) -> Rule:
    """A config node that Hydra instantiates (a mapping with a `_target_`)."""
    return Rule(
        f"must be {what}: a node with a _target_" + (", or null (off)" if null else ""),
        lambda v: v is None or "_target_" in v,
        dict | None if null else dict,
    )


def _trainer_node() -> Rule:
    """`trainer=cpu` (a group option, as for `optimizer=adam`) points to the accelerator group: there is no trainer
    group, the trainer's device settings are chosen there."""
    rule = node("a Trainer")
    options = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "accelerator").glob("*.yaml")))
    hint = (
        "; there is no trainer config group: choose the device with the accelerator group, accelerator=cpu "
        f"(options: {options}), and set one Trainer setting with trainer.<key>=<value>, e.g. trainer.max_epochs=10"
    )
    return Rule(rule.valid + hint, rule.ok, rule.type)


RULES: dict[str, Rule] = {
    # the groups
    "data": node("a data module"),
    "model": node("a network"),
    "optimizer": node("an optimizer"),
    "trainer": _trainer_node(),
    "scheduler": Rule(
        "must be a schedule: a mapping with a `scheduler` node (and interval, monitor), or null",
        lambda v: v is None or "scheduler" in v,
        dict | None,
    ),
    "scheduler.scheduler": node("a learning-rate scheduler"),
    "monitor": typed(dict),
    "paths": typed(dict),
    "search": typed(dict),
    "callbacks.*": node("a callback", null=True),
    "logger.*": node("a logger", null=True),
    "baseline_models.*": node("a scikit-learn estimator", null=True),
    "callbacks.baselines.models.*": node("a scikit-learn estimator", null=True),
    "data.sources.*": node("a data source"),
    # the run (conf/train.yaml, conf/eval.yaml, conf/predict.yaml)
    "task_name": typed(str),
    "seed": Rule("must be an integer in [0, 2**32 - 1]", lambda v: 0 <= v < 2**32, int),
    "lr": interval(0, None, low_open=True, type=float),
    "optimized_metric": typed(str | list[str]),  # a list: a search with several objectives (hydra.sweeper.directions)
    "tags": typed(list[str]),  # the W&B run's tags, also in run_record.json and the sweep report
    "ckpt_path": typed(str | None),
    # predict.py (conf/predict.yaml)
    "inputs": typed(str),
    "output": typed(str),
    "invert": typed(bool),
    "torch_threads": at_least(1, null="torch's default"),
    "baselines": typed(bool),
    "compile": Rule(
        "must be true, false or a mapping of torch.compile's options (mode, fullgraph, dynamic, "
        "backend, options, disable)",
        _compile_options,
        bool | dict,
    ),
    "matmul_precision": one_of(*MATMUL_PRECISIONS, type=str),
    "monitor.metric": typed(str),
    "monitor.mode": one_of("min", "max", type=str),
    "baseline_train_samples": at_least(1, null="every training row"),
    "baseline_models": typed(dict),
    "search.*": typed(int),  # hparams_search: the layer widths Optuna picks
    "paths.*": typed(str | None),
    # the network
    "model.hidden": Rule(
        "must be a list of layer widths >= 1, or [] for a linear model", lambda v: all(h >= 1 for h in v)
    ),
    "model.dropout": interval(0, 1),
    "model.input_dropout": interval(0, 1),
    "model.activation": one_of(*ACTIVATIONS),
    "model.norm": one_of(*NORMS),
    "model.init": one_of(*INITS),
    "model.init_std": interval(0, None, low_open=True),
    # the optimizer and the schedule (every float key has a range: nan and the infinities are refused for all)
    "optimizer.lr": interval(0, None, low_open=True),
    "optimizer.weight_decay": interval(0, None),
    "optimizer.momentum": interval(0, None),
    "optimizer.betas": Rule(
        "must be a list of 2 numbers, each in [0, 1)", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)
    ),
    "optimizer.alpha": interval(0, 1),
    "optimizer.eps": interval(0, None, low_open=True),
    "scheduler.scheduler.max_lr": interval(0, None, low_open=True),
    "scheduler.scheduler.pct_start": interval(0, 1, low_open=True),
    "scheduler.scheduler.eta_min": interval(0, None),
    "scheduler.scheduler.factor": interval(0, 1, low_open=True),
    "scheduler.scheduler.gamma": interval(0, None, low_open=True),
    "scheduler.interval": one_of("epoch", "step", type=str),
    "scheduler.monitor": typed(str),
    "scheduler.frequency": at_least(1),
    # the data
    "data.batch_size": at_least(1),
    "data.eval_batch_size": at_least(1),
    "data.val_size": at_least(1),
    "data.label_smoothing": interval(0, 1),
    "data.max_shift": at_least(0),
    "data.*_fraction": interval(0, 1, low_open=True, what="a share"),
    "data.sources": typed(list),
    "data.feature_transform": one_of(*FEATURE_TRANSFORMS, type=str),
    "data.sources.*.timeout": interval(0, None, low_open=True),
    # the Trainer
    "trainer.max_epochs": at_least(1, also=(-1,), null="1000, Lightning's default"),
    "trainer.min_epochs": at_least(0, null="none"),
    "trainer.max_steps": at_least(1, also=(-1,)),
    "trainer.num_nodes": at_least(1),
    "trainer.log_every_n_steps": at_least(1, null="Lightning's 50"),
    "trainer.num_sanity_val_steps": at_least(0, also=(-1,), null="Lightning's 2"),
    "trainer.accumulate_grad_batches": at_least(1),
    "trainer.check_val_every_n_epoch": at_least(1, null="validate only as val_check_interval says"),
    "trainer.gradient_clip_val": interval(0, None),
    "trainer.gradient_clip_algorithm": one_of("norm", "value", None, type=Literal["norm", "value"] | None),
    "trainer.limit_*_batches": _batches("batches"),
    "trainer.overfit_batches": _batches("batches"),
    "trainer.val_check_interval": Rule(
        "must be a number of training batches (an integer >= 1), a share of the "
        "epoch in (0.0, 1.0], or null (once per epoch)",
        lambda v: v is None or (v >= 1 if isinstance(v, int) else 0 < v <= 1),
        int | float | None,
    ),
    "trainer.fast_dev_run": Rule(
        "must be true, false, or a number of batches >= 0", lambda v: isinstance(v, bool) or v >= 0
    ),
    # the callbacks and loggers
    "callbacks": typed(dict | None),
    "callbacks.*.every_n_epochs": at_least(1),
    "callbacks.*.check_every_n_steps": at_least(1),
    "callbacks.*.refresh_rate": at_least(0),
    "callbacks.*.patience": at_least(0),
    "callbacks.model_checkpoint.save_top_k": at_least(-1),
    "callbacks.*.max_units": at_least(1),
    "callbacks.*.max_images": at_least(1),
    "callbacks.*.num_images": at_least(1),
    "callbacks.*.scale": at_least(1),
    "callbacks.*.bins": at_least(1),
    "callbacks.baselines.max_train_samples": at_least(1, null="every training row"),
    "callbacks.*.mode": one_of("min", "max"),
    "callbacks.*.min_delta": interval(0, None),
    # scikit-learn's estimators have no annotations: the type is given here
    "baseline_models.*.C": interval(0, None, low_open=True, type=float),
    "baseline_models.*.tol": interval(0, None, low_open=True, type=float),
    "callbacks.baselines.models.*.C": interval(0, None, low_open=True, type=float),
    "callbacks.baselines.models.*.tol": interval(0, None, low_open=True, type=float),
    "logger": typed(dict | None),
    "logger.*.mode": one_of("online", "offline", "disabled", None, type=str | None),
}


_PATTERNS = [(re.compile(re.escape(p).replace(r"\*", "[^.]*") + "$"), rule) for p, rule in RULES.items() if "*" in p]


def known_keys(section: str = "") -> list[str]:
    """The keys the rules table names directly under `section` ("": the top level), for suggesting one."""
    depth = section.count(".") + 1 if section else 0
    prefix = f"{section}." if section else ""
    parts = (p.split(".") for p in RULES if p.startswith(prefix))
    return sorted({p[depth] for p in parts if len(p) > depth and "*" not in p[depth]})


def rule_for(key: str) -> Rule | None:
    """The rule of a config key (`data.sources[0].timeout` reads as `data.sources.0.timeout`; `*` matches within
    one part of the path), None if it has none."""
    dotted = key.replace("[", ".").replace("]", "")
    if dotted in RULES:
        return RULES[dotted]
    return next((rule for pattern, rule in _PATTERNS if pattern.match(dotted)), None)
