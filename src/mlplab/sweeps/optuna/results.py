"""optimization_results.yaml: the study's best trial (one objective) or its Pareto front (several), with the job
number of each, as the sweep report shows them."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from mlplab.sweeps.optuna.study import JOB, RERUN_OF, SWEEP_DIR

log = logging.getLogger(__name__)

RESULTS_NAME = "optimization_results.yaml"


def _plain(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def trial_summary(trial: FrozenTrial) -> dict[str, Any]:
    summary = {
        "trial": trial.number,
        "job": trial.user_attrs.get(JOB),
        "sweep_dir": trial.user_attrs.get(SWEEP_DIR),
        "values": [_plain(v) for v in trial.values or []],
        "params": dict(trial.params),
    }
    if RERUN_OF in trial.user_attrs:  # the pruned trial it ran to its end (sweep_rerun=pruned)
        summary[RERUN_OF] = trial.user_attrs[RERUN_OF]
    return summary


def write_results(study: optuna.Study, sweep_dir: Path, directions: Sequence[str]) -> dict[str, Any] | None:
    """Write `<sweep>/optimization_results.yaml` (hydra-optuna-sweeper's keys, plus each trial's job); None when no
    trial completed."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = {state.name.lower(): states.count(state) for state in TrialState if states.count(state)}
    if TrialState.COMPLETE not in states:
        log.warning("Study %s has no completed trial (%s)", study.study_name, counts)
        return None
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "directions": list(directions),
        "trials": counts,
    }
    reruns = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if RERUN_OF in t.user_attrs]
    if reruns:  # sweep_rerun=pruned: each pruned trial run to its end, as a COMPLETE trial of its own
        results["reruns"] = [
            {"trial": t.number, RERUN_OF: t.user_attrs[RERUN_OF], "job": t.user_attrs.get(JOB)} for t in reruns
        ]
    if len(directions) == 1:
        best = study.best_trial
        results.update(best_params=dict(best.params), best_value=_plain(best.value), best_trial=trial_summary(best))
        log.info("Best trial %d (job %s): %s %s", best.number, best.user_attrs.get(JOB), best.value, best.params)
    else:
        front = study.best_trials
        results["best_trials"] = [trial_summary(trial) for trial in front]
        results["solutions"] = [{"params": dict(t.params), "values": list(t.values)} for t in front]
        log.info("Pareto front: %d trial(s): %s", len(front), [t.number for t in front])
    OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_NAME)
    return results
