"""The sweep's jobs as the report sees them: each job's run_record.json (mlplab.run.record), the jobs that never
started, which keys the sweep varies and which job is best."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mlplab.run.folders import saved_overrides
from mlplab.run.record import RECORD_NAME, UnreadableRecordError, read_run_record
from mlplab.utils import locks

log = logging.getLogger(__name__)

NOT_STARTED = "not started"
RUNNING_ELSEWHERE = "running elsewhere"  # another live process holds the job's lock (a parallel rerun trains it)
STATUSES = ("completed", "pruned", "diverged", "interrupted", "failed", RUNNING_ELSEWHERE, NOT_STARTED)  # counts' order


def override_key_value(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def planned_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job Hydra's basic sweeper will launch for this sweep config, in job order;
    None for other sweepers (Optuna picks its trials as it goes)."""
    hydra_cfg = config.hydra
    if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # what BasicSweeper.sweep does: its `params` first, then the command line's overrides
    params = [f"{key}={value}" for key, value in (hydra_cfg.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def read_jobs(sweep_dir: Path, planned: Sequence[Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """One dict per job folder under `sweep_dir` (a folder with a run record or Hydra's .hydra/), in job order,
    plus one with status `not started` for each job of `planned` (job number = index) that has no folder.
    A job whose record is unreadable is `failed`, its error naming the file; one whose lock another live process
    holds (mlplab.utils.locks) is `running elsewhere` unless its record says completed: read as they are now."""
    folders = {p.parent for p in sweep_dir.rglob(RECORD_NAME)}
    folders |= {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    jobs = []
    for folder in folders:
        try:
            record = read_run_record(folder)
        except UnreadableRecordError as e:
            log.warning("%s", e)
            record = {
                "status": "failed",
                "overrides": saved_overrides(folder),
                "job": {"num": int(folder.name)} if folder.name.isdigit() else {},
                "metrics": {},
                "monitor": {},
                "error": f"unreadable record: {e}",
            }
        if record is None:
            record = {
                "status": "failed",
                "overrides": saved_overrides(folder),
                "metrics": {},
                "monitor": {},
                "error": f"no {RECORD_NAME}: the job ended before training started",
            }
        if record.get("status") != "completed" and locks.is_held(folder) and not locks.holds(folder):
            record = {  # what an earlier try recorded is no fact about the training going on now
                **record,
                "status": RUNNING_ELSEWHERE,
                "monitor": {**(record.get("monitor") or {}), "best": None},
                "metrics": {},
                "epochs": None,
                "wall_time_s": None,
                "error": f"another process trains it now ({locks.LOCK_NAME} held: {locks.holder(folder)})",
            }
        elif record["status"] == "running":
            record = {
                **record,
                "status": "failed",
                "error": "killed: the job never finished (its record still says running)",
            }
        number = (record.get("job") or {}).get("num")
        jobs.append({**record, "num": number if number is not None else folder.name, "folder": folder})
    seen = {job["num"] for job in jobs} | {str(job["num"]) for job in jobs}
    jobs += [
        {
            "status": NOT_STARTED,
            "overrides": list(overrides),
            "metrics": {},
            "monitor": {},
            "num": num,
            "folder": None,
            "error": None,
        }
        for num, overrides in enumerate(planned or [])
        if num not in seen
    ]
    return sorted(jobs, key=lambda job: (job["num"] if isinstance(job["num"], int) else math.inf, str(job["folder"])))


def swept_keys(jobs: Sequence[dict[str, Any]]) -> list[str]:
    """The override keys whose value differs between jobs (what the sweep varied), in command-line order."""
    per_job = [dict(map(override_key_value, job.get("overrides", []))) for job in jobs]
    keys = list(dict.fromkeys(key for overrides in per_job for key in overrides))
    return [key for key in keys if len({overrides.get(key) for overrides in per_job}) > 1]


def best_job(jobs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed job with the best value of the monitored validation metric (a pruned job is never the best: it
    stopped before it could be)."""
    scored = [job for job in jobs if job["status"] == "completed" and finite(job.get("monitor", {}).get("best"))]
    if not scored:
        return None
    sign = 1 if scored[0]["monitor"].get("mode", "max") == "max" else -1
    return max(scored, key=lambda job: sign * job["monitor"]["best"])


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
