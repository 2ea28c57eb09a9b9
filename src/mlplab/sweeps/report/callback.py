"""The Hydra callback that writes the sweep report when a multirun ends, or when a signal stops it."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mlplab.sweeps.report.jobs import planned_jobs
from mlplab.sweeps.report.tables import REPEAT_KEYS
from mlplab.sweeps.report.wandb import link_wandb_runs, log_to_wandb
from mlplab.sweeps.report.write import MD_NAME, write_report
from mlplab.utils import stops

log = logging.getLogger(__name__)


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
        # a signal between jobs raises SystemExit(143/130) here; while a job runs, its own handlers do (mlplab.utils.stops)
        self._handlers = stops.install_handlers(_stop_sweep)
        atexit.register(self._report_stopped)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self._report_stopped)
        stops.restore_handlers(self._handlers)
        self._handlers = {}
        self._report(config)

    def _report_stopped(self) -> None:
        # only a sweep stopped by a signal: one that ended by an error before a job ran (a rerun refused by its
        # planner, an unwritable folder) leaves the report of the folder as it was
        if self._config is not None and stops.received() is not None:
            log.warning("The sweep was stopped: writing the report of what ran into %s", self._config.hydra.sweep.dir)
            self._report(self._config)

    def _report(self, config: DictConfig) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            report = write_report(sweep_dir, planned_jobs(config), self.repeat_keys)
        except (
            OSError
        ) as e:  # the jobs' own outputs are intact: a report that cannot be written must not fail the sweep
            log.error(
                "Could not write the sweep report into %s: the folder cannot be written (%s: %s)",
                sweep_dir,
                type(e).__name__,
                e.strerror or e,
            )
            return
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
    stops.note(signum)
    raise stops.Stopped(signum, "sweep (between jobs)")
