"""The sweep in W&B: every job's offline run linked into `<sweep>/wandb/` (so `wandb leet <sweep>/wandb` browses the
whole sweep), and the report logged as the sweep's own summary run."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


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
