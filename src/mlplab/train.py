"""Train one configured run: fit, test the best checkpoint, report where everything went."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from mlplab.loggers.wandb import finish_run
from mlplab.utils.config import CONFIG_DIR, validate_config
from mlplab.utils.instantiate import build_callbacks, build_datamodule, build_loggers, build_module, build_trainer
from mlplab.utils.report import best_checkpoint, format_metrics, metric_values

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


def fit_and_test(cfg: DictConfig) -> dict[str, float]:
    validate_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, build_callbacks(cfg), build_loggers(cfg))

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = metric_values(trainer)  # testing replaces the trainer's metrics: keep the training ones
    best = best_checkpoint(trainer)
    trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
    metrics.update(metric_values(trainer))
    if trainer.is_global_zero:
        log.info("Test metrics (%s):\n%s", f"best checkpoint {Path(best).name}" if best else "final weights",
                 format_metrics(metrics, prefix="test/"))
        log.info("Outputs: %s", Path(cfg.paths.output_dir).resolve())
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimised metric so sweepers (Optuna) can use it."""
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
