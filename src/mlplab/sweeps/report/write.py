"""The sweep report: at the end of every multirun, one row per job in summary.csv, summary.md and summary.png.

Written by a Hydra callback (mlplab.sweeps.report.callback; conf/hydra/default.yaml, `callbacks.sweep_report`), so it runs whatever the launcher
(basic, joblib, submitit) or sweeper (basic, Optuna). It reads each job's run_record.json
(mlplab.run.record) as it is when the report is written; a job folder without one, or one still saying `running`,
is reported as failed, one whose lock another process holds as `running elsewhere`.
A sweep stopped by a signal still gets its report, with the jobs it did not start listed as such.

When the sweep repeats configurations over `repeat_keys` (seeds, folds), the report also aggregates
them: one row per configuration with the mean, standard deviation and count of each metric
(summary_by_config.csv, a table in summary.md, error bars in summary.png).

Every job's offline W&B run, and the sweep's summary run, are gathered (as links) in `<sweep>/wandb/`,
so `wandb leet <sweep>/wandb` browses the whole sweep and `wandb sync <sweep>/wandb` uploads it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlplab.run.record import RECORD_NAME
from mlplab.sweeps.report.jobs import STATUSES, best_job, finite, read_jobs, swept_keys
from mlplab.sweeps.report.optuna import optuna_section
from mlplab.sweeps.report.plot import is_search, plot_jobs, repeats_figure, save, search_figure
from mlplab.sweeps.report.tables import REPEAT_KEYS, aggregate, csv_text, markdown, markdown_by_config, summary_table
from mlplab.utils.files import remove_stale_temporaries, write_text

log = logging.getLogger(__name__)

CSV_NAME, MD_NAME, PLOT_NAME = "summary.csv", "summary.md", "summary.png"
BY_CONFIG_CSV_NAME = "summary_by_config.csv"


def draw_summary(
    rows: list[dict[str, Any]],
    keys: list[str],
    config_keys: list[str],
    repeated: list[str],
    by_config: tuple[list[str], list[dict[str, Any]]] | None,
    metric: str,
    best_column: str,
    jobs: Sequence[dict[str, Any]],
    path: Path,
) -> bool:
    """summary.png, drawn as the sweep is: a search (its objective per trial), repeats of one configuration (each
    repeat around their mean), configurations repeated over seeds or folds (means with error bars), or a grid."""
    if not any(finite(row[metric]) for row in rows):
        return False
    if is_search(rows, keys):
        modes = {job["monitor"].get("mode") for job in jobs if job.get("monitor", {}).get("mode")}
        save(search_figure(rows, best_column, modes.pop() if len(modes) == 1 else "max"), path)
        return True
    if by_config and not config_keys and len(repeated) == 1:
        save(repeats_figure(rows, repeated[0], metric), path)
        return True
    if by_config:
        return plot_jobs(by_config[1], config_keys, f"{metric} mean", path, errors=f"{metric} std")
    return plot_jobs(rows, keys, metric, path)


def write_report(
    sweep_dir: str | Path, planned: Sequence[Sequence[str]] | None = None, repeat_keys: Sequence[str] = REPEAT_KEYS
) -> dict[str, Any] | None:
    """Write summary.csv, summary.md and summary.png (and summary_by_config.csv when the sweep repeats
    configurations over `repeat_keys`) into `sweep_dir`, log the tables and the best job. `planned`: every job's
    overrides, to list those that never started.

    Returns {"columns", "rows", "by_config" ((columns, rows) or None), "best" (the best job or None),
    "plot" (its path or None)}; None without jobs.
    """
    sweep_dir = Path(sweep_dir)
    for name in (CSV_NAME, MD_NAME, PLOT_NAME, BY_CONFIG_CSV_NAME):  # what an earlier report killed mid-write left
        remove_stale_temporaries(sweep_dir / name)
    jobs = read_jobs(sweep_dir, planned)
    if not any(job.get("started_at") for job in jobs):  # no run records: not a sweep of train.py (eval.py)
        log.info("Sweep report: no %s in %s, nothing to report", RECORD_NAME, sweep_dir)
        return None
    columns, rows = summary_table(jobs, sweep_dir)
    write_text(sweep_dir / CSV_NAME, csv_text(columns, rows))
    keys = swept_keys(jobs)
    by_config = aggregate(columns, rows, keys, repeat_keys)

    best_column = next(column for column in columns if column.startswith("best "))
    metric = next((column for column in ("test/acc", "test/mse", "test/loss") if column in columns), best_column)
    config_keys = [key for key in keys if key not in repeat_keys]
    repeated = [key for key in keys if key in repeat_keys]
    if by_config:
        write_text(sweep_dir / BY_CONFIG_CSV_NAME, csv_text(*by_config))
    plotted = draw_summary(
        rows, keys, config_keys, repeated, by_config, metric, best_column, jobs, sweep_dir / PLOT_NAME
    )

    best = best_job(jobs)
    counts = {status: sum(job["status"] == status for job in jobs) for status in STATUSES}
    best_line = (
        f"Best job: #{best['num']} ({best['monitor']['metric']} {best['monitor']['best']:.4g}) in {best['folder']}"
        if best
        else "Best job: none completed"
    )
    table = markdown(columns, rows)
    text = (
        f"# Sweep {sweep_dir.name}\n\n{len(jobs)} jobs: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f"\n\n{table}\n\n{best_line}\n"
    )
    printed = f"{table}\n{best_line}"
    if by_config:
        repeated = ", ".join(key for key in keys if key in repeat_keys)
        by_config_table = markdown_by_config(*by_config)
        text += f"\n## By configuration (mean ± std (n) over {repeated})\n\n{by_config_table}\n"
        printed += f"\nBy configuration (mean ± std (n) over {repeated}):\n{by_config_table}"
    text += f"\n![jobs compared]({PLOT_NAME})\n" if plotted else ""
    search = optuna_section(sweep_dir, _objective_names(jobs))
    if search:
        text += f"\n{search}"
        printed += f"\n{search}"
    write_text(sweep_dir / MD_NAME, text)
    log.info("Sweep report (%s):\n%s", sweep_dir / MD_NAME, printed)
    return {
        "columns": columns,
        "rows": rows,
        "by_config": by_config,
        "best": best,
        "plot": sweep_dir / PLOT_NAME if plotted else None,
    }


def _objective_names(jobs: Sequence[dict[str, Any]]) -> list[str] | None:
    names = next((job.get("optimized_metric") for job in jobs if job.get("optimized_metric")), None)
    return names if isinstance(names, list) else [names] if names else None
