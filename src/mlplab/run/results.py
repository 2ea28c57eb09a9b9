"""A run's results read from its Trainer: the metrics, the best checkpoint, a summary of the fit, printed tables."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L

from mlplab.callbacks.optuna_pruning import PRUNED_AT


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint's path, or None when the run kept none (fast_dev_run, no checkpoint callback)."""
    callback = trainer.checkpoint_callback
    return getattr(callback, "best_model_path", None) or None


def metric_values(trainer: L.Trainer) -> dict[str, float]:
    """The trainer's latest logged metrics as plain floats."""
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def format_metrics(metrics: Mapping[str, float], prefix: str = "") -> str:
    """Aligned `name  value` lines for the metrics whose name starts with `prefix`."""
    rows = sorted((name, value) for name, value in metrics.items() if name.startswith(prefix))
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"  {name:<{width}}  {value:.4f}" for name, value in rows)


def fit_summary(trainer: L.Trainer) -> dict[str, float]:
    """`epochs` trained, when a checkpoint callback monitors a metric its best value as `<metric>_best`, and when a
    search's pruner stopped the fit (mlplab.callbacks.optuna_pruning) the epoch as `pruned_at_epoch`."""
    summary = {"epochs": float(trainer.current_epoch)}
    pruned = [c.pruned_at_epoch for c in trainer.callbacks if getattr(c, "pruned_at_epoch", None) is not None]
    if pruned:
        summary[PRUNED_AT] = float(pruned[0])
    callback = trainer.checkpoint_callback
    score = getattr(callback, "best_model_score", None)
    if score is not None and getattr(callback, "monitor", None):
        summary[f"{callback.monitor}_best"] = float(score)
    return summary
