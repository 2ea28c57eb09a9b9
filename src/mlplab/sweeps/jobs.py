"""What every launcher needs of a sweep job before it runs: its composed config, numbered as Hydra numbers it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, open_dict


def job_config(launcher: Any, overrides: Sequence[str], num: int, job_id: str | None = None) -> DictConfig:
    """Job `num`'s composed config, as Hydra's launchers compose it: the sweep's config with the job's overrides,
    `hydra.job.num` = `num` and `hydra.job.id` = `job_id` (default `<job name>_<num>`, as the joblib launcher's)."""
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(cfg):
        cfg.hydra.job.id = job_id or f"{cfg.hydra.job.name}_{num}"
        cfg.hydra.job.num = num
    return cfg


def checked_max_members(max_members: Any) -> int:
    """`hydra.launcher.max_members` as an int; ValueError naming the setting when it is below 1."""
    if int(max_members) < 1:
        raise ValueError(f"hydra.launcher.max_members={max_members} is invalid: must be an integer >= 1")
    return int(max_members)
