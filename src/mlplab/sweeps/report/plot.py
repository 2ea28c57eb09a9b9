"""summary.png: the sweep's jobs compared on one metric: a grid as lines over a swept key (configurations with error
bars when it repeats them), a search as the objective per trial with the best so far, repeats of one configuration
(seeds, folds) as one point each around their mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplab.sweeps.report.jobs import finite, number
from mlplab.utils.files import atomic_write

PREFERRED_X = ("lr", "optimizer.weight_decay", "model.dropout", "data.batch_size", "seed")


def save(figure: Any, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)


def is_search(rows: list[dict[str, Any]], keys: list[str]) -> bool:
    """Whether the jobs are a search's trials rather than a grid: two or more numeric swept keys whose values differ
    in (almost) every job, as a sampler draws them (a grid repeats each value across the other keys)."""
    drawn = [
        key
        for key in keys
        if all(number(row[key]) is not None for row in rows) and len({row[key] for row in rows}) >= 0.8 * len(rows)
    ]
    return len(rows) >= 4 and len(drawn) >= 2


def search_figure(rows: list[dict[str, Any]], metric: str, mode: str) -> Any:
    """The objective of each trial in the order they ran, and the best so far (`mode`: max or min)."""
    from matplotlib.figure import Figure

    shown = sorted((row for row in rows if finite(row[metric])), key=lambda row: number(row["job"]) or 0)
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    trials = [number(row["job"]) for row in shown]
    values = [row[metric] for row in shown]
    ax.plot(trials, values, "o", alpha=0.7, label="trial")
    best, best_so_far = None, []
    for value in values:
        best = value if best is None or (value > best if mode == "max" else value < best) else best
        best_so_far.append(best)
    ax.step(trials, best_so_far, where="post", color="C3", label=f"best so far ({mode})")
    hidden = len(rows) - len(shown)
    ax.set(xlabel="trial (job number)", ylabel=metric)
    ax.set_title(f"{metric} per trial" + (f" ({hidden} without a value not shown)" if hidden else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


def repeats_figure(rows: list[dict[str, Any]], key: str, metric: str) -> Any:
    """One configuration repeated over `key` (folds, seeds): each repeat's value, their mean and +-1 std."""
    import statistics

    from matplotlib.figure import Figure

    shown = sorted((row for row in rows if finite(row[metric])), key=lambda row: number(row[key]) or 0)
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    xs, values = [number(row[key]) for row in shown], [row[metric] for row in shown]
    ax.plot(xs, values, "o", label=key)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    ax.axhline(mean, color="C3", label=f"mean {mean:.4g}")
    ax.axhspan(mean - std, mean + std, color="C3", alpha=0.15, label=f"+-1 std ({std:.2g})")
    ax.set(xlabel=key, ylabel=metric, xticks=xs)
    hidden = len(rows) - len(shown)
    ax.set_title(f"{metric} per {key}" + (f" ({hidden} without a value not shown)" if hidden else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure


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
    save(figure, path)
    return True
