"""Optuna sweeps that resume: a stored study goes on toward its `n_trials` total, never reusing a job folder.

Hydra's Optuna sweeper asks `n_trials` new trials on every run and numbers its jobs from 0 (Hydra #3328):
run again into the same sweep folder it would add `n_trials` more and write into the earlier jobs' folders.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from optuna.trial import TrialState

from mlplab.sweeps.resume import SWEEP_DIR_HINT, next_job_number, refused_plainly
from mlplab.utils.files import check_writable

log = logging.getLogger(__name__)


def trials_to_go(storage: Any, study_name: str | None, n_trials: int) -> int:
    """How many trials the study still needs to have `n_trials` finished ones. Trials a stopped sweep left
    running are marked failed (their jobs never reported a value) and not counted."""
    if storage is None or study_name is None:
        return n_trials
    if study_name not in {summary.study_name for summary in optuna.get_all_study_summaries(storage)}:
        return n_trials
    study = optuna.load_study(study_name=study_name, storage=storage)
    left_running = [trial.number for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in left_running:
        log.warning("Trial %d of study %s was left running by a stopped sweep: marked failed", number, study_name)
        study.tell(number, state=TrialState.FAIL)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in left_running]
    to_go = max(0, n_trials - len(finished))
    log.info("Study %s has %d finished trial(s) of n_trials=%d: %d to go", study_name, len(finished), n_trials, to_go)
    return to_go


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        with refused_plainly():
            check_writable(self.config.hydra.sweep.dir, "hydra.sweep.dir", SWEEP_DIR_HINT)
        self.job_idx = next_job_number(Path(self.config.hydra.sweep.dir))
        self.n_trials = trials_to_go(self.storage, self.study_name, self.n_trials)
        return super().sweep(arguments)
