"""One run from its config to its final metrics: start (checks, seed, threads), build, fit, test the best checkpoint.

train.py runs it once per Hydra job; a stacked sweep's members use the same start, build and test
(mlplab.sweeps.stacked.members), so a member is built and tested as its single run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from mlplab.callbacks.optuna_pruning import trial_callbacks
from mlplab.checkpoints.find import run_folder_of
from mlplab.checkpoints.io import load_checkpoint
from mlplab.checkpoints.same_run import checkpoint_to_resume
from mlplab.config.validation import check_data_fits, validate_config
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.loggers.csv import continue_metrics
from mlplab.loggers.wandb import finish_run
from mlplab.models.module import SupervisedModule
from mlplab.run.build import build_callbacks, build_datamodule, build_loggers, build_module, build_trainer
from mlplab.run.phases import track_phases
from mlplab.run.results import best_checkpoint, fit_summary, format_metrics, metric_values
from mlplab.utils import stops
from mlplab.utils.files import check_writable

log = logging.getLogger(__name__)


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


def build_data_and_module(
    cfg: DictConfig, shared: TensorDataModule | None = None
) -> tuple[TensorDataModule, SupervisedModule]:
    """Start the run and build its data module (checked against the config) and module, before any logger starts.

    `shared`: a data module whose loaded splits this run uses (a stack's members differ only in data order).
    """
    start_run(cfg)
    datamodule = build_datamodule(cfg)
    if shared is not None:
        datamodule.share_data_of(shared)
    with stops.in_phase("data"):
        check_data_fits(cfg, datamodule)  # split sizes only the data files tell: before any logger starts
    module = build_module(cfg, datamodule)
    return datamodule, module


def fit_and_test(cfg: DictConfig) -> dict[str, float]:
    """Fit the run `cfg` (resuming `cfg.ckpt_path` if set), then test its best checkpoint; its final metrics."""
    datamodule, module = build_data_and_module(cfg)
    resume_from = checkpoint_to_resume(cfg, module)
    if resume_from:
        log.info("Resuming from %s", resume_from)
    loggers = build_loggers(cfg)
    if resume_from:  # metrics.csv keeps the history before the checkpoint
        continue_metrics(loggers, run_folder_of(resume_from), load_checkpoint(resume_from))
    trainer = build_trainer(cfg, [*build_callbacks(cfg), *trial_callbacks(cfg)], loggers)  # an Optuna trial prunes
    track_phases(trainer, datamodule)

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
