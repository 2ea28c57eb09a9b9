"""Train one configured run: fit, test the best checkpoint, report where everything went."""

from __future__ import annotations

import logging
import sys

import hydra
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from mlplab.checkpoints.io import CheckpointError
from mlplab.checkpoints.resume import resume_arguments
from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.distributed.processes import end_distributed_run
from mlplab.run.console import log_next_commands, log_run_folder, quiet_console_in_sweep_jobs
from mlplab.run.lifecycle import train
from mlplab.run.process import prepare_process, short_user_errors
from mlplab.run.record import RunRecorder
from mlplab.sweeps.resume import start_sweep_job, sweep_resume_arguments
from mlplab.utils import stops
from mlplab.utils.errors import ConfigError
from mlplab.utils.hydra_runtime import in_sweep

log = logging.getLogger(__name__)
register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: train, keep run_record.json, return the optimised metric (for sweepers such as Optuna).

    In a sweep, a failing job is recorded, logged and returns the worst value, so the other jobs go on;
    a single run re-raises. A signal stops the run (and a sweep in this process) in any phase (mlplab.utils.stops).
    """
    prepare_process()
    quiet_console_in_sweep_jobs(in_sweep())
    with short_user_errors():
        return _main(cfg)


def _main(cfg: DictConfig) -> float | None:
    job = start_sweep_job(cfg)  # a sweep job already completed, or trained by another process, is not run again
    if not job.train:
        return job.objective
    recorder = RunRecorder(cfg)
    single = not in_sweep() and rank_zero_only.rank == 0
    if single:
        log_run_folder(cfg)
    with stops.handled():
        try:
            metrics = train(cfg)
        except BaseException as error:
            stop = stops.stop_behind(error)
            objective = recorder.failed(stop or error, end_distributed_run(failed=True))
            if stop is not None:
                log.warning("Run %s; %s says interrupted", stop, recorder.path)
                raise stop from None
            if isinstance(error, Exception) and in_sweep():
                log.exception("Job failed (recorded in %s); the sweep goes on", recorder.path)
                return objective
            raise
        end_distributed_run()
        objective = recorder.completed(metrics)
        if single:
            log_next_commands(cfg)  # last: what to do with the run
        return objective


def cli() -> None:
    """`python train.py ...`: `ckpt_path=<run>` becomes that run's own overrides (mlplab.checkpoints.resume), and
    `-m sweep_resume=<sweep>` that sweep's (mlplab.sweeps.resume); then Hydra runs."""
    try:
        sys.argv[1:] = resume_arguments(sweep_resume_arguments(sys.argv[1:]))
    except (CheckpointError, ConfigError) as error:
        raise SystemExit(f"{type(error).__name__}: {error}") from None
    main()


if __name__ == "__main__":
    cli()
