"""Train one configured run: fit, test the best checkpoint, report where everything went."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from mlplab import stops
from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.config.validation import check_data_fits, validate_config
from mlplab.distributed import end_distributed_run, in_sweep
from mlplab.loggers.csv import continue_metrics
from mlplab.loggers.wandb import finish_run
from mlplab.run_record import RunRecorder
from mlplab.sweeps.resume import start_sweep_job, sweep_resume_arguments
from mlplab.utils.build import build_callbacks, build_datamodule, build_loggers, build_module, build_trainer
from mlplab.utils.checkpoints import CheckpointError, checkpoint_to_resume
from mlplab.utils.errors import ConfigError
from mlplab.utils.files import check_writable
from mlplab.utils.process import prepare_process
from mlplab.utils.results import best_checkpoint, fit_summary, format_metrics, metric_values
from mlplab.utils.resume import resume_arguments

log = logging.getLogger(__name__)
register_resolvers()


def train(cfg: DictConfig) -> dict[str, float]:
    """Run `cfg` to the end and return its final metrics (validation of the last epoch, test of the best checkpoint)."""
    failed = True
    try:
        metrics = fit_and_test(cfg)
        failed = False
    finally:
        # Lightning's WandbLogger never finishes its W&B run: without this the next run (sweep job) would log into it
        finish_run(failed=failed)
    return metrics


def start_run(cfg: DictConfig) -> None:
    """What every run does before building anything: check the config and the output folder, seed, set threads."""
    validate_config(cfg)
    check_writable(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    set_torch_threads(cfg.get("torch_threads"))
    # process-wide: set by every run, so a sweep job does not inherit the previous job's choice
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))


def fit_and_test(cfg: DictConfig) -> dict[str, float]:
    start_run(cfg)
    datamodule = build_datamodule(cfg)
    with stops.in_phase("data"):
        check_data_fits(cfg, datamodule)  # split sizes only the data files tell: before any logger starts
    module = build_module(cfg, datamodule)
    resume_from = checkpoint_to_resume(cfg, module)
    if resume_from:
        log.info("Resuming from %s", resume_from)
    loggers = build_loggers(cfg)
    continue_metrics(loggers, resume_from)  # metrics.csv keeps the history before the checkpoint
    trainer = build_trainer(cfg, build_callbacks(cfg), loggers)
    stops.track_phases(trainer, datamodule)

    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    metrics = metric_values(trainer)  # testing replaces the trainer's metrics: keep the training ones
    metrics.update(fit_summary(trainer))
    return test_best(cfg, trainer, module, datamodule, best_checkpoint(trainer), metrics)


def test_best(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    best: str | None,
    metrics: dict[str, float],
) -> dict[str, float]:
    """Test `best` (None: the module's weights as they are), add the test metrics to `metrics`, log where it all went."""
    metrics = dict(metrics)
    trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
    metrics.update(metric_values(trainer))
    if trainer.is_global_zero:
        log.info(
            "Test metrics (%s):\n%s",
            f"best checkpoint {Path(best).name}" if best else "final weights",
            format_metrics(metrics, prefix="test/"),
        )
        log.info("Outputs: %s", Path(cfg.paths.output_dir).resolve())
    return metrics


def set_torch_threads(threads: int | None) -> None:
    """Use `threads` CPU threads in this process and in the processes it starts (DDP ranks); None keeps the default."""
    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # Lightning's DDP launcher would otherwise pick its own


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: train, keep run_record.json, return the optimised metric (for sweepers such as Optuna).

    In a sweep, a failing job is recorded, logged and returns the worst value, so the other jobs go on;
    a single run re-raises. A signal stops the run (and a sweep in this process) in any phase (mlplab.stops).
    """
    prepare_process()
    job = start_sweep_job(cfg)  # a sweep job already completed, or trained by another process, is not run again
    if not job.train:
        return job.objective
    recorder = RunRecorder(cfg)
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
        return recorder.completed(metrics)


def cli() -> None:
    """`python train.py ...`: `ckpt_path=<run>` becomes that run's own overrides (mlplab.utils.resume), and
    `-m sweep_resume=<sweep>` that sweep's (mlplab.sweeps.resume); then Hydra runs."""
    try:
        sys.argv[1:] = resume_arguments(sweep_resume_arguments(sys.argv[1:]))
    except (CheckpointError, ConfigError) as error:
        raise SystemExit(f"{type(error).__name__}: {error}") from None
    main()


if __name__ == "__main__":
    cli()
