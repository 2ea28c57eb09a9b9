"""`hydra/launcher=stacked`: group the batch of jobs into stacks, train each stack at once, finish each job alone."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig

from mlplab.run.record import RECORD_NAME
from mlplab.sweeps.devices import VISIBLE, slot_devices
from mlplab.sweeps.isolated import lost_job, run_in_slots, worst_return
from mlplab.sweeps.jobs import job_config
from mlplab.sweeps.stacked.grouping import Stack, differing_keys, group_jobs
from mlplab.sweeps.stacked.members import (
    Member,
    claim_member,
    finish_member,
    interrupt_member,
    job_output_dir,
    start_member,
)
from mlplab.sweeps.stacked.training import StackTrainer
from mlplab.utils import stops

log = logging.getLogger(__name__)
# where Lightning's rank-zero info lines come from (its tip, "GPU available: ...")
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def _ran_before(cfg: DictConfig) -> bool:
    """Whether the job's folder has a record from an earlier try of this sweep: then it runs by itself, where the
    single-run path keeps it (completed) or resumes it from its `last.ckpt` (mlplab.sweeps.resume)."""
    return (Path(job_output_dir(cfg)) / RECORD_NAME).is_file()  # whole or not


@dataclass
class Plan:
    """A launched batch: each job's composed config and number, and the stacks they are grouped into."""

    cfgs: list[DictConfig]
    nums: list[int]
    stacks: list[Stack]

    def of(self, stack: Stack) -> tuple[list[DictConfig], list[int]]:
        """The configs and numbers of `stack`'s jobs."""
        return [self.cfgs[i] for i in stack.jobs], [self.nums[i] for i in stack.jobs]


def describe(stack: Stack, cfgs: Sequence[DictConfig], nums: Sequence[int]) -> str:
    jobs = ", ".join(f"#{nums[i]}" for i in stack.jobs)
    if stack.alone:
        return f"job {jobs} runs alone: {stack.alone}"
    keys = differing_keys([cfgs[i] for i in stack.jobs])
    apart = f"; apart from other jobs: {stack.apart}" if stack.apart else ""
    return f"stack of {len(stack.jobs)} jobs ({jobs}) differing in {', '.join(keys) or 'nothing'}{apart}"


def plan(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Plan:
    """The batch's jobs composed, numbered and grouped into stacks, with one log line per stack and one per job."""
    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    nums = [initial_job_idx + i for i in range(len(job_overrides))]
    cfgs = [job_config(launcher, overrides, num) for overrides, num in zip(job_overrides, nums)]
    stacks = group_jobs(cfgs, int(launcher.max_members), run_alone=[_ran_before(cfg) for cfg in cfgs])
    log.info(
        "Launching %d jobs in %d stacks (hydra.launcher.max_members=%d); sweep output dir: %s",
        len(cfgs),
        len(stacks),
        launcher.max_members,
        config.hydra.sweep.dir,
    )
    for stack in stacks:
        log.info("\t%s", describe(stack, cfgs, nums))
        for i in stack.jobs:
            log.info("\t\t#%d : %s", nums[i], " ".join(filter_overrides(job_overrides[i])))
    return Plan(cfgs, nums, stacks)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Run the batch: each stack as one batched training, each job that does not stack as a single run; one JobReturn
    per job, in order (its return value: the job's objective, as train.py returns it). With several GPUs, one stack
    per GPU side by side (each in a process that sees only its own); else one after the other, in this process."""
    batch = plan(launcher, job_overrides, initial_job_idx)
    # a stack trains on one device: one slot per device
    devices = slot_devices({"devices": launcher.devices, "devices_per_job": 1}, launcher.config.trainer)
    if len(devices) > 1 and len(batch.stacks) > 1:
        by_stack = _side_by_side(launcher, batch, devices)
    else:
        by_stack = [run_stack(launcher, *batch.of(stack), alone=stack.alone) for stack in batch.stacks]
    returns: list[JobReturn | None] = [None] * len(batch.cfgs)
    for stack, stack_returns in zip(batch.stacks, by_stack):
        for i, job_return in zip(stack.jobs, stack_returns):
            returns[i] = job_return
    return returns  # type: ignore[return-value]  # every stack filled its jobs' places


def _side_by_side(launcher: Any, batch: Plan, devices: Sequence[str]) -> list[list[JobReturn]]:
    """Each stack's JobReturns, the stacks trained in one worker process per device (mlplab.sweeps.isolated)."""
    slots = min(len(devices), len(batch.stacks))
    log.info("Training %d stacks %d at a time, one per device (%s)", len(batch.stacks), slots, " ".join(devices))
    state = Singleton.get_state()

    def run(executor: Any, stack: Stack) -> list[JobReturn]:
        return executor.submit(run_stack_in_worker, launcher, *batch.of(stack), stack.alone, state).result()

    def lost(stack: Stack, error: BaseException, slot: int) -> list[JobReturn]:
        cfgs, nums = batch.of(stack)
        return [lost_job(launcher, n, list(c.hydra.overrides.task), error, devices[slot]) for c, n in zip(cfgs, nums)]

    def failed(stack: Stack, error: BaseException, slot: int) -> list[JobReturn]:
        cfgs, nums = batch.of(stack)
        log.warning(
            "Stack of jobs %s: %s: %s (their run_record.json say how they ended)", nums, type(error).__name__, error
        )
        return [worst_return(launcher, num, list(cfg.hydra.overrides.task)) for cfg, num in zip(cfgs, nums)]

    return run_in_slots(batch.stacks, [{VISIBLE: group} for group in devices[:slots]], run, lost, failed)


def run_stack_in_worker(
    launcher: Any, cfgs: Sequence[DictConfig], nums: Sequence[int], alone: str | None, singleton_state: dict
) -> list[JobReturn]:
    """run_stack in a worker process, which starts from the sweep's Hydra state."""
    Singleton.set_state(singleton_state)
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return run_stack(launcher, cfgs, nums, alone=alone)


def run_stack(
    launcher: Any, cfgs: Sequence[DictConfig], nums: Sequence[int], alone: str | None = None
) -> list[JobReturn]:
    """One stack's jobs (their composed configs and numbers), one JobReturn each, in order: trained as one batched
    network, each member then finished as a Hydra job of its own; a job that runs `alone` (why) runs as a single run.
    hydra/launcher=stacked calls it in the sweep's process, stacked_submitit_* in each stack's submitted job.

    A stop signal ends the stack as it ends a sweep of single runs: members already done (stopped early, diverged)
    finish as such, the others end `interrupted` with their rows and the command that resumes them; then it stops.
    """
    run = partial(run_job, job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    if alone:
        (cfg,) = cfgs
        return [run(hydra_context=launcher.hydra_context, task_function=launcher.task_function, config=cfg)]
    stack = train_stack(cfgs, nums)
    returns = []
    finishing = 0.0  # the time spent finishing earlier members: not part of the next member's wall time
    with each_warning_once():
        for cfg, member, kept in zip(cfgs, stack.members, stack.kept):
            if member is None:  # held by another process, or completed by one: not trained here
                task: Any = lambda _cfg, value=kept: value  # noqa: E731
            elif stack.objective is not None:
                task = lambda _cfg, value=stack.objective: value  # noqa: E731
            elif stack.stop is not None and not member.frozen:
                task = partial(interrupt_member, member, stack.stop)
            else:
                task = partial(finish_member, member)
            started = time.perf_counter()
            if member is not None:
                member.recorder.discount(finishing)
            # the member's end as a Hydra job: its .hydra/ files, train.log, Hydra's callbacks, its JobReturn
            returns.append(run(hydra_context=launcher.hydra_context, task_function=task, config=cfg))
            finishing += time.perf_counter() - started
    if stack.stop is not None:
        raise stack.stop
    return returns


@dataclass
class TrainedStack:
    """What became of a stack's training: its members (None: not trained here, `kept` its objective), the worst
    objective when it failed, the stop signal that ended it."""

    members: list[Member | None]
    kept: list[float | None]
    objective: float | None = None
    stop: stops.Stopped | None = None


def train_stack(cfgs: Sequence[DictConfig], nums: Sequence[int]) -> TrainedStack:
    """Claim each job's folder and build every member as its single run would, then train them together. An error
    fails every member, recorded, and gives the worst objective so that the sweep goes on, as train.py does for a
    job; a stop signal saves every member still training its `last.ckpt` and records it `interrupted`."""
    stack = TrainedStack([], [])
    members: list[Member] = []
    with stops.handled():
        try:
            for cfg, num in zip(cfgs, nums):
                train, objective = claim_member(cfg)
                member = start_member(cfg, num, shared=members[0].datamodule if members else None) if train else None
                stack.members.append(member)
                stack.kept.append(objective)
                members += [member] if member else []
            if members:
                StackTrainer(members).fit()
        except BaseException as error:
            stop = stops.stop_behind(error)
            # a member done training keeps its end (finished by run_stack); the others are interrupted or failed
            ending = [m for m in members if stop is None or not m.frozen]
            objectives = [member.recorder.failed(stop or error) for member in ending]
            if stop is not None:
                log.warning("Stack of jobs %s %s; the members still training say interrupted", list(nums), stop)
                stack.stop = stop
                return stack
            if not isinstance(error, Exception) or len(stack.members) < len(cfgs):
                raise  # a job that could not even be built (a config error) stops the sweep, as a single run does
            log.exception("Stack of jobs %s failed (recorded in each job's run_record.json); the sweep goes on", nums)
            stack.objective = objectives[0]
    return stack


@contextlib.contextmanager
def each_warning_once() -> Iterator[None]:
    """Show each distinct warning, and each distinct Lightning info line (its tips, its device lines), once while
    a stack's members finish: every member builds a Trainer of its own, which would repeat them per member."""
    seen: set[tuple[str, str]] = set()

    def once(record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in seen:
            return False
        seen.add(key)
        return True

    lightning_logs = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    with warnings.catch_warnings():
        warnings.simplefilter("once")  # Lightning resets the per-module registry; "once" is per message
        for logger in lightning_logs:
            logger.addFilter(once)
        try:
            yield
        finally:
            for logger in lightning_logs:
                logger.removeFilter(once)
