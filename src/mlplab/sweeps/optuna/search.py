"""The search: ask `n_jobs` trials, launch them as one batch with the configured launcher, tell their results; until
the study holds `n_trials` trials with a result (all sweeper processes on its storage together).

A rerun into the sweep folder goes on toward `n_trials` in all, numbering its jobs after the folder's
(mlplab.sweeps.resume.next_job_number): no job folder is ever reused. With `sweep_rerun=pruned` it first runs the
folder's pruned trials again to their end, each in its own job folder (mlplab.sweeps.optuna.rerun).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from mlplab.sweeps.optuna.pictures import draw_pictures
from mlplab.sweeps.optuna.rerun import pruned_to_rerun, reruns_pruned, tell_rerun
from mlplab.sweeps.optuna.results import write_results
from mlplab.sweeps.optuna.settings import (
    check_pruning,
    check_sampler_choice,
    directions_of,
    make_pruner,
    make_sampler,
)
from mlplab.sweeps.optuna.space import SearchSpace, grid_of, params_overrides, search_space
from mlplab.sweeps.optuna.study import JOB, SWEEP_DIR, claim_trials, pruned_at, study_name_of
from mlplab.sweeps.resume import SWEEP_DIR_HINT, PlannedJob, launch_batches, next_job_number, refused_plainly
from mlplab.utils import locks
from mlplab.utils.errors import ConfigError
from mlplab.utils.files import check_writable
from mlplab.utils.optuna_storage import open_storage, resolve_storage
from mlplab.utils.overrides import hydra_value

log = logging.getLogger(__name__)


def trial_overrides(trial: optuna.trial.Trial, space: SearchSpace, custom_search_space: Any, config: Any) -> list[str]:
    """The job overrides of `trial`: its suggested parameters (asked with the space's distributions), what the
    custom search space function suggests, and the fixed values."""
    if custom_search_space is not None:
        custom_search_space(config, trial)
    overlap = set(trial.params) & set(space.fixed)
    if overlap:
        raise ConfigError(f"hydra.sweeper: {sorted(overlap)} are both searched and fixed")
    for key, value in space.fixed.items():
        trial.set_user_attr(key, value)
    return params_as_overrides(trial.params, space)


def params_as_overrides(params: dict[str, Any], space: SearchSpace) -> list[str]:
    """A trial's parameters and the space's fixed values as job overrides."""
    return [
        *(f"{key}={_value_text(value)}" for key, value in params.items()),
        *(f"{k}={v}" for k, v in space.fixed.items()),
    ]


def _value_text(value: Any) -> str:
    return "null" if value is None else str(value)


def _values(return_value: Any, directions: Sequence[str]) -> list[float]:
    values = list(return_value) if isinstance(return_value, (list, tuple)) else [return_value]
    if len(values) != len(directions):
        raise ValueError(f"the job returned {return_value!r}: the study has {len(directions)} objective(s)")
    floats = [float(value) for value in values]
    if any(math.isnan(value) for value in floats):
        raise ValueError(f"the job returned {return_value!r}: NaN is no result")
    return floats


def tell(
    study: optuna.Study, trial: optuna.trial.Trial, job_return: Any, directions: Sequence[str]
) -> Exception | None:
    """Tell the study what became of `trial`'s job: pruned (its callback said so), complete, or failed (the job's
    exception, returned)."""
    epoch = pruned_at(study, trial.number)
    try:
        values = _values(job_return.return_value, directions)
    except Exception as error:  # the job raised (a task that is not mlplab's train), or returned no number
        if epoch is not None:
            study.tell(trial, state=TrialState.PRUNED)
            return None
        log.warning("Trial %d failed: %s", trial.number, error)
        study.tell(trial, state=TrialState.FAIL)
        return error
    try:
        if epoch is not None:
            study.tell(trial, state=TrialState.PRUNED)  # Optuna keeps its last reported value
            log.info("Trial %d was pruned at epoch %d", trial.number, epoch)
        else:
            study.tell(trial, values=values)
    except RuntimeError as error:  # GridSampler stops the study when its grid is done: only optimize() may stop
        if "Study.stop" not in str(error):
            raise
    return None


def _job_dir(job_return: Any, default: Path) -> Path:
    """The folder the job ran in (its Hydra config's), else `default` (a launcher's stand-in return for a lost job)."""
    hydra_cfg = getattr(job_return, "hydra_cfg", None)
    folder = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None) if hydra_cfg is not None else None
    return Path(str(folder)) if folder else default


def run_search(settings: Any, config: Any, launcher: Any, arguments: list[str]) -> list[Any]:
    """The sweeper's search: its settings checked first (a refused one ends the process with its one-line message)."""
    with refused_plainly():
        search = OptunaSearch(settings, config, launcher)
    return search.run(arguments)


class OptunaSearch:
    """One sweeper process's part of a search. `settings`: `hydra.sweeper` (mlplab_optuna's schema)."""

    def __init__(self, settings: Any, config: Any, launcher: Any) -> None:
        self.config = config
        self.launcher = launcher
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.n_trials = int(settings.n_trials)
        self.n_jobs = int(settings.n_jobs)
        if self.n_trials < 1 or self.n_jobs < 1:
            raise ConfigError(f"hydra.sweeper: n_trials={self.n_trials} and n_jobs={self.n_jobs} must be >= 1")
        self.max_failure_rate = float(settings.max_failure_rate)
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise ConfigError(f"hydra.sweeper.max_failure_rate={self.max_failure_rate} is invalid: between 0 and 1")
        check_sampler_choice(config)
        self.directions = directions_of(settings.get("direction"), settings.get("directions"))
        self.storage = resolve_storage(settings.get("storage"), self.sweep_dir)
        self.study_name = study_name_of(settings.get("study_name"), self.sweep_dir)
        self.settings = settings
        self.pruner = make_pruner(settings.get("pruner"))
        self.pruning = check_pruning(self.directions, self.pruner, config.get("monitor"))
        custom = settings.get("custom_search_space")
        if custom:
            from hydra.utils import get_method

            self.custom_search_space = get_method(str(custom))
        else:
            self.custom_search_space = None

    def run(self, arguments: list[str]) -> list[Any]:
        with refused_plainly():
            check_writable(self.sweep_dir, "hydra.sweep.dir", SWEEP_DIR_HINT)
            rerun_pruned = reruns_pruned(list(self.settings.get("rerun") or []))
        locks.release_all()  # a job of an earlier sweep in this process that ended by an exception still holds its lock
        space = search_space([*params_overrides(self.settings.get("params")), *arguments])
        sampler = make_sampler(self.settings.get("sampler"), space.distributions)
        n_trials = self.n_trials
        if isinstance(sampler, optuna.samplers.GridSampler):  # a grid has so many points, each run once
            n_trials = min(n_trials, math.prod(len(values) for values in grid_of(space.distributions).values()))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        study = optuna.create_study(
            study_name=self.study_name,
            storage=open_storage(self.storage),
            sampler=sampler,
            pruner=self.pruner,
            directions=self.directions,
            load_if_exists=True,
        )
        log.info(
            "Study %s in %s: %s, sampler %s, pruner %s, %d trials in all",
            self.study_name,
            self.storage,
            "/".join(self.directions),
            type(study.sampler).__name__,
            type(self.pruner).__name__,
            n_trials,
        )
        returns = self._rerun_pruned(study, space) if rerun_pruned else []
        job_num = next_job_number(self.sweep_dir)
        while True:
            trials = claim_trials(
                study,
                self.storage,
                n_trials,
                self.n_jobs,
                space.distributions,
                {SWEEP_DIR: str(self.sweep_dir.resolve())},
            )
            if not trials:
                break
            overrides = []
            for offset, trial in enumerate(trials):
                trial.set_user_attr(JOB, job_num + offset)
                overrides.append(
                    [*trial_overrides(trial, space, self.custom_search_space, self.config), *self._job_link(trial)]
                )
            log.info(
                "Launching trial(s) %s as job(s) %s",
                [t.number for t in trials],
                list(range(job_num, job_num + len(trials))),
            )
            batch = self.launcher.launch(overrides, initial_job_idx=job_num)
            job_num += len(batch)
            failures = [
                error for trial, ret in zip(trials, batch) if (error := tell(study, trial, ret, self.directions))
            ]
            if failures and len(failures) / len(batch) > self.max_failure_rate:
                for ret in batch:
                    _ = ret.return_value  # raises the first job's own exception, as Hydra's sweepers do
            returns.append(batch)
        write_results(study, self.sweep_dir, self.directions)
        draw_pictures(study, self.sweep_dir)
        return returns

    def _rerun_pruned(self, study: optuna.Study, space: SearchSpace) -> list[Any]:
        """Run the folder's pruned trials again to their end, each in its own job folder (resuming from its last.ckpt,
        without a pruner: no trial link), and tell the study each completed one (mlplab.sweeps.optuna.rerun)."""
        pruned = {int(t.user_attrs[JOB]): t for t in pruned_to_rerun(study, self.sweep_dir)}
        if not pruned:
            log.info("sweep_rerun=pruned: no pruned trial of %s left to run again", self.sweep_dir)
            return []
        log.info(
            "sweep_rerun=pruned: running trial(s) %s again to their end, as job(s) %s",
            [t.number for t in pruned.values()],
            sorted(pruned),
        )
        plan = [
            PlannedJob(num, tuple(params_as_overrides(t.params, space)), "run", "pruned") for num, t in pruned.items()
        ]
        returns = []
        for batch in launch_batches(sorted(plan, key=lambda job: job.num), self.n_jobs):
            results = self.launcher.launch([list(job.overrides) for job in batch], initial_job_idx=batch[0].num)
            for job, result in zip(batch, results):
                try:
                    values = _values(result.return_value, self.directions)
                except Exception as error:  # the job raised: its record says how it ended
                    log.warning("The rerun of job %d raised %s", job.num, error)
                    continue
                tell_rerun(study, pruned[job.num], _job_dir(result, self.sweep_dir / str(job.num)), values)
            returns.append(results)
        return returns

    def _job_link(self, trial: optuna.trial.Trial) -> list[str]:
        """The overrides that tell the job its trial (Hydra's own config: not in the job's task overrides)."""
        return [
            f"hydra.sweeper.trial_id={trial._trial_id}",
            f"hydra.sweeper.storage={hydra_value(self.storage)}",
            f"hydra.sweeper.study_name={hydra_value(self.study_name)}",
        ]
