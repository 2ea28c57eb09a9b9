"""The report's tables: one row per job (summary.csv, summary.md), and one per configuration when the sweep
repeats configurations over seeds or folds (mean, standard deviation and count of each metric)."""

from __future__ import annotations

import csv
import io
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlplab.sweeps.report.jobs import NOT_STARTED, finite, number, override_key_value, swept_keys

REPEAT_KEYS = ("seed", "data.fold")  # the default: jobs that differ only in these repeat one configuration


def summary_table(jobs: Sequence[dict[str, Any]], sweep_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): job, status, the swept overrides, best validation value, test metrics, epochs, time, the
    devices it was given (when a launcher gave any), folder, error and all overrides; each row maps column -> value."""
    keys = swept_keys(jobs)
    monitors = {job["monitor"]["metric"] for job in jobs if job.get("monitor", {}).get("metric")}
    best_column = f"best {monitors.pop()}" if len(monitors) == 1 else "best val"
    test_metrics = sorted({name for job in jobs for name in job.get("metrics", {}) if name.startswith("test/")})
    tags = ["tags"] if any(job.get("tags") for job in jobs) and "tags" not in keys else []  # a swept `tags` is a key
    devices = ["devices"] if any(job.get("devices") for job in jobs) else []  # the GPUs a launcher gave each job
    columns = [
        "job",
        "status",
        *keys,
        *tags,
        best_column,
        *test_metrics,
        "epochs",
        "wall_time_s",
        *devices,
        "folder",
        "error",
        "overrides",
    ]
    rows = []
    for job in jobs:
        overrides = dict(map(override_key_value, job.get("overrides", [])))
        metrics = job.get("metrics", {})
        rows.append(
            {
                "job": job["num"],
                "status": job["status"],
                **{key: overrides.get(key) for key in keys},
                **{column: " ".join(job.get("tags") or []) for column in tags},
                best_column: job.get("monitor", {}).get("best"),
                **{name: metrics.get(name) for name in test_metrics},
                "epochs": job.get("epochs"),
                "wall_time_s": job.get("wall_time_s"),
                **{column: job.get("devices") for column in devices},
                "folder": os.path.relpath(job["folder"], sweep_dir) if job["folder"] else None,
                "error": job.get("error"),
                "overrides": " ".join(job.get("overrides", [])),
            }
        )
    return columns, rows


def _cell(value: Any, width: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) or (isinstance(value, str) and "." in value and number(value) is not None):
        return f"{float(value):.4g}"  # override values are text: 0.0013292918943162175 -> 0.001329
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def markdown(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows, without the long `overrides` column (it is in summary.csv)."""
    shown = [column for column in columns if column != "overrides"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(row[column], 80) for column in shown) + " |" for row in rows]
    return "\n".join(lines)


def aggregate(
    columns: list[str], rows: list[dict[str, Any]], keys: list[str], repeat_keys: Sequence[str] = REPEAT_KEYS
) -> tuple[list[str], list[dict[str, Any]]] | None:
    """(columns, rows) of one row per configuration (the swept `keys` but the repeat keys): for the best validation
    value and each test metric, the mean, the sample standard deviation (n - 1; empty for one value) and the count
    over the configuration's completed jobs. None when the sweep varies no repeat key."""
    repeated = [key for key in keys if key in repeat_keys]
    if not repeated:
        return None
    config_keys = [key for key in keys if key not in repeated]
    best_column = next(column for column in columns if column.startswith("best "))
    metrics = [best_column, *(column for column in columns if column.startswith("test/"))]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row["status"] != NOT_STARTED:
            groups.setdefault(tuple(row[key] for key in config_keys), []).append(row)
    out_columns = [
        *config_keys,
        "jobs",
        "completed",
        *(f"{metric} {stat}" for metric in metrics for stat in ("mean", "std", "n")),
    ]
    out_rows = []
    for values, members in groups.items():
        completed = [row for row in members if row["status"] == "completed"]
        out = {**dict(zip(config_keys, values)), "jobs": len(members), "completed": len(completed)}
        for metric in metrics:
            numbers = [float(row[metric]) for row in completed if finite(row[metric])]
            out[f"{metric} mean"] = statistics.fmean(numbers) if numbers else None
            out[f"{metric} std"] = statistics.stdev(numbers) if len(numbers) > 1 else None
            out[f"{metric} n"] = len(numbers)
        out_rows.append(out)
    return out_columns, out_rows


def markdown_by_config(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """The aggregate as a Markdown table: one `mean ± std (n)` cell per metric."""
    keys = [column for column in columns if not column.endswith((" mean", " std", " n"))]
    metrics = [column.removesuffix(" mean") for column in columns if column.endswith(" mean")]
    lines = ["| " + " | ".join([*keys, *metrics]) + " |", "|" + "---|" * (len(keys) + len(metrics))]
    for row in rows:
        cells = [_cell(row[key]) for key in keys]
        for metric in metrics:
            mean, std, n = row[f"{metric} mean"], row[f"{metric} std"], row[f"{metric} n"]
            cells.append(
                "" if mean is None else f"{mean:.4g}" + (f" ± {std:.2g}" if std is not None else "") + f" ({n})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
