"""metrics.csv of a resumed run holds its whole history: the earlier run's rows before the checkpoint, then its own."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from mlplab.utils.files import atomic_write

log = logging.getLogger(__name__)


class CSVLogger(LightningCSVLogger):
    """Lightning's CSVLogger (same arguments) that can continue the metrics.csv of the run a checkpoint came from.

    After `continue_from(run_folder, step)`, metrics.csv starts with the rows the run in `run_folder` (the one a
    checkpoint came from) logged at steps before `step` (the same place under it as this logger's), and this
    run's rows follow from `step` on. Rows of the earlier run from `step` on are left out: the resumed run logs
    those steps again. A sweep job resumes in its own folder, so its file is rewritten, all at once, with the
    rows kept; a run resumed into a new folder only reads the earlier run's file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._continued: tuple[Path, int] | None = None

    def continue_from(self, run_folder: str | Path, step: int) -> None:
        """Start metrics.csv with the rows of the run in `run_folder` before `step` (call before anything is logged)."""
        if self._experiment is not None:
            raise RuntimeError("continue_from must be called before the logger writes anything")
        relative = os.path.relpath(self.log_dir, self.save_dir)
        self._continued = (Path(run_folder) / relative / ExperimentWriter.NAME_METRICS_FILE, step)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and self._continued is not None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuedWriter(self.log_dir, *self._continued)
        return super().experiment


class ContinuedWriter(ExperimentWriter):
    """Lightning's writer of metrics.csv, started from `earlier_file`'s rows before `step`; rows logged at steps
    before `step` (what a run logs again on resuming, such as `model/params` at step 0) are the earlier run's."""

    def __init__(self, log_dir: str, earlier_file: Path, step: int) -> None:
        self.from_step = step
        rows = rows_before(earlier_file, step)  # before anything is written: it may be this very file
        super().__init__(log_dir)
        if rows is None:
            log.warning("No %s to continue: the resumed run's metrics.csv starts at step %d", earlier_file, step)
            self.from_step = 0
            return
        self.metrics_keys = sorted(set().union(*rows, ["step"]))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        # the earlier rows are on disk before training goes on: a run stopped again still has them to resume
        with atomic_write(self.metrics_file_path, "wb") as file:
            file.write(text.getvalue().encode())

    def _check_log_dir_exists(self) -> None:
        """Keep what is there (Lightning removes metrics.csv): the file is replaced with the earlier rows at once."""

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if step is None or step >= self.from_step:
            super().log_metrics(metrics_dict, step)


def rows_before(path: Path, step: int) -> list[dict[str, str]] | None:
    """The rows of the metrics.csv at `path` logged at steps before `step`, their values as written (None: no file)."""
    if not path.is_file():
        return None
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return [{k: v for k, v in row.items() if v != ""} for row in rows if _step(row) < step]


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step", ""))
    except ValueError:
        return float("inf")  # not a row of a step: not kept


def continue_metrics(loggers: Iterable[Logger], run_folder: Path, checkpoint: dict[str, Any]) -> None:
    """Make the CSV loggers of a run that resumes `checkpoint`, saved by the run in `run_folder`, continue that run's
    metrics.csv."""
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            logger.continue_from(run_folder, resumed_step(checkpoint))


def resumed_step(checkpoint: dict[str, Any]) -> int:
    """The step a run resumed from `checkpoint` logs from: its optimizer steps, as Lightning restores them from the
    loops' state (a stacked member's checkpoint saved mid-epoch has the global_step of its last epoch's end)."""
    try:
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.automatic_optimization.optim_progress"]
        return int(progress["optimizer"]["step"]["total"]["completed"])
    except (KeyError, TypeError):
        return int(checkpoint["global_step"])
