"""Which sweep jobs can share one stack: configs equal except in stackable keys, and nothing that cannot stack."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlplab.sweeps.jobs import checked_max_members
from mlplab.sweeps.stacked.support import PER_MEMBER, unsupported_setting

# Keys whose values may differ inside a stack: each member keeps its own (support.PER_MEMBER says how). Everything
# else must be equal in the members' unresolved configs.
STACKABLE_KEYS = tuple(PER_MEMBER)
STACKABLE_NETWORK = "mlplab.models.mlp.MLP"
# PyTorch optimizers mlplab configures (conf/optimizer/): each member is a param group of its own
# (mlplab.sweeps.stacked.optimizer)
STACKABLE_OPTIMIZERS = ("torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW", "torch.optim.RMSprop")


@dataclass
class Stack:
    """Positions (in the launched batch) of jobs trained together; `alone`: why they run one by one, if they do."""

    jobs: list[int] = field(default_factory=list)
    alone: str | None = None


def _select(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


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


def stack_key(cfg: DictConfig) -> str:
    """The job's config without its hydra section and stackable keys: jobs with equal keys can share a stack."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    for key in STACKABLE_KEYS:
        *parents, leaf = key.split(".")
        node = container
        for parent in parents:
            node = node.get(parent, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return json.dumps(container, sort_keys=True, default=str)


def group_jobs(cfgs: Sequence[DictConfig], max_members: int, run_alone: Sequence[bool] = ()) -> list[Stack]:
    """Stacks of at most `max_members` jobs, in the order their first job comes; `run_alone[i]`: job i runs by itself
    (it is completed already, say). A stack of one runs alone too: stacking it would gain nothing."""
    max_members = checked_max_members(max_members)
    stacks: list[Stack] = []
    open_stacks: dict[str, Stack] = {}
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
        stack.jobs.append(i)
    for stack in stacks:
        if stack.alone is None and len(stack.jobs) == 1:
            stack.alone = "no other job of this batch shares its config up to the keys a stack varies"
    return stacks


def differing_keys(cfgs: Sequence[DictConfig]) -> list[str]:
    """The stackable keys whose resolved values differ among `cfgs` (for the log line of a stack)."""
    return [key for key in STACKABLE_KEYS if len({str(_select(cfg, key)) for cfg in cfgs}) > 1]
