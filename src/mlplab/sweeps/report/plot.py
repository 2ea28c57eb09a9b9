"""summary.png: the sweep's jobs (or configurations, with error bars) compared on one metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplab.sweeps.report.jobs import finite, number
from mlplab.utils.files import atomic_write

PREFERRED_X = ("lr", "optimizer.weight_decay", "model.dropout", "data.batch_size", "seed")


def plot_jobs(rows: list[dict[str, Any]], keys: list[str], metric: str, path: Path, errors: str | None = None) -> bool:
    """Save a picture comparing the jobs' `metric` against a numeric swept key, one line per combination of the
    other swept `keys` (test accuracy per lr, a line per optimizer); a bar per job when no key is numeric.
    With `errors` (a column of standard deviations: rows are configurations), error bars too.
    Return False when no job has a value to show."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    shown = [row for row in rows if finite(row[metric])]
    if not shown:
        return False

    def error(row: dict[str, Any]) -> float:
        return row[errors] if errors and finite(row[errors]) else 0.0

    numeric = [key for key in keys if all(number(row[key]) is not None for row in shown)]
    x_key = next((key for key in PREFERRED_X if key in numeric), numeric[0] if numeric else None)
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    if x_key is None:
        labels = [" ".join(f"{key}={row[key]}" for key in keys) or f"job {row.get('job', '')}" for row in shown]
        ax.bar(
            range(len(shown)),
            [row[metric] for row in shown],
            yerr=[error(row) for row in shown] if errors else None,
            capsize=4,
        )
        ax.set_xticks(range(len(shown)), labels, rotation=30, ha="right", fontsize=8)
    else:
        others = [key for key in keys if key != x_key]
        lines: dict[str, list[tuple[float, float, float]]] = {}
        for row in shown:
            label = ", ".join(f"{key}={row[key]}" for key in others) or metric
            lines.setdefault(label, []).append((number(row[x_key]), row[metric], error(row)))
        for label, points in lines.items():
            xs, ys, yerr = zip(*sorted(points))
            ax.errorbar(xs, ys, yerr=yerr if errors else None, marker="o", capsize=4, label=label)
        xs = [number(row[x_key]) for row in shown]
        if min(xs) > 0 and max(xs) >= 10 * min(xs):
            ax.set_xscale("log")
        ax.set_xlabel(x_key)
        if others:
            ax.legend(fontsize=8)
    hidden = len(rows) - len(shown)
    what = "configuration" if errors else "job"
    ax.set_ylabel(metric)
    title = f"{metric} by {x_key}" if x_key else f"{metric} per {what}"
    ax.set_title(title + (f" ({hidden} {what}{'s' if hidden > 1 else ''} without a value not shown)" if hidden else ""))
    ax.grid(alpha=0.3)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
    return True
