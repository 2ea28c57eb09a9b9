"""run_record.json: what became of one run (status, metrics, epochs, wall time, overrides, error).

Written into the run's folder when the run starts (status `running`, so a killed job is visible) and
again when it ends, each time atomically. Sweep reports (mlplab.sweeps.report) are built from these.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from mlplab.utils.errors import DivergedError

log = logging.getLogger(__name__)

RECORD_NAME = "run_record.json"
STATUSES = ("running", "completed", "diverged", "failed")
BEST_SUFFIX = "_best"  # train() reports the best value of the monitored metric as `<metric>_best`


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` as JSON via a temporary file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)  # NaN/inf are written as JSON's NaN/Infinity
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_run_record(folder: str | Path) -> dict[str, Any] | None:
    """The run record in `folder`, or None when there is none (the job never started, or not an mlplab run)."""
    path = Path(folder) / RECORD_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def worst_value(mode: str) -> float:
    """The objective a failed job reports: the worst possible, which every sweeper accepts (Optuna refuses NaN)."""
    return -math.inf if mode == "max" else math.inf


def _direction(cfg: DictConfig) -> str:
    """'max' or 'min' for the optimised metric: the sweeper's direction if it has one, else the monitor's mode."""
    if HydraConfig.initialized():
        direction = HydraConfig.get().sweeper.get("direction")  # Optuna: maximize/minimize (a list: several objectives)
        name = str(getattr(direction, "name", direction) or "").lower()
        if name in ("maximize", "minimize"):
            return name[:3]
    return cfg.monitor.mode


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class RunRecorder:
    """Keeps run_record.json of the run `cfg` describes up to date (on global rank 0 only)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.path = Path(cfg.paths.output_dir) / RECORD_NAME
        self.mode = _direction(cfg)
        self.optimized_metric = cfg.get("optimized_metric")
        self._start = time.perf_counter()
        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
        self.record: dict[str, Any] = {
            "status": "running",
            "overrides": list(hydra_cfg.overrides.task) if hydra_cfg else [],
            "job": {"name": hydra_cfg.job.name, "num": hydra_cfg.job.get("num"), "id": hydra_cfg.job.get("id")}
            if hydra_cfg else {},
            "output_dir": str(Path(cfg.paths.output_dir).resolve()),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "monitor": {"metric": cfg.monitor.metric, "mode": cfg.monitor.mode, "best": None},
            "optimized_metric": self.optimized_metric,
            "objective": None,
            "epochs": None,
            "metrics": {},
            "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished_at": None,
            "wall_time_s": None,
            "error": None,
        }
        self._write()

    def completed(self, metrics: dict[str, float]) -> float | None:
        """Record a finished run; return its objective (the worst value if the run diverged or it is not finite)."""
        monitor = self.record["monitor"]
        monitor["best"] = metrics.get(monitor["metric"] + BEST_SUFFIX, metrics.get(monitor["metric"]))
        losses = [value for name, value in metrics.items() if name.split("/")[-1].startswith("loss")]
        objective = metrics.get(self.optimized_metric) if self.optimized_metric else None
        if self.optimized_metric and objective is None:
            log.warning("optimized_metric=%s was not logged; logged: %s", self.optimized_metric, ", ".join(sorted(metrics)))
        diverged = not all(_is_finite(value) for value in losses)
        if objective is not None and (diverged or not _is_finite(objective)):
            objective = worst_value(self.mode)
        self._finish("diverged" if diverged else "completed", metrics=metrics, objective=objective,
                     error="a loss is NaN or infinite" if diverged else None)
        return objective

    def failed(self, error: BaseException, notes: Sequence[str] = ()) -> float:
        """Record a run that raised `error` (and `notes` on it); return the objective a sweeper should get for it."""
        if isinstance(error, DivergedError):
            status = "diverged"
        elif isinstance(error, (KeyboardInterrupt, SystemExit)):  # Ctrl-C, or SIGTERM (Lightning raises SystemExit)
            status = "interrupted"
        else:
            status = "failed"
        message = "; ".join([f"{type(error).__name__}: {error}".strip()[:1500], *notes])
        objective = worst_value(self.mode)
        self._finish(status, objective=objective, error=message)
        return objective

    def _finish(self, status: str, metrics: dict[str, float] | None = None, objective: float | None = None,
                error: str | None = None) -> None:
        metrics = dict(metrics or {})
        epochs = metrics.pop("epochs", None)
        self.record.update(
            status=status,
            metrics=metrics,
            epochs=int(epochs) if epochs is not None else None,
            objective=objective,
            error=error,
            finished_at=datetime.now().astimezone().isoformat(timespec="seconds"),
            wall_time_s=round(time.perf_counter() - self._start, 3),
            torch_threads=torch.get_num_threads(),
        )
        self._write()

    def _write(self) -> None:
        if rank_zero_only.rank == 0:  # DDP: one record per run, by the process that owns the outputs
            write_json_atomic(self.path, self.record)
