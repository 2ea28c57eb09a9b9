"""Pruners replayed on a finished unpruned search: each trial's recorded learning curve (the intermediate values
mlplab's trials report after every validation) fed, trial by trial in their order, to a fresh study with the pruner;
how many epochs it would have trained and the best value among the trials it would have let finish.

An estimate, not a measurement: a real search with that pruner would also sample other trials (a sampler learns
from the pruned ones), but it shows, from one unpruned run, where a pruner stops and what it would have lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.trial import TrialState

from mlplab.utils.optuna_storage import open_storage, resolve_storage

# the candidates replayed by `python -m mlplab.bench --search-pruning`: Optuna's pruners by _target_
CANDIDATES: dict[str, dict[str, Any]] = {
    "median, 5 startup trials, 1 warm-up epoch": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 5,
        "n_warmup_steps": 1,
    },
    "median, 5 startup trials, no warm-up": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 5,
        "n_warmup_steps": 0,
    },
    "median, 3 startup trials, no warm-up": {
        "_target_": "optuna.pruners.MedianPruner",
        "n_startup_trials": 3,
        "n_warmup_steps": 0,
    },
    "25th percentile, 5 startup trials, no warm-up": {
        "_target_": "optuna.pruners.PercentilePruner",
        "percentile": 25.0,
        "n_startup_trials": 5,
        "n_warmup_steps": 0,
    },
    "successive halving, reduction factor 3": {
        "_target_": "optuna.pruners.SuccessiveHalvingPruner",
        "min_resource": 1,
        "reduction_factor": 3,
    },
    "Hyperband, reduction factor 3": {
        "_target_": "optuna.pruners.HyperbandPruner",
        "min_resource": 1,
        "reduction_factor": 3,
    },
}


def learning_curves(study: optuna.Study) -> list[list[float]]:
    """Each finished trial's intermediate values in step order, in the order the trials were numbered."""
    trials = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    return [[t.intermediate_values[step] for step in sorted(t.intermediate_values)] for t in trials]


def replay(curves: list[list[float]], pruner: optuna.pruners.BasePruner, direction: str) -> dict[str, Any]:
    """Epochs `pruner` lets the trials of `curves` train, how many it prunes, and the best final value it keeps."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    epochs, pruned, kept = 0, 0, []
    for curve in curves:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
            epochs += 1
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                pruned += 1
                break
        else:
            study.tell(trial, curve[-1])
            kept.append(max(curve) if direction == "maximize" else min(curve))
    best = (max if direction == "maximize" else min)(kept, default=None)
    return {"epochs": epochs, "pruned": pruned, "best": best}


def replay_search(
    sweep_dir: Path, storage: str | None = None, candidates: Mapping[str, Mapping[str, Any]] = CANDIDATES
) -> dict[str, Any]:
    """Every candidate pruner replayed on the unpruned search in `sweep_dir` (its study in `storage`, default its
    journal file), beside the search itself: all epochs trained, its best."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(resolve_storage(storage, sweep_dir))
    (name,) = optuna.get_all_study_names(opened)
    study = optuna.load_study(study_name=name, storage=opened)
    direction = study.direction.name.lower()
    curves = learning_curves(study)
    unpruned = replay(curves, optuna.pruners.NopPruner(), direction)
    rows = {label: replay(curves, instantiate(dict(spec)), direction) for label, spec in candidates.items()}
    return {"trials": len(curves), "direction": direction, "unpruned": unpruned, "pruners": rows}


def pruner_replay_table(r: dict[str, Any]) -> list[str]:
    """One row per replayed pruner: epochs against the unpruned search's, trials pruned, best value kept."""
    whole = r["unpruned"]
    rows = [
        f"| pruner replayed on the unpruned search's learning curves ({r['trials']} trials) | epochs | of unpruned "
        "| trials pruned | best kept | against unpruned best |",
        "|---|---:|---:|---:|---:|---:|",
        f"| none (the search as run) | {whole['epochs']} | 1.00x | 0 | {whole['best']:.4f} | |",
    ]
    for label, row in r["pruners"].items():
        gap = f"{100 * (row['best'] - whole['best']):+.2f} points" if row["best"] is not None else "all pruned"
        best = f"{row['best']:.4f}" if row["best"] is not None else ""
        rows.append(
            f"| {label} | {row['epochs']} | {row['epochs'] / whole['epochs']:.2f}x | {row['pruned']} | {best} | {gap} |"
        )
    return rows
