"""run_record.json: what became of one run (status, metrics, epochs, wall time, overrides, error).

Written into the run's folder when the run starts (status `running`, so a killed job is visible) and
again when it ends, each time atomically, as standard JSON. Sweep reports (mlplab.sweeps.report) are built
from these.

status: `running`, `completed`, `pruned` (an Optuna search's pruner stopped it early: `pruned_at_epoch` says when;
its checkpoints stay and its best one was tested), `diverged` (a NaN/inf loss), `interrupted` (stopped by a signal:
`signal` and `phase` say which and when), `failed` (any other error, or a sweep job whose process died).
objective: the optimised metric's value (a list of them when `optimized_metric` is a list: a search with several
objectives), or null when the run has none that is finite (it failed, diverged, was interrupted, or the metric was
not logged). A sweeper got the worst value instead (`worst_value`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from mlplab.callbacks.optuna_pruning import PRUNED_AT
from mlplab.utils import stops
from mlplab.utils.errors import DivergedError
from mlplab.utils.files import write_json

log = logging.getLogger(__name__)

RECORD_NAME = "run_record.json"
BEST_SUFFIX = "_best"  # train() reports the best value of the monitored metric as `<metric>_best`


class UnreadableRecordError(ValueError):
    """A run_record.json that is not a whole JSON object (cut short, or not written by mlplab); the message names it."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"{path} is unreadable ({reason}), so what became of its run is unknown. A rerun of the sweep runs that "
            f"job again (it resumes from its checkpoints/last.ckpt when there is one); or delete the file"
        )


def read_run_record(folder: str | Path) -> dict[str, Any] | None:
    """The run record in `folder`, or None when there is none (the job never started, or not an mlplab run).

    Raises UnreadableRecordError (naming the file) when the record is there but is not a whole JSON object."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UnreadableRecordError(path, f"{type(e).__name__}: {e}") from None
    if not isinstance(record, dict):
        raise UnreadableRecordError(path, f"a JSON {type(record).__name__}, not an object")
    return record


def worst_value(mode: str) -> float:
    """The objective a failed job reports: the worst possible, which every sweeper accepts (Optuna refuses NaN)."""
    return -math.inf if mode == "max" else math.inf


def objective_directions(cfg: DictConfig) -> list[str]:
    """'max' or 'min' for each optimised metric: the sweeper's direction(s) if it has them, else the monitor's mode.

    The sweeper's settings are read from `cfg.hydra` when `cfg` has them (a job's config composed by a launcher),
    else from Hydra's config of the running job.
    """
    hydra_cfg = cfg.hydra if "hydra" in cfg else HydraConfig.get() if HydraConfig.initialized() else None
    if hydra_cfg is not None:
        # Optuna: direction maximize/minimize (or a list of them), or directions (several objectives)
        given = hydra_cfg.sweeper.get("directions") or hydra_cfg.sweeper.get("direction")
        items = list(given) if isinstance(given, (list, ListConfig)) else [given]
        names = [str(getattr(item, "name", item) or "").lower() for item in items]
        if names and all(name in ("maximize", "minimize") for name in names):
            return [name[:3] for name in names]
    return [cfg.monitor.mode]


def objective_direction(cfg: DictConfig) -> str:
    """'max' or 'min' for the (first) optimised metric (objective_directions)."""
    return objective_directions(cfg)[0]


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class RunRecorder:
    """Keeps run_record.json of the run `cfg` describes up to date (on global rank 0 only)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.path = Path(cfg.paths.output_dir) / RECORD_NAME
        self.modes = objective_directions(cfg)
        self.mode = self.modes[0]
        optimized = cfg.get("optimized_metric")
        self.optimized_metric = OmegaConf.to_container(optimized) if isinstance(optimized, ListConfig) else optimized
        self._start = time.perf_counter()
        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
        self.record: dict[str, Any] = {
            "status": "running",
            "overrides": list(hydra_cfg.overrides.task) if hydra_cfg else [],
            "tags": [str(tag) for tag in cfg.get("tags") or []],
            "job": {"name": hydra_cfg.job.name, "num": hydra_cfg.job.get("num"), "id": hydra_cfg.job.get("id")}
            if hydra_cfg
            else {},
            "output_dir": str(Path(cfg.paths.output_dir).resolve()),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "devices": devices_seen(),
            "monitor": {"metric": cfg.monitor.metric, "mode": cfg.monitor.mode, "best": None},
            "optimized_metric": self.optimized_metric,
            "objective": None,
            "epochs": None,
            "metrics": {},
            "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished_at": None,
            "wall_time_s": None,
            "error": None,
            "signal": None,  # interrupted: the signal that stopped the run (SIGTERM, SIGINT)
            "phase": None,  # interrupted or failed: the phase the signal came in or the error was raised in (stops.PHASES)
        }
        self._write()

    def discount(self, seconds: float) -> None:
        """Leave `seconds` out of this run's wall time: other runs' time in a process they share (a stack's members)."""
        self._start += seconds

    def completed(self, metrics: dict[str, float]) -> float | list[float] | None:
        """Record a finished run; return its objective (the worst value if the run diverged or it is not finite)."""
        monitor = self.record["monitor"]
        best = metrics.get(monitor["metric"] + BEST_SUFFIX, metrics.get(monitor["metric"]))
        monitor["best"] = best if _is_finite(best) else None
        losses = [value for name, value in metrics.items() if name.split("/")[-1].startswith("loss")]
        if isinstance(self.optimized_metric, list):  # several objectives: a list back, each finite or the worst
            return self._completed_many(metrics, losses)
        objective = metrics.get(self.optimized_metric) if self.optimized_metric else None
        if self.optimized_metric and objective is None:
            log.warning(
                "optimized_metric=%s was not logged; logged: %s", self.optimized_metric, ", ".join(sorted(metrics))
            )
        diverged = not all(_is_finite(value) for value in losses)
        finite = objective is not None and not diverged and _is_finite(objective)
        self._finish(
            self._status(metrics, diverged),
            metrics=metrics,
            objective=objective if finite else None,
            error="a loss is NaN or infinite" if diverged else None,
        )
        return objective if finite or objective is None else worst_value(self.mode)

    def _completed_many(self, metrics: dict[str, float], losses: list[float]) -> list[float]:
        missing = [name for name in self.optimized_metric if name not in metrics]
        if missing:
            log.warning("optimized_metric %s not logged; logged: %s", missing, ", ".join(sorted(metrics)))
        diverged = not all(_is_finite(value) for value in losses)
        values = [metrics.get(name) for name in self.optimized_metric]
        finite = not diverged and all(_is_finite(value) for value in values)
        self._finish(
            self._status(metrics, diverged),
            metrics=metrics,
            objective=values if finite else None,
            error="a loss is NaN or infinite" if diverged else None,
        )
        modes = self.modes if len(self.modes) == len(values) else [self.mode] * len(values)
        return [value if finite else worst_value(mode) for value, mode in zip(values, modes)]

    @staticmethod
    def _status(metrics: dict[str, float], diverged: bool) -> str:
        return "diverged" if diverged else "pruned" if PRUNED_AT in metrics else "completed"

    def failed(self, error: BaseException, notes: Sequence[str] = ()) -> float | list[float]:
        """Record a run that raised `error` (and `notes` on it); return the objective a sweeper should get for it.

        A `mlplab.utils.stops.Stopped` is recorded as `interrupted`, with its signal and phase.
        """
        if isinstance(error, stops.Stopped):
            status, message = "interrupted", str(error)
            self.record.update(signal=error.signal_name, phase=error.phase)
        else:
            status = "diverged" if isinstance(error, DivergedError) else "failed"
            message = f"{type(error).__name__}: {error}".strip()[:1500]
            self.record.update(phase=stops.phase())
        self._finish(status, error="; ".join([message, *notes]))
        if isinstance(self.optimized_metric, list):
            return [worst_value(mode) for mode in self.modes]
        return worst_value(self.mode)

    def _finish(
        self,
        status: str,
        metrics: dict[str, float] | None = None,
        objective: float | None = None,
        error: str | None = None,
    ) -> None:
        metrics = dict(metrics or {})
        epochs = metrics.pop("epochs", None)
        pruned_at = metrics.pop(PRUNED_AT, None)
        if pruned_at is not None:
            self.record["pruned_at_epoch"] = int(pruned_at)
        self.record.update(
            status=status,
            # standard JSON: a NaN or infinite metric (a diverged run's loss) is null
            metrics={
                name: value if _is_finite(value) or not isinstance(value, float) else None
                for name, value in metrics.items()
            },
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
            write_json(self.path, self.record)


def devices_seen() -> str | None:
    """The GPUs this process may use, as a launcher gave them (CUDA_VISIBLE_DEVICES); None when nothing limits them."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def record_lost_job(
    folder: str | Path, overrides: Sequence[str], job: dict[str, Any], error: str, devices: str | None = None
) -> None:
    """Mark a sweep job whose process died (killed, out of memory) `failed` in its run_record.json.

    The job's own record is completed when it says `running`; one is written when the job died before writing any.
    """
    folder = Path(folder)
    try:
        record = read_run_record(folder)
    except UnreadableRecordError as e:
        log.warning("%s; it is replaced by a record of the lost job", e)
        record = None
    record = record or {
        "status": "running",
        "overrides": list(overrides),
        "job": job,
        "output_dir": str(folder.resolve()),
        "monitor": {},
        "objective": None,
        "epochs": None,
        "metrics": {},
        "started_at": None,
        "wall_time_s": None,
        "devices": devices,
    }
    if record.get("status") != "running":
        return  # it ended, and said how, before its process died
    record.update(
        status="failed",
        error=error,
        objective=None,
        finished_at=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    write_json(folder / RECORD_NAME, record)
