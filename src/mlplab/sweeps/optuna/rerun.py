"""`sweep_rerun=pruned` for a search: each pruned trial of the sweep folder's jobs runs again to its end.

Its job runs again in its own folder, resuming from its `checkpoints/last.ckpt` (mlplab.sweeps.resume.start_sweep_job)
without a pruner, and its result is told to the study as a new COMPLETE trial with the same parameters (a finished
trial cannot change state in Optuna), whose user attr `rerun_of_trial` names the pruned one; that trial does not count
toward `n_trials` (the pruned one already did). A pruned trial whose rerun completed is not run again.

Only pruned trials rerun: a failed trial does not count toward `n_trials`, so the search already asks a new trial in its
place; a diverged trial is a result (the worst value) that the sampler learns from, and would diverge again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from mlplab.callbacks.optuna_pruning import PRUNED_AT
from mlplab.run.record import read_run_record
from mlplab.sweeps.optuna.study import JOB, OWNER_HOST, OWNER_PID, RERUN_OF, SWEEP_DIR
from mlplab.utils.errors import ConfigError

log = logging.getLogger(__name__)

SEARCH_RERUNNABLE = ("pruned",)


def reruns_pruned(statuses: Sequence[str]) -> bool:
    """Whether `hydra.sweeper.rerun` (sweep_rerun=...) asks a search to run its pruned trials again; ConfigError for a
    status a search does not rerun, saying why."""
    wrong = [str(status) for status in statuses if status not in SEARCH_RERUNNABLE]
    if wrong:
        raise ConfigError(
            f"sweep_rerun={','.join(map(str, statuses))} is invalid for an Optuna search: it reruns only pruned trials "
            f"(sweep_rerun=pruned), not {', '.join(wrong)}. A failed trial does not count toward n_trials, so the "
            "search asks a new trial in its place when it runs again; a diverged trial is a result (the worst value) "
            "that the sampler learns from, and its job would diverge again"
        )
    return bool(statuses)


def pruned_to_rerun(study: optuna.Study, sweep_dir: Path) -> list[FrozenTrial]:
    """The pruned trials whose jobs are in `sweep_dir` and that no completed rerun has run to their end yet."""
    folder = str(Path(sweep_dir).resolve())
    done = {
        t.user_attrs[RERUN_OF]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if RERUN_OF in t.user_attrs
    }
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.number not in done and t.user_attrs.get(SWEEP_DIR) == folder and t.user_attrs.get(JOB) is not None
    ]


def tell_rerun(study: optuna.Study, pruned: FrozenTrial, job_dir: Path, values: list[float]) -> int | None:
    """Tell the study what the rerun of `pruned` in `job_dir` gave: a COMPLETE trial of its parameters when the job's
    record says completed (its number returned), else nothing (it runs again at the next `sweep_rerun=pruned`)."""
    record = read_run_record(job_dir) or {}
    if record.get("status") != "completed":
        log.warning(
            "The rerun of pruned trial %d (job %s) ended %s: not told to the study (sweep_rerun=pruned tries again)",
            pruned.number,
            pruned.user_attrs.get(JOB),
            record.get("status", "without a record"),
        )
        return None
    kept = {key: value for key, value in pruned.user_attrs.items() if key not in (PRUNED_AT, OWNER_HOST, OWNER_PID)}
    study.add_trial(
        optuna.trial.create_trial(
            params=pruned.params,
            distributions=pruned.distributions,
            values=values,
            # its epochs up to the pruning: the rerun resumed from there (the later epochs are not reported)
            intermediate_values=pruned.intermediate_values,
            user_attrs={**kept, RERUN_OF: pruned.number},
        )
    )
    number = max(t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RERUN_OF) == pruned.number)
    log.info("Pruned trial %d (job %s) ran to its end as trial %d: %s", pruned.number, kept.get(JOB), number, values)
    return number
