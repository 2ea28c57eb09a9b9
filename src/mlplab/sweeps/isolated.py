"""Parallel sweep jobs that cannot take each other down (`hydra/launcher=parallel`).

Hydra's joblib launcher runs every job in one loky pool: when one worker process dies (SIGKILL, the
out-of-memory killer), loky breaks the whole pool, `TerminatedWorkerError` ends the sweep, the jobs that
were running in the other workers are left `running` and no report is written. Here each of the
`n_jobs` slots has a pool of its own with one worker (reused from job to job, as joblib reuses its
workers, so torch is imported once per slot): a worker that dies takes only its own job, which is
recorded `failed` (mlplab.run.record.record_lost_job) and returns the worst objective to the sweeper;
the slot starts a fresh worker for its next job, and the other slots never notice.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_joblib_launcher._core import execute_job
from joblib.externals.loky.process_executor import BrokenProcessPool, ProcessPoolExecutor

from mlplab.run.record import record_lost_job
from mlplab.sweeps.devices import VISIBLE, slot_devices
from mlplab.sweeps.jobs import job_config

log = logging.getLogger(__name__)

STOP_WAIT_S = 30  # how long a stopped sweep waits for its running jobs to save and record their stop


def _slots(n_jobs: Any, jobs: int) -> int:
    """joblib's meaning of n_jobs: a count, or -1 for every core (-2: all but one, ...)."""
    n = int(n_jobs or 1)
    if n < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n)
    return max(1, min(n, jobs))


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Run the jobs `n_jobs` at a time, each slot in a worker process of its own; one JobReturn per job, in order."""
    setup_globals()
    config, hydra_context = launcher.config, launcher.hydra_context
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    devices = slot_devices(launcher.joblib, config.trainer)
    if devices:
        slots = min(len(devices), len(job_overrides))
        log.info(
            "Launching %d jobs, %d at a time, one per device group (%s; n_jobs=%s is for CPU sweeps); sweep output "
            "dir: %s",
            len(job_overrides),
            slots,
            " ".join(f"[{group}]" for group in devices),
            launcher.joblib.get("n_jobs"),
            sweep_dir,
        )
    else:
        slots = _slots(launcher.joblib.get("n_jobs"), len(job_overrides))
        log.info(
            "Launching %d jobs, %d at a time, each slot in a process of its own; sweep output dir: %s",
            len(job_overrides),
            slots,
            sweep_dir,
        )
    for idx, overrides in enumerate(job_overrides):
        log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))

    singleton_state = Singleton.get_state()

    def run(executor: ProcessPoolExecutor, task: tuple[int, Sequence[str]]) -> JobReturn:
        idx, overrides = task
        num = initial_job_idx + idx
        return executor.submit(
            execute_job, num, overrides, hydra_context, config, launcher.task_function, singleton_state
        ).result()

    def lost(task: tuple[int, Sequence[str]], error: BaseException, slot: int) -> JobReturn:
        idx, overrides = task
        return lost_job(launcher, initial_job_idx + idx, overrides, error, devices[slot] if devices else None)

    def failed(task: tuple[int, Sequence[str]], error: BaseException, slot: int) -> JobReturn:
        idx, overrides = task
        num = initial_job_idx + idx
        log.warning("Job #%d: %s: %s (its run_record.json says how it ended)", num, type(error).__name__, error)
        return worst_return(launcher, num, overrides)

    envs = [{VISIBLE: group} for group in devices[:slots]] if devices else [None] * slots
    return run_in_slots(list(enumerate(job_overrides)), envs, run, lost, failed)


def run_in_slots(
    tasks: Sequence[Any],
    envs: Sequence[dict[str, str] | None],
    run: Callable[[ProcessPoolExecutor, Any], Any],
    lost: Callable[[Any, BaseException, int], Any],
    failed: Callable[[Any, BaseException, int], Any],
) -> list[Any]:
    """Run `tasks` in `len(envs)` slots side by side, each slot a worker process of its own (environment `envs[slot]`,
    reused from task to task); `run(executor, task)` gives a task's result. A worker that dies takes only its task
    (`lost(task, error, slot)` is its result) and the slot starts a fresh worker, with the same environment, for its
    next task; `failed(task, error, slot)` is the result of a task that raised (a SystemExit from a stop signal).
    A signal to this process stops the running tasks the same way and runs no new one. Results in task order."""
    pending: queue.Queue[tuple[int, Any]] = queue.Queue()
    for index, task in enumerate(tasks):
        pending.put((index, task))
    results: list[Any] = [None] * len(tasks)
    executors: list[ProcessPoolExecutor] = []

    def run_slot(slot: int) -> None:
        executor = None
        while True:
            try:
                index, task = pending.get_nowait()
            except queue.Empty:
                break
            if executor is None:
                executor = ProcessPoolExecutor(max_workers=1, env=envs[slot])
                executors.append(executor)
            try:
                results[index] = run(executor, task)
            except BrokenProcessPool as error:  # loky's TerminatedWorkerError: the worker died, with the task
                results[index] = lost(task, error, slot)
                executor.shutdown(wait=False)
                executor = None
            except BaseException as error:  # noqa: BLE001  SystemExit from a task a signal stopped, or an unpicklable task
                results[index] = failed(task, error, slot)
        if executor is not None:
            executor.shutdown(wait=True)

    threads = [
        threading.Thread(target=run_slot, args=(i,), name=f"sweep-slot-{i}", daemon=True) for i in range(len(envs))
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # a short wait: the main thread must stay free to take signals
    except BaseException:
        # the sweep was stopped (Ctrl-C, SIGTERM): stop the running tasks the same way, so that they save and record
        # it, and give them a moment to, before the report is written on the way out
        for executor in executors:
            # loky's {pid: process}, private (tests/test_upstream_internals.py checks it is still there)
            for process in list(executor._processes.values()):
                if process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)
        while not pending.empty():  # the slots take no new task
            pending.get_nowait()
        for thread in threads:
            thread.join(timeout=STOP_WAIT_S)
        raise
    return results


def worst_return(launcher: Any, num: int, overrides: Sequence[str]) -> JobReturn:
    """The JobReturn of a job that ended without a result of its own: COMPLETED, with the worst objective."""
    from mlplab.run.record import objective_direction, worst_value

    job_cfg = job_config(launcher, overrides, num)
    ret = JobReturn(
        overrides=list(overrides),
        cfg=job_cfg,
        hydra_cfg=None,
        task_name=job_cfg.hydra.job.name,
        working_dir=str(Path(str(job_cfg.hydra.sweep.dir)) / str(job_cfg.hydra.sweep.subdir)),
    )
    # a number the sweeper takes as the worst trial (a FAILED JobReturn would end a basic sweep, Optuna refuses NaN)
    ret.return_value = worst_value(objective_direction(job_cfg))
    ret.status = JobStatus.COMPLETED
    return ret


def lost_job(launcher: Any, num: int, overrides: Sequence[str], error: BaseException, devices: str | None) -> JobReturn:
    """The JobReturn of a job whose process died (the worst objective), recorded `failed` in its run_record.json."""
    ret = worst_return(launcher, num, overrides)
    # loky's message ends "The exit codes of the workers are {SIGKILL(-9)}": the part worth keeping
    codes = re.search(r"exit codes of the workers are (\{.*?\})", str(error))
    reason = f"the job's process died (exit code {codes.group(1) if codes else 'unknown'}; {type(error).__name__})"
    record_lost_job(
        ret.working_dir,
        overrides,
        {"name": ret.cfg.hydra.job.name, "num": num, "id": ret.cfg.hydra.job.id},
        reason,
        devices=devices,
    )
    log.error("Job #%d lost: %s; recorded failed in %s, the other jobs go on", num, reason, ret.working_dir)
    return ret
