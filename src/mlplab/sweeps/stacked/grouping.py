"""Which sweep jobs can share one stack: configs equal except in stackable keys, and nothing that cannot stack."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlplab.sweeps.jobs import checked_max_members
from mlplab.sweeps.stacked.support import PER_MEMBER, unsupported_setting

# Keys whose values may differ inside a stack: each member keeps its own (support.PER_MEMBER says how). Everything
# else must be equal in the members' unresolved configs.
STACKABLE_KEYS = tuple(PER_MEMBER)
# a per-member key whose length must agree inside a stack: its members' networks have one depth
DEPTH_KEY = "model.hidden"
# the node whose values a search feeds into other keys (conf/hparams_search/mnist_optuna.yaml: model.hidden's widths);
# nothing in mlplab reads it, so a value of it that feeds only per-member keys may differ inside a stack
SEARCH_NODE = "search"
_INTERPOLATION = re.compile(r"\$\{([^${}:]+)\}")  # ${a.b} or ${..b}: a key, not a resolver
STACKABLE_NETWORK = "mlplab.models.mlp.MLP"
# PyTorch optimizers mlplab configures (conf/optimizer/): each member is a param group of its own
# (mlplab.sweeps.stacked.optimizer)
STACKABLE_OPTIMIZERS = ("torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.RMSprop")


@dataclass
class Stack:
    """Positions (in the launched batch) of jobs trained together; `alone`: why they run one by one, if they do."""

    jobs: list[int] = field(default_factory=list)
    alone: str | None = None
    # why it is apart from jobs that differ from it only in model.hidden's depth (None: no such job in the batch)
    apart: str | None = None


def _select(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _resolved(cfg: DictConfig, key: str) -> Any:
    """The key's value with its interpolations resolved (`model.hidden: ["${search.hidden1}"]` gives its widths)."""
    value = _select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def unstackable_reason(cfg: DictConfig) -> str | None:
    """Why the job `cfg` cannot be a member of a stack (naming the key and the value), or None when it can."""
    target = _select(cfg, "model._target_")
    if target != STACKABLE_NETWORK:
        return f"model._target_={target}: only {STACKABLE_NETWORK} stacks"
    if _select(cfg, "model.norm") not in (None, "none"):
        return f"model.norm={_select(cfg, 'model.norm')}: normalisation layers do not stack (only norm=null)"
    optimizer = _select(cfg, "optimizer._target_")
    if optimizer not in STACKABLE_OPTIMIZERS:
        return f"optimizer._target_={optimizer}: stacks take {', '.join(STACKABLE_OPTIMIZERS)}"
    reason = unsupported_setting(cfg)  # every trainer and callback setting: honoured, or the job runs alone
    if reason:
        return reason
    if _select(cfg, "trainer.max_epochs") == -1 and _schedule_over_the_run(cfg):
        # its single run fails as it starts (Lightning's step estimate is infinite); a stack would fail every member
        return "trainer.max_epochs=-1 with scheduler.scheduler.total_steps=null: a schedule over the run's length fails"
    if cfg.get("compile"):
        return f"compile={cfg.compile}: a compiled network does not stack"
    if cfg.get("ckpt_path"):
        return f"ckpt_path={cfg.ckpt_path}: a resumed job runs as a single run"
    return None


def _schedule_over_the_run(cfg: DictConfig) -> bool:
    """Whether the job's scheduler takes its length from the run (a null `total_steps`: OneCycleLR)."""
    schedule = _select(cfg, "scheduler.scheduler")
    return OmegaConf.is_dict(schedule) and "total_steps" in schedule and schedule.total_steps is None


def hidden_depth(cfg: DictConfig) -> int | None:
    """How many hidden layers the job's network has (`model.hidden`'s length, resolved), None without one."""
    hidden = _resolved(cfg, DEPTH_KEY)
    return len(hidden) if isinstance(hidden, list | tuple) else None


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, str(index)))
    else:
        yield path, node


def _referenced(path: tuple[str, ...], reference: str) -> str:
    """The absolute key of `reference`, an interpolation in the value at `path` (`..x`: relative to its parent)."""
    dots = len(reference) - len(reference.lstrip("."))
    if not dots:
        return reference
    return ".".join((*path[: len(path) - dots], reference[dots:]))


def _within(path: str, keys: Sequence[str]) -> bool:
    return any(path == key or path.startswith(f"{key}.") for key in keys)


def search_values_of_members(container: dict) -> list[str]:
    """The `search.*` keys whose every use is an interpolation inside a per-member key (`model.hidden:
    ["${search.hidden1}"]`): they differ with their members' own values, so the stack key leaves them out."""
    uses: dict[str, list[str]] = {}
    for path, value in _leaves(container):
        for reference in _INTERPOLATION.findall(value) if isinstance(value, str) else ():
            uses.setdefault(_referenced(path, reference), []).append(".".join(path))
    return [
        key
        for key, users in uses.items()
        if _within(key, [SEARCH_NODE]) and all(_within(user, STACKABLE_KEYS) for user in users)
    ]


def _drop(container: dict, key: str) -> None:
    *parents, leaf = key.split(".")
    node: Any = container
    for parent in parents:
        node = node.get(parent, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node.pop(leaf, None)


def stack_key(cfg: DictConfig, with_depth: bool = True) -> str:
    """The job's config without its hydra section, its stackable keys and the search values that only feed them, with
    `model.hidden`'s depth (`with_depth`): jobs with equal keys can share a stack."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    for key in (*search_values_of_members(container), *STACKABLE_KEYS):
        _drop(container, key)
    if with_depth:
        container[f"{DEPTH_KEY} depth"] = hidden_depth(cfg)
    return json.dumps(container, sort_keys=True, default=str)


def group_jobs(cfgs: Sequence[DictConfig], max_members: int, run_alone: Sequence[bool] = ()) -> list[Stack]:
    """Stacks of at most `max_members` jobs, in the order their first job comes; `run_alone[i]`: job i runs by itself
    (it is completed already, say). A stack of one runs alone too: stacking it would gain nothing."""
    max_members = checked_max_members(max_members)
    stacks: list[Stack] = []
    open_stacks: dict[str, Stack] = {}
    depths: dict[int, tuple[str, int | None]] = {}  # id(stack): its key without the depth, and its depth
    for i, cfg in enumerate(cfgs):
        reason = "completed or resumed already" if i < len(run_alone) and run_alone[i] else unstackable_reason(cfg)
        if reason:
            stacks.append(Stack([i], alone=reason))
            continue
        key = stack_key(cfg)
        stack = open_stacks.get(key)
        if stack is None or len(stack.jobs) >= max_members:
            stack = open_stacks[key] = Stack()
            stacks.append(stack)
            depths[id(stack)] = (stack_key(cfg, with_depth=False), hidden_depth(cfg))
        stack.jobs.append(i)
    for stack in stacks:
        if id(stack) in depths:
            stack.apart = _apart(depths[id(stack)], [depths[id(s)] for s in stacks if id(s) in depths])
        if stack.alone is None and len(stack.jobs) == 1:
            stack.alone = stack.apart or "no other job of this batch shares its config up to the keys a stack varies"
    return stacks


def _apart(mine: tuple[str, int | None], every: Sequence[tuple[str, int | None]]) -> str | None:
    """Why a stack of `mine` (key without depth, depth) is apart from stacks equal to it up to the depth, if any."""
    key, depth = mine
    others = sorted({d for k, d in every if k == key and d != depth}, key=str)
    if not others:
        return None
    return (
        f"{DEPTH_KEY} has {depth} hidden layers here, {' or '.join(map(str, others))} in other jobs of this batch: "
        "a stack holds networks of one depth (widths may differ)"
    )


def differing_keys(cfgs: Sequence[DictConfig]) -> list[str]:
    """The stackable keys whose resolved values differ among `cfgs` (for the log line of a stack)."""
    return [key for key in STACKABLE_KEYS if len({str(_resolved(cfg, key)) for cfg in cfgs}) > 1]
