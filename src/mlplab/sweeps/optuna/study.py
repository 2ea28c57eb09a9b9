"""The study a search asks its trials from, shared by every sweeper process given the same storage and study_name.

Several `train.py -m hparams_search=...` processes (one per machine, or several on one) run one search together:
each claims trials under a lock beside the storage, counting the trials that have a result or are running, so that
together they run `n_trials` trials and none twice. Trials a stopped sweeper left running (its process is gone) are
marked failed and do not count: they are asked again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from mlplab.callbacks.optuna_pruning import PRUNED_AT
from mlplab.utils.optuna_storage import claim_lock_path

log = logging.getLogger(__name__)

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # toward n_trials; FAIL: lost, asked again
OWNER_HOST, OWNER_PID = "sweeper_host", "sweeper_pid"  # user attrs: the sweeper process that asked the trial
JOB, SWEEP_DIR = "job", "sweep_dir"  # user attrs: the trial's job number, and the sweep folder it is in
RERUN_OF = "rerun_of_trial"  # user attr: the pruned trial this one ran to its end (sweep_rerun=pruned); not counted


@contextlib.contextmanager
def claiming(resolved_storage: str) -> Iterator[None]:
    """Hold the storage's claim lock (fcntl; the kernel drops it if the process dies); no lock for database servers
    (there, a surplus trial two sweepers asked at once is marked failed: see surplus)."""
    path = claim_lock_path(resolved_storage)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_abandoned(trial: FrozenTrial) -> bool:
    """A running trial whose sweeper is gone: asked on this host by a process that no longer runs, or by a sweeper
    that did not say who it was (not mlplab's). A trial of a sweeper on another host is taken as live."""
    host, pid = trial.user_attrs.get(OWNER_HOST), trial.user_attrs.get(OWNER_PID)
    if host is None or pid is None:
        return True
    return host == socket.gethostname() and not _alive(int(pid))


def fail_abandoned(study: optuna.Study) -> list[int]:
    """Mark the running trials that no sweeper will tell failed; their numbers."""
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_abandoned(trial):
            log.warning(
                "Trial %d of study %s was left running by a stopped sweep (job %s): marked failed",
                trial.number,
                study.study_name,
                trial.user_attrs.get(JOB, "?"),
            )
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            numbers.append(trial.number)
    return numbers


def counted(trials: Sequence[FrozenTrial]) -> int:
    """The trials that count toward n_trials: with a result or running; a rerun of a pruned trial does not (the pruned
    one counted)."""
    return sum(trial.state in COUNTED and RERUN_OF not in trial.user_attrs for trial in trials)


def surplus(study: optuna.Study, trial: optuna.trial.Trial, n_trials: int) -> bool:
    """Whether `trial` is beyond `n_trials` counting the trials asked before it (two sweepers asked at once on a
    database server): then it is marked failed and not run."""
    before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    if counted(before) < n_trials:
        return False
    study.tell(trial, state=TrialState.FAIL)
    log.info(
        "Trial %d of study %s is beyond n_trials=%d (asked at once elsewhere): not run",
        trial.number,
        study.study_name,
        n_trials,
    )
    return True


def claim_trials(
    study: optuna.Study,
    resolved_storage: str,
    n_trials: int,
    batch: int,
    fixed_distributions: dict,
    user_attrs: dict,
) -> list[optuna.trial.Trial]:
    """Up to `batch` new trials, so that the study holds at most `n_trials` counted ones; [] when it has them all."""
    with claiming(resolved_storage):
        fail_abandoned(study)
        to_go = n_trials - counted(study.get_trials(deepcopy=False))
        trials = []
        for _ in range(max(0, min(batch, to_go))):
            trial = study.ask(fixed_distributions)
            if surplus(study, trial, n_trials):
                break
            for key, value in {**user_attrs, OWNER_HOST: socket.gethostname(), OWNER_PID: os.getpid()}.items():
                trial.set_user_attr(key, value)
            trials.append(trial)
    return trials


def pruned_at(study: optuna.Study, number: int) -> int | None:
    """The epoch at which the job of trial `number` was pruned (its callback said so in the storage), or None."""
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    value = trial.user_attrs.get(PRUNED_AT) if trial is not None else None
    return int(value) if value is not None else None


def study_name_of(study_name: str | None, sweep_dir: str | Path) -> str:
    """`hydra.sweeper.study_name`, or the sweep folder's name (a rerun into the folder finds its study again)."""
    return str(study_name) if study_name else Path(sweep_dir).resolve().name
