"""Sweeps that resume when run again: the same command with the sweep's folder finishes the sweep.

`python train.py -m <same overrides> hydra.sweep.dir=<sweep>` (or `python train.py -m sweep_resume=<sweep>`,
which reads the overrides from `<sweep>/multirun.yaml`) plans every job before the launcher sees any:

- a job keeps its number and folder across reruns: `<sweep>/sweep_jobs.json` maps each job's overrides to
  its number; jobs new to the folder get the next free numbers, and no job folder is ever reused for
  other overrides;
- `completed` jobs are not handed to the launcher (their folders stay as they are, and the report lists
  them); `failed`, `diverged` and `pruned` ones only with `sweep_rerun=failed` (or `[failed,diverged]`;
  `hydra.sweeper.rerun=[...]` in full); interrupted or killed ones run again and resume from their own
  `checkpoints/last.ckpt`, in their own folder (`start_sweep_job`, in the job), and so do pruned ones asked to
  run again (to their end); failed and diverged ones start afresh;
- a rerun whose override keys differ from the folder's sweep, or which shares no job with it, is refused
  before anything is written, showing the difference; one with other values of the same swept keys adds
  only its new jobs;
- each job holds an exclusive lock on `<job>/.job.lock` while it runs (fcntl; the kernel drops it when
  the process dies, SIGKILL included): a planner skips a job another process holds, and the job itself
  checks again, so two reruns of one sweep at once never train the same job twice.

Launchers (basic, joblib, submitit, stacked) get only the jobs to run, numbered as before
(`launch(jobs, initial_job_idx)` numbers them `initial_job_idx + i`, so each call gets consecutive numbers).
The Hydra plugins (hydra_plugins.mlplab_sweepers) are thin subclasses of Hydra's sweepers calling this.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from mlplab.checkpoints.io import LAST
from mlplab.checkpoints.resume import sweep_resume_command
from mlplab.run.folders import saved_overrides
from mlplab.run.record import RECORD_NAME, UnreadableRecordError, read_run_record
from mlplab.sweeps.jobs import job_config
from mlplab.utils import locks
from mlplab.utils.errors import ConfigError
from mlplab.utils.files import check_writable, write_json
from mlplab.utils.hydra_runtime import in_sweep
from mlplab.utils.overrides import hydra_value

log = logging.getLogger(__name__)

SWEEP_DIR_HINT = "hydra.sweep.dir=<folder> for this sweep, paths.output_root=<folder> for all"
JOBS_FILE = "sweep_jobs.json"  # <sweep>/: every job's number and overrides
RERUNNABLE = ("failed", "diverged", "pruned")  # statuses run again only when asked (sweep_rerun=...)
RESUMABLE = ("interrupted", "running")  # a record still `running` without a live holder: a killed job


class SweepMismatchError(ConfigError):
    """A rerun's jobs are not the sweep in that folder."""


# ---- the short form on the command line: sweep_resume=<folder>, sweep_rerun=<statuses>


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def check_rerun(statuses: Sequence[str], key: str = "hydra.sweeper.rerun") -> None:
    """Raise ConfigError unless every status is one a rerun can run again (RERUNNABLE)."""
    wrong = [status for status in statuses if status not in RERUNNABLE]
    if wrong or not statuses:
        raise ConfigError(
            f"{key}={','.join(statuses)} is invalid: {', '.join(map(repr, wrong)) or 'nothing'} is not a status a "
            f"rerun runs again; valid: {', '.join(RERUNNABLE)} (e.g. {key}=failed or {key}=[failed,diverged]; "
            "interrupted and killed jobs always resume)"
        )


def sweep_resume_arguments(argv: Sequence[str]) -> list[str]:
    """`argv` of a multirun with `sweep_resume=<folder>` replaced by that sweep's own overrides and folder, and
    `sweep_rerun=X` by `hydra.sweeper.rerun=[X]`. The command line's other overrides win over the saved ones."""
    argv = list(argv)
    resume = [a for a in argv if a.startswith("sweep_resume=")]
    rerun = [a for a in argv if a.startswith("sweep_rerun=")]
    argv = [a for a in argv if a not in resume and a not in rerun]
    if rerun:
        statuses = rerun[-1].split("=", 1)[1].strip("[]")
        check_rerun([status.strip().strip("'\"") for status in statuses.split(",")], "sweep_rerun")
        argv.append(f"hydra.sweeper.rerun=[{statuses}]")
    if not resume:
        return argv
    folder = Path(resume[-1].split("=", 1)[1].strip("'\"")).expanduser().resolve()
    saved_file = folder / "multirun.yaml"
    if not saved_file.is_file():
        raise SweepMismatchError(f"sweep_resume={folder} is invalid: no multirun.yaml there (not a sweep folder)")
    saved = OmegaConf.load(saved_file).hydra.overrides
    given = {_key(a) for a in argv if "=" in a and not a.startswith("-")}
    kept = [
        str(o)
        for o in [*saved.task, *saved.hydra]
        if _key(str(o)) not in given and _key(str(o)) not in ("hydra.sweep.dir", "hydra.mode")
    ]
    return [*argv, *kept, f"hydra.sweep.dir={hydra_value(str(folder))}"]


# ---- planning, in the sweeper


@dataclass
class PlannedJob:
    num: int
    overrides: tuple[str, ...]
    action: str  # "run" (new, interrupted or asked again) or "keep" (completed, or not asked to run again)
    why: str


def _read_jobs_file(sweep_dir: Path) -> dict[tuple[str, ...], int]:
    """overrides -> job number of the jobs the folder's sweep planned (from sweep_jobs.json, else the job folders:
    when the file is missing, or unreadable, which is logged)."""
    path = sweep_dir / JOBS_FILE
    if path.is_file():
        import json

        try:
            return {_identity(job["overrides"]): int(job["num"]) for job in json.loads(path.read_text())["jobs"]}
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
            log.warning(
                "%s is unreadable (%s: %s): the job numbers are rebuilt from the job folders' %s and "
                ".hydra/overrides.yaml, and the file is written again",
                path,
                type(e).__name__,
                e,
                RECORD_NAME,
            )
    return _jobs_in_folders(sweep_dir)


def _jobs_in_folders(sweep_dir: Path) -> dict[tuple[str, ...], int]:
    """overrides -> job number of every job folder of `sweep_dir`, from its record, else from its folder name and
    Hydra's .hydra/overrides.yaml (a job whose record is unreadable, or that ended before writing one)."""
    jobs = {}
    for folder in sorted(p for p in sweep_dir.iterdir() if p.is_dir()) if sweep_dir.is_dir() else []:
        try:
            record = read_run_record(folder) or {}
        except UnreadableRecordError:
            record = {}
        number = (record.get("job") or {}).get("num")
        if number is None and folder.name.isdigit():
            number = int(folder.name)
        overrides = record.get("overrides") or saved_overrides(folder)
        if number is not None and overrides:
            jobs[_identity(overrides)] = int(number)
    return jobs


def _numbered_folders(sweep_dir: Path) -> list[int]:
    return [int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()] if sweep_dir.is_dir() else []


def _identity(overrides: Iterable[str]) -> tuple[str, ...]:
    """What makes a job the same job: its overrides, in any order (a resumed job's own ckpt_path left out)."""
    return tuple(sorted(o for o in overrides if _key(o) != "ckpt_path"))


def _values_by_key(jobs: Iterable[Sequence[str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for overrides in jobs:
        for override in overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, [])
            if value not in values[key]:
                values[key].append(value)
    return values


def _difference(saved: Iterable[Sequence[str]], asked: Iterable[Sequence[str]]) -> str:
    before, now = _values_by_key(saved), _values_by_key(asked)
    lines = []
    for key in dict.fromkeys([*before, *now]):
        if key not in now:
            lines.append(f"{key}: {','.join(before[key])} in the sweep, not set here")
        elif key not in before:
            lines.append(f"{key}: not set in the sweep, {','.join(now[key])} here")
        elif before[key] != now[key]:
            lines.append(f"{key}: {','.join(before[key])} in the sweep, {','.join(now[key])} here")
    return "\n  ".join(lines)


def _another_job(folder: Path, held: Sequence[str]) -> SweepMismatchError:
    return SweepMismatchError(
        f"job folder {folder} holds another job ({' '.join(held)}); "
        f"it is never overwritten. Rerun into a new folder (leave hydra.sweep.dir unset)"
    )


def _decide(folder: Path, overrides: tuple[str, ...], rerun: Sequence[str]) -> tuple[str, str]:
    if folder.is_dir() and locks.is_held(folder):
        return "keep", "another process is training it now"
    resumable = (folder / "checkpoints" / LAST).is_file()
    try:
        record = read_run_record(folder) if folder.is_dir() else None
    except UnreadableRecordError as e:
        saved = saved_overrides(folder)
        if saved and _identity(saved) != _identity(overrides):
            raise _another_job(folder, saved) from None
        log.warning("%s", e)
        return "run", f"its {RECORD_NAME} is unreadable: " + (
            f"resumes from its checkpoints/{LAST}" if resumable else "no checkpoint, starts again"
        )
    if record is None:
        return "run", "not started" if not folder.is_dir() else "started, but ended before its record was written"
    if _identity(record.get("overrides", [])) != _identity(overrides):
        raise _another_job(folder, record.get("overrides", []))
    status = record.get("status")
    if status == "completed":
        return "keep", "completed"
    if status in RESUMABLE:
        return "run", f"{status if status == 'interrupted' else 'killed'}: " + (
            f"resumes from its checkpoints/{LAST}" if resumable else "no checkpoint yet, starts again"
        )
    if status in rerun:
        return "run", f"{status}, run again (asked: rerun={list(rerun)})"
    return "keep", f"{status} (run it again with sweep_rerun={status})"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two planners of one sweep at once plan one after the other
        yield


def plan_sweep(
    sweep_dir: Path, jobs: Sequence[Sequence[str]], job_folder: Any, rerun: Sequence[str] = ()
) -> list[PlannedJob]:
    """Number every job of `jobs` (each a list of overrides) and decide whether it runs, writing sweep_jobs.json.

    `job_folder(num, overrides)` is the job's folder. Raises SweepMismatchError, writing nothing, when `jobs`
    are not this folder's sweep (other keys, or no job in common).
    """
    if rerun:
        check_rerun(rerun)
    with _locked(sweep_dir / ".sweep.lock"):
        known = _read_jobs_file(sweep_dir)
        asked = [tuple(job) for job in jobs]
        asked_ids = [_identity(job) for job in asked]
        if known:
            same_keys = {tuple(map(_key, job)) for job in known} == {tuple(map(_key, job)) for job in asked_ids}
            if not same_keys or not set(known) & set(asked_ids):
                raise SweepMismatchError(
                    f"this command's jobs are not the sweep in {sweep_dir} "
                    f"({'other override keys' if not same_keys else 'no job in common'}); nothing was run:\n  "
                    f"{_difference(known, asked)}\nResume that sweep with: {sweep_resume_command(sweep_dir)}, or "
                    "sweep other keys in a new folder (leave hydra.sweep.dir unset)"
                )
            added = [job for job in asked_ids if job not in known]
            if added:
                log.info("Adding %d job(s) to the sweep in %s:\n  %s", len(added), sweep_dir, _difference(known, asked))
        next_num = max([*known.values(), *_numbered_folders(sweep_dir)], default=-1) + 1  # no folder is reused
        plan = []
        overrides_of = {_identity(job): list(job) for job in known}
        for overrides, identity in zip(asked, asked_ids):
            if identity not in known:
                known[identity] = next_num
                next_num += 1
            overrides_of[identity] = list(overrides)
            num = known[identity]
            action, why = _decide(Path(job_folder(num, overrides)), overrides, rerun)
            plan.append(PlannedJob(num, overrides, action, why))
        write_json(
            sweep_dir / JOBS_FILE,
            {
                "jobs": [
                    {"num": n, "overrides": overrides_of[identity]}
                    for identity, n in sorted(known.items(), key=lambda item: item[1])
                ]
            },
        )
    kept = [job for job in plan if job.action == "keep"]
    if kept:
        log.info(
            "Sweep %s: %d of %d job(s) to run; kept as they are:\n  %s",
            sweep_dir,
            len(plan) - len(kept),
            len(plan),
            "\n  ".join(f"#{job.num} {' '.join(job.overrides)}: {job.why}" for job in kept),
        )
    for job in plan:
        if job.action == "run" and job.why != "not started":
            log.info("Job #%d %s: %s", job.num, " ".join(job.overrides), job.why)
    return plan


def launch_batches(plan: Sequence[PlannedJob], max_batch_size: int | None) -> list[list[PlannedJob]]:
    """The jobs to run, in launcher calls of consecutive numbers (a launcher numbers a call's jobs from its first)."""
    batches: list[list[PlannedJob]] = []
    for job in (job for job in plan if job.action == "run"):
        last = batches[-1] if batches else None
        if last and last[-1].num + 1 == job.num and (not max_batch_size or len(last) < max_batch_size):
            last.append(job)
        else:
            batches.append([job])
    return batches


def next_job_number(sweep_dir: Path) -> int:
    """The first job number no job of the folder uses (for sweepers that ask for jobs as they go: Optuna)."""
    return max([*_read_jobs_file(sweep_dir).values(), *_numbered_folders(sweep_dir)], default=-1) + 1


# ---- in the job


@dataclass
class JobStart:
    train: bool  # False: the job is done or another process trains it; `objective` is what it reports
    objective: float | None = None


def start_sweep_job(cfg: DictConfig) -> JobStart:
    """Claim this sweep job and decide how it runs: skipped when completed or held elsewhere, resumed from its own
    `last.ckpt` when its record says it was interrupted or killed (sets `cfg.ckpt_path`). Outside sweeps: train."""
    if not in_sweep():
        return JobStart(train=True)
    folder = Path(cfg.paths.output_dir)
    locks.release_all()
    if not locks.claim(folder):
        log.warning("Job folder %s is held by another process (%s): not trained here", folder, locks.holder(folder))
        return JobStart(train=False)
    try:
        record = read_run_record(folder)
        status = record.get("status") if record else None
        how = status if status == "interrupted" else "killed"
    except UnreadableRecordError as e:
        log.warning("%s: this job runs again", e)
        record, status, how = None, "running", "unrecorded (its record is unreadable)"
    if record and status == "completed":
        log.info("Job %s is completed already: kept as it is", folder)
        return JobStart(train=False, objective=record.get("objective"))
    last = folder / "checkpoints" / LAST
    # a pruned job runs again (sweep_rerun=pruned) from where its pruner stopped it, to its end
    if status in (*RESUMABLE, "pruned") and last.is_file() and not cfg.get("ckpt_path"):
        with open_dict(cfg):
            cfg.ckpt_path = str(last)
        log.info("Job %s was %s: resuming from %s", folder, "pruned" if status == "pruned" else how, last)
    return JobStart(train=True)


# ---- the sweepers' part (hydra_plugins.mlplab_sweepers)


def job_folder_function(sweeper: Any) -> Any:
    """job number, overrides -> the folder Hydra's launchers give that job (hydra.sweep.dir / hydra.sweep.subdir)."""
    from hydra.core.hydra_config import HydraConfig

    def folder(num: int, overrides: Sequence[str]) -> Path:
        cfg = job_config(sweeper, overrides, num, job_id=f"job_id_for_{num}")  # as Hydra's basic launcher
        HydraConfig.instance().set_config(cfg)
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)

    return folder


@contextlib.contextmanager
def refused_plainly() -> Iterator[None]:
    """A ConfigError in the block (a refused rerun, an unwritable sweep folder) ends the process with its message
    (`ConfigError: ...`, exit code 1), as train.py's cli does, instead of Hydra's traceback of its sweeper; raised
    as it is with HYDRA_FULL_ERROR=1."""
    try:
        yield
    except ConfigError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"{type(error).__name__}: {error}") from None


def resumable_basic_sweep(sweeper: Any, arguments: list[str]) -> list[Any]:
    """BasicSweeper.sweep, handing the launcher only the jobs to run, with their own numbers."""
    with refused_plainly():
        return _resumable_basic_sweep(sweeper, arguments)


def _resumable_basic_sweep(sweeper: Any, arguments: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    locks.release_all()  # a job of an earlier sweep in this process that ended by an exception still holds its lock
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides([*sweeper._parse_config(), *arguments])
    (jobs,) = sweeper.split_arguments(overrides, None)
    sweep_dir = Path(sweeper.config.hydra.sweep.dir)
    check_writable(sweep_dir, "hydra.sweep.dir", SWEEP_DIR_HINT)
    plan = plan_sweep(sweep_dir, jobs, job_folder_function(sweeper), rerun=sweeper.rerun)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    returns = []
    for batch in launch_batches(plan, sweeper.max_batch_size):
        job_overrides = [list(job.overrides) for job in batch]
        sweeper.validate_batch_is_legal(job_overrides)
        results = sweeper.launcher.launch(job_overrides, initial_job_idx=batch[0].num)
        for result in results:
            _ = result.return_value  # raises a job's exception, as Hydra's BasicSweeper does
        returns.append(results)
    return returns


class ReleaseJobClaim(Callback):
    """Releases the job's lock when the job ends (taken by start_sweep_job; a Hydra callback: conf/hydra/default.yaml)."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        # only this job's: the members of a stack hold theirs until each of them ends (mlplab.sweeps.stacked)
        folder = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        if folder:
            locks.release(os.path.abspath(folder))
        else:
            locks.release_all()
