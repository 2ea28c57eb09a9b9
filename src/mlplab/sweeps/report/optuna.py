"""The report's lines on an Optuna search: its best trial, or the Pareto front of a search with several objectives
(`best_trials` of optimization_results.yaml, written by mlplab.sweeps.optuna.results), and its pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

RESULTS_NAME = "optimization_results.yaml"


def read_results(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / RESULTS_NAME
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None


def _trial_line(trial: dict[str, Any], names: list[str]) -> str:
    values = ", ".join(
        f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in zip(names, trial["values"])
    )
    params = " ".join(f"{key}={value}" for key, value in trial["params"].items())
    return f"| {trial['trial']} | {trial.get('job', '')} | {values} | {params} |"


def optuna_section(sweep_dir: Path, objective_names: list[str] | None = None) -> str:
    """Markdown for the study's best trial or Pareto front; '' when the sweep is no Optuna search."""
    results = read_results(sweep_dir)
    if not results:
        return ""
    directions = results.get("directions") or []
    names = objective_names if objective_names and len(objective_names) == len(directions) else directions
    counts = ", ".join(f"{n} {state}" for state, n in (results.get("trials") or {}).items())
    lines = [f"## Optuna study {results.get('study_name', '')}", "", f"Trials: {counts}", ""]
    reruns = results.get("reruns") or []
    if reruns:  # written by mlplab.sweeps.optuna.results
        done = ", ".join(f"trial {r['rerun_of_trial']} (job {r.get('job', '?')}) as trial {r['trial']}" for r in reruns)
        lines += [f"Pruned trials run again to their end (sweep_rerun=pruned): {done}", ""]
    best = results.get("best_trials") or ([results["best_trial"]] if results.get("best_trial") else [])
    title = f"Pareto front ({len(best)} trial{'s' if len(best) != 1 else ''})" if len(directions) > 1 else "Best trial"
    lines += [f"{title}:", "", "| trial | job | values | params |", "|---|---|---|---|"]
    lines += [_trial_line(trial, [str(n) for n in names]) for trial in best]
    pictures = sorted(p.name for p in Path(sweep_dir).glob("optuna_*.png"))
    lines += ["", *(f"![{name.removesuffix('.png')}]({name})" for name in pictures)] if pictures else []
    return "\n".join(lines) + "\n"
