"""The sweep report: at the end of every multirun, one row per job in summary.csv, summary.md and summary.png.

A Hydra callback (conf/hydra/default.yaml, `callbacks.sweep_report`), so it runs whatever the launcher
(basic, joblib, submitit) or sweeper (basic, Optuna). It reads each job's run_record.json
(mlplab.run_record); a job folder without one, or one still saying `running`, is reported as failed.
A sweep stopped by a signal still gets its report, with the jobs it did not start listed as such.

When the sweep repeats configurations over `repeat_keys` (seeds, folds), the report also aggregates
them: one row per configuration with the mean, standard deviation and count of each metric
(summary_by_config.csv, a table in summary.md, error bars in summary.png).

Every job's offline W&B run, and the sweep's summary run, are gathered (as links) in `<sweep>/wandb/`,
so `wandb leet <sweep>/wandb` browses the whole sweep and `wandb sync <sweep>/wandb` uploads it.
"""

from __future__ import annotations

import atexit
import csv
import io
import logging
import math
import os
import signal
import statistics
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlplab import stops
from mlplab.run_record import RECORD_NAME, read_run_record
from mlplab.utils.files import atomic_write, write_text

log = logging.getLogger(__name__)

CSV_NAME, MD_NAME, PLOT_NAME = "summary.csv", "summary.md", "summary.png"
BY_CONFIG_CSV_NAME = "summary_by_config.csv"
PREFERRED_X = ("lr", "optimizer.weight_decay", "model.dropout", "data.batch_size", "seed")
REPEAT_KEYS = ("seed", "data.fold")  # the default: jobs that differ only in these repeat one configuration
NOT_STARTED = "not started"
STATUSES = ("completed", "diverged", "interrupted", "failed", NOT_STARTED)  # the order counts are shown in


def _override_key_value(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def planned_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job Hydra's basic sweeper will launch for this sweep config, in job order;
    None for other sweepers (Optuna picks its trials as it goes)."""
    hydra_cfg = config.hydra
    if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # what BasicSweeper.sweep does: its `params` first, then the command line's overrides
    params = [f"{key}={value}" for key, value in (hydra_cfg.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def read_jobs(sweep_dir: Path, planned: Sequence[Sequence[str]] | None = None) -> list[dict[str, Any]]:
    """One dict per job folder under `sweep_dir` (a folder with a run record or Hydra's .hydra/), in job order,
    plus one with status `not started` for each job of `planned` (job number = index) that has no folder."""
    folders = {p.parent for p in sweep_dir.rglob(RECORD_NAME)}
    folders |= {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    jobs = []
    for folder in folders:
        record = read_run_record(folder)
        if record is None:
            overrides_file = folder / ".hydra" / "overrides.yaml"
            overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
            record = {
                "status": "failed",
                "overrides": overrides,
                "metrics": {},
                "monitor": {},
                "error": f"no {RECORD_NAME}: the job ended before training started",
            }
        elif record["status"] == "running":
            record = {
                **record,
                "status": "failed",
                "error": "killed: the job never finished (its record still says running)",
            }
        number = (record.get("job") or {}).get("num")
        jobs.append({**record, "num": number if number is not None else folder.name, "folder": folder})
    seen = {job["num"] for job in jobs} | {str(job["num"]) for job in jobs}
    jobs += [
        {
            "status": NOT_STARTED,
            "overrides": list(overrides),
            "metrics": {},
            "monitor": {},
            "num": num,
            "folder": None,
            "error": None,
        }
        for num, overrides in enumerate(planned or [])
        if num not in seen
    ]
    return sorted(jobs, key=lambda job: (job["num"] if isinstance(job["num"], int) else math.inf, str(job["folder"])))


def swept_keys(jobs: Sequence[dict[str, Any]]) -> list[str]:
    """The override keys whose value differs between jobs (what the sweep varied), in command-line order."""
    per_job = [dict(map(_override_key_value, job.get("overrides", []))) for job in jobs]
    keys = list(dict.fromkeys(key for overrides in per_job for key in overrides))
    return [key for key in keys if len({overrides.get(key) for overrides in per_job}) > 1]


def best_job(jobs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed job with the best value of the monitored validation metric."""
    scored = [job for job in jobs if job["status"] == "completed" and _finite(job.get("monitor", {}).get("best"))]
    if not scored:
        return None
    sign = 1 if scored[0]["monitor"].get("mode", "max") == "max" else -1
    return max(scored, key=lambda job: sign * job["monitor"]["best"])


def summary_table(jobs: Sequence[dict[str, Any]], sweep_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): job, status, the swept overrides, best validation value, test metrics, epochs, time,
    folder, error and all overrides; each row maps column -> value."""
    keys = swept_keys(jobs)
    monitors = {job["monitor"]["metric"] for job in jobs if job.get("monitor", {}).get("metric")}
    best_column = f"best {monitors.pop()}" if len(monitors) == 1 else "best val"
    test_metrics = sorted({name for job in jobs for name in job.get("metrics", {}) if name.startswith("test/")})
    tags = ["tags"] if any(job.get("tags") for job in jobs) and "tags" not in keys else []  # a swept `tags` is a key
    columns = [
        "job",
        "status",
        *keys,
        *tags,
        best_column,
        *test_metrics,
        "epochs",
        "wall_time_s",
        "folder",
        "error",
        "overrides",
    ]
    rows = []
    for job in jobs:
        overrides = dict(map(_override_key_value, job.get("overrides", [])))
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
                "folder": os.path.relpath(job["folder"], sweep_dir) if job["folder"] else None,
                "error": job.get("error"),
                "overrides": " ".join(job.get("overrides", [])),
            }
        )
    return columns, rows


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _cell(value: Any, width: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) or (isinstance(value, str) and "." in value and _number(value) is not None):
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
            numbers = [float(row[metric]) for row in completed if _finite(row[metric])]
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


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_jobs(rows: list[dict[str, Any]], keys: list[str], metric: str, path: Path, errors: str | None = None) -> bool:
    """Save a picture comparing the jobs' `metric` against a numeric swept key, one line per combination of the
    other swept `keys` (test accuracy per lr, a line per optimizer); a bar per job when no key is numeric.
    With `errors` (a column of standard deviations: rows are configurations), error bars too.
    Return False when no job has a value to show."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    shown = [row for row in rows if _finite(row[metric])]
    if not shown:
        return False

    def error(row: dict[str, Any]) -> float:
        return row[errors] if errors and _finite(row[errors]) else 0.0

    numeric = [key for key in keys if all(_number(row[key]) is not None for row in shown)]
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
            lines.setdefault(label, []).append((_number(row[x_key]), row[metric], error(row)))
        for label, points in lines.items():
            xs, ys, yerr = zip(*sorted(points))
            ax.errorbar(xs, ys, yerr=yerr if errors else None, marker="o", capsize=4, label=label)
        xs = [_number(row[x_key]) for row in shown]
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
    jobs = read_jobs(sweep_dir, planned)
    if not any(job.get("started_at") for job in jobs):  # no run records: not a sweep of train.py (eval.py)
        log.info("Sweep report: no %s in %s, nothing to report", RECORD_NAME, sweep_dir)
        return None
    columns, rows = summary_table(jobs, sweep_dir)
    write_text(sweep_dir / CSV_NAME, _csv_text(columns, rows))
    keys = swept_keys(jobs)
    by_config = aggregate(columns, rows, keys, repeat_keys)

    best_column = next(column for column in columns if column.startswith("best "))
    metric = next((column for column in ("test/acc", "test/mse", "test/loss") if column in columns), best_column)
    if by_config:
        write_text(sweep_dir / BY_CONFIG_CSV_NAME, _csv_text(*by_config))
        config_keys = [key for key in keys if key not in repeat_keys]
        plotted = plot_jobs(by_config[1], config_keys, f"{metric} mean", sweep_dir / PLOT_NAME, errors=f"{metric} std")
    else:
        plotted = plot_jobs(rows, keys, metric, sweep_dir / PLOT_NAME)

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
    write_text(sweep_dir / MD_NAME, text)
    log.info("Sweep report (%s):\n%s", sweep_dir / MD_NAME, printed)
    return {
        "columns": columns,
        "rows": rows,
        "by_config": by_config,
        "best": best,
        "plot": sweep_dir / PLOT_NAME if plotted else None,
    }


def link_wandb_runs(sweep_dir: str | Path) -> list[Path]:
    """Link every job's W&B run folder (`<job>/wandb/offline-run-*`, `run-*`) into `<sweep>/wandb/`, so one
    `wandb leet` or `wandb sync` covers the sweep (both follow the links). Relative links: the sweep folder can
    move. Returns the links, new or already there."""
    sweep_dir = Path(sweep_dir)
    sweep_wandb = sweep_dir / "wandb"
    links = []
    for run in sorted(sweep_dir.glob("*/wandb/*-run-*")):  # <job>/wandb/offline-run-<time>-<id>
        if not run.is_dir() or run.parent == sweep_wandb:
            continue
        link = sweep_wandb / run.name
        if not link.is_symlink() and not link.exists():
            sweep_wandb.mkdir(exist_ok=True)
            link.symlink_to(os.path.relpath(run, sweep_wandb), target_is_directory=True)
        links.append(link)
    return links


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except Exception:  # an interpolation that only resolves inside a job
        return None


def _wandb_cell(value: Any) -> Any:
    """One type per W&B table column: numbers stay numbers, NaN/inf become empty, the rest is text."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value if isinstance(value, (int, float)) else str(value)


def _wandb_table(columns: list[str], rows: list[dict[str, Any]]) -> Any:
    import wandb

    return wandb.Table(columns=columns, data=[[_wandb_cell(row[column]) for column in columns] for row in rows])


def log_to_wandb(config: DictConfig, sweep_dir: Path, report: dict[str, Any], timeout: float = 30.0) -> None:
    """Put the summary table (the aggregate, the picture) into a W&B run of its own in the sweep's group, in
    `<sweep>/wandb/` beside the links to the jobs' runs. The mode is decided as for the jobs' runs."""
    import wandb

    from mlplab.loggers.wandb import resolve_mode

    wandb_cfg = config.logger.wandb
    group = _select(wandb_cfg, "group") or sweep_dir.name
    run = wandb.init(
        project=_select(wandb_cfg, "project"),
        entity=_select(wandb_cfg, "entity"),
        group=group,
        job_type="sweep-summary",
        name=f"{group}-summary",
        dir=str(sweep_dir),
        mode=resolve_mode(_select(wandb_cfg, "mode"), sweep_dir),
        settings=wandb.Settings(init_timeout=timeout, silent=True, reinit="create_new"),
    )
    try:
        data: dict[str, Any] = {"sweep/summary": _wandb_table(report["columns"], report["rows"])}
        if report.get("by_config"):
            data["sweep/summary_by_config"] = _wandb_table(*report["by_config"])
        if report["plot"]:
            data["sweep/summary_plot"] = wandb.Image(str(report["plot"]))
        run.log(data)
        if report["best"]:
            run.summary.update(
                {
                    "best_job": report["best"]["num"],
                    "best_value": report["best"]["monitor"]["best"],
                    "best_folder": str(report["best"]["folder"]),
                }
            )
    finally:
        run.finish()


class SweepReport(Callback):
    """Writes the sweep report when a multirun ends, or when a signal stops it (and sends it to W&B when W&B is
    the logger). `repeat_keys`: the swept keys whose jobs repeat one configuration (aggregated over)."""

    def __init__(self, repeat_keys: Sequence[str] = REPEAT_KEYS) -> None:
        self.repeat_keys = tuple(repeat_keys)
        self._config: DictConfig | None = None
        self._handlers: dict[int, Any] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._config = config
        # a stopped sweep unwinds instead of dying, so that the report of what ran is written on the way out (atexit):
        # a signal between jobs raises SystemExit(143/130) here; while a job runs, its own handlers do (mlplab.stops)
        if threading.current_thread() is threading.main_thread():
            self._handlers = {signum: signal.signal(signum, _stop_sweep) for signum in stops.STOP_SIGNALS}
        atexit.register(self._report_stopped)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self._report_stopped)
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers = {}
        self._report(config)

    def _report_stopped(self) -> None:
        if self._config is not None:
            log.warning("The sweep was stopped: writing the report of what ran into %s", self._config.hydra.sweep.dir)
            self._report(self._config)

    def _report(self, config: DictConfig) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report = write_report(sweep_dir, planned_jobs(config), self.repeat_keys)
        except Exception:  # the jobs' own outputs are intact: a broken report must not fail the sweep
            log.exception("Could not write the sweep report into %s", sweep_dir)
            return
        if report and (config.get("logger") or {}).get("wandb"):
            try:
                log_to_wandb(config, sweep_dir, report)
            except Exception as e:
                log.warning(
                    "Sweep report not sent to W&B (%s: %s); it is in %s", type(e).__name__, e, sweep_dir / MD_NAME
                )
        try:
            link_wandb_runs(sweep_dir)
        except OSError as e:  # a file system without symlinks: each job's run is still in its folder
            log.warning("Could not link the jobs' W&B runs into %s (%s)", sweep_dir / "wandb", e)


def _stop_sweep(signum: int, frame: Any) -> None:
    raise stops.Stopped(signum, "sweep (between jobs)")
