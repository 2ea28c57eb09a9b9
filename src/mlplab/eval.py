"""Evaluate a checkpoint on the test split of the data set it was trained on, or of another one (`data=...`)."""

from __future__ import annotations

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from mlplab.checkpoints.io import CheckpointError  # noqa: F401 (part of the API)
from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.config.validation import validate_config
from mlplab.run.process import prepare_process, short_user_errors
from mlplab.run.results import format_metrics, metric_values
from mlplab.run.trained import load_trained_run

log = logging.getLogger(__name__)
register_resolvers()


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the run stored in `cfg.ckpt_path` (a run folder: its best checkpoint), load its weights and test it."""
    validate_config(cfg)
    run = load_trained_run(cfg.ckpt_path, cfg.paths, data=cfg.get("data"))
    trainer = instantiate(cfg.trainer)
    trainer.test(run.module, datamodule=run.datamodule, verbose=False)
    metrics = metric_values(trainer)
    log.info("Test metrics of %s:\n%s", run.ckpt_path, format_metrics(metrics, prefix="test/"))
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    prepare_process()
    with short_user_errors():
        evaluate(cfg)


if __name__ == "__main__":
    main()
