"""The sweep report: at the end of every multirun, one row per job in summary.csv, summary.md and summary.png.

A Hydra callback (conf/hydra/default.yaml, `callbacks.sweep_report`), so it runs whatever the launcher
(basic, joblib, submitit) or sweeper (basic, Optuna). It reads each job's run_record.json
(mlplab.run_record); a job folder without one, or one still saying `running`, is reported as failed.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlplab.run_record import RECORD_NAME, read_run_record

log = logging.getLogger(__name__)

CSV_NAME, MD_NAME, PLOT_NAME = "summary.csv", "summary.md", "summary.png"
PREFERRED_X = ("lr", "optimizer.weight_decay", "model.dropout", "data.batch_size", "seed")


def _override_key_value(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One dict per job folder under `sweep_dir` (a folder with a run record or Hydra's .hydra/), in job order."""
    folders = {p.parent for p in sweep_dir.rglob(RECORD_NAME)}
    folders |= {p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")}
    jobs = []
    for folder in folders:
        record = read_run_record(folder)
        if record is None:
            overrides_file = folder / ".hydra" / "overrides.yaml"
            overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
            record = {"status": "failed", "overrides": overrides, "metrics": {}, "monitor": {},
                      "error": f"no {RECORD_NAME}: the job ended before training started"}
        elif record["status"] == "running":
            record = {**record, "status": "failed", "error": "killed: the job never finished (its record still says running)"}
        number = (record.get("job") or {}).get("num")
        jobs.append({**record, "num": number if number is not None else folder.name, "folder": folder})
    return sorted(jobs, key=lambda job: (job["num"] if isinstance(job["num"], int) else math.inf, str(job["folder"])))


def swept_keys(jobs: Sequence[dict[str, Any]]) -> list[str]:
    """The override keys whose value differs between jobs (what the sweep varied), in command-line order."""
    per_job = [dict(map(_override_key_value, job.get("overrides", []))) for job in jobs]
    keys = list(dict.fromkeys(key for overrides in per_job for key in overrides))
    return [key for key in keys if len({overrides.get(key) for overrides in per_job}) > 1]


def best_job(jobs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed job with the best value of the monitored validation metric."""
    scored = [job for job in jobs if job["status"] == "completed" and _finite(job["monitor"].get("best"))]
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
    columns = ["job", "status", *keys, best_column, *test_metrics, "epochs", "wall_time_s", "folder", "error", "overrides"]
    rows = []
    for job in jobs:
        overrides = dict(map(_override_key_value, job.get("overrides", [])))
        metrics = job.get("metrics", {})
        rows.append({
            "job": job["num"], "status": job["status"], **{key: overrides.get(key) for key in keys},
            best_column: job.get("monitor", {}).get("best"), **{name: metrics.get(name) for name in test_metrics},
            "epochs": job.get("epochs"), "wall_time_s": job.get("wall_time_s"),
            "folder": os.path.relpath(job["folder"], sweep_dir), "error": job.get("error"),
            "overrides": " ".join(job.get("overrides", [])),
        })
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


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def plot_jobs(rows: list[dict[str, Any]], keys: list[str], metric: str, path: Path) -> bool:
    """Save a picture comparing the jobs' `metric` against a numeric swept key, one line per combination of the
    other swept `keys` (test accuracy per lr, a line per optimizer); a bar per job when no key is numeric.
    Return False when no job has a value to show."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    shown = [row for row in rows if _finite(row[metric])]
    if not shown:
        return False
    numeric = [key for key in keys if all(_number(row[key]) is not None for row in shown)]
    x_key = next((key for key in PREFERRED_X if key in numeric), numeric[0] if numeric else None)
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    if x_key is None:
        labels = [" ".join(f"{key}={row[key]}" for key in keys) or f"job {row['job']}" for row in shown]
        ax.bar(range(len(shown)), [row[metric] for row in shown])
        ax.set_xticks(range(len(shown)), labels, rotation=30, ha="right", fontsize=8)
    else:
        others = [key for key in keys if key != x_key]
        lines: dict[str, list[tuple[float, float]]] = {}
        for row in shown:
            label = ", ".join(f"{key}={row[key]}" for key in others) or metric
            lines.setdefault(label, []).append((_number(row[x_key]), row[metric]))
        for label, points in lines.items():
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o", label=label)
        xs = [_number(row[x_key]) for row in shown]
        if min(xs) > 0 and max(xs) >= 10 * min(xs):
            ax.set_xscale("log")
        ax.set_xlabel(x_key)
        if others:
            ax.legend(fontsize=8)
    hidden = len(rows) - len(shown)
    ax.set_ylabel(metric)
    title = f"{metric} by {x_key}" if x_key else f"{metric} per job"
    ax.set_title(title + (f" ({hidden} job{'s' if hidden > 1 else ''} without a value not shown)" if hidden else ""))
    ax.grid(alpha=0.3)
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return True


def write_report(sweep_dir: str | Path) -> dict[str, Any] | None:
    """Write summary.csv, summary.md and summary.png into `sweep_dir`, log the table and the best job.

    Returns {"columns", "rows", "best" (the best job or None), "plot" (its path or None)}, None without jobs.
    """
    sweep_dir = Path(sweep_dir)
    jobs = read_jobs(sweep_dir)
    if not any(job.get("started_at") for job in jobs):  # no run records: not a sweep of train.py (eval.py)
        log.info("Sweep report: no %s in %s, nothing to report", RECORD_NAME, sweep_dir)
        return None
    columns, rows = summary_table(jobs, sweep_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    _write_text_atomic(sweep_dir / CSV_NAME, buffer.getvalue())

    best_column = next(column for column in columns if column.startswith("best "))
    metric = next((column for column in ("test/acc", "test/mse", "test/loss") if column in columns), best_column)
    plotted = plot_jobs(rows, swept_keys(jobs), metric, sweep_dir / PLOT_NAME)

    best = best_job(jobs)
    counts = {status: sum(job["status"] == status for job in jobs) for status in ("completed", "diverged", "interrupted", "failed")}
    best_line = (f"Best job: #{best['num']} ({best['monitor']['metric']} {best['monitor']['best']:.4g}) in {best['folder']}"
                 if best else "Best job: none completed")
    table = markdown(columns, rows)
    text = (f"# Sweep {sweep_dir.name}\n\n{len(jobs)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            + f"\n\n{table}\n\n{best_line}\n" + (f"\n![jobs compared]({PLOT_NAME})\n" if plotted else ""))
    _write_text_atomic(sweep_dir / MD_NAME, text)
    log.info("Sweep report (%s):\n%s\n%s", sweep_dir / MD_NAME, table, best_line)
    return {"columns": columns, "rows": rows, "best": best, "plot": sweep_dir / PLOT_NAME if plotted else None}


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


def log_to_wandb(config: DictConfig, sweep_dir: Path, report: dict[str, Any], timeout: float = 30.0) -> None:
    """Put the summary table (and picture) into a W&B run of its own in the sweep's group."""
    import wandb

    wandb_cfg = config.logger.wandb
    group = _select(wandb_cfg, "group") or sweep_dir.name
    mode = os.environ.get("WANDB_MODE") or _select(wandb_cfg, "mode") or ("offline" if _select(wandb_cfg, "offline") else None)
    save_dir = Path(_select(wandb_cfg, "save_dir") or sweep_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=_select(wandb_cfg, "project"), entity=_select(wandb_cfg, "entity"), group=group,
        job_type="sweep-summary", name=f"{group}-summary", dir=str(save_dir), mode=mode,
        settings=wandb.Settings(init_timeout=timeout, silent=True, reinit="create_new"),
    )
    try:
        cells = [[_wandb_cell(row[column]) for column in report["columns"]] for row in report["rows"]]
        data: dict[str, Any] = {"sweep/summary": wandb.Table(columns=report["columns"], data=cells)}
        if report["plot"]:
            data["sweep/summary_plot"] = wandb.Image(str(report["plot"]))
        run.log(data)
        if report["best"]:
            run.summary.update({"best_job": report["best"]["num"], "best_value": report["best"]["monitor"]["best"],
                                "best_folder": str(report["best"]["folder"])})
    finally:
        run.finish()


class SweepReport(Callback):
    """Writes the sweep report when a multirun ends (and sends it to W&B when W&B is the logger)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report = write_report(sweep_dir)
        except Exception:  # the jobs' own outputs are intact: a broken report must not fail the sweep
            log.exception("Could not write the sweep report into %s", sweep_dir)
            return
        if report and (config.get("logger") or {}).get("wandb"):
            try:
                log_to_wandb(config, sweep_dir, report)
            except Exception as e:
                log.warning("Sweep report not sent to W&B (%s: %s); it is in %s", type(e).__name__, e, sweep_dir / MD_NAME)
