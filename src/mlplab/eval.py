"""Evaluate a checkpoint on the test split of the data set it was trained on, or of another one (`data=...`)."""

from __future__ import annotations

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.config.validation import validate_config
from mlplab.utils.checkpoints import CheckpointError, check_fits, load_checkpoint  # noqa: F401 (CheckpointError: API)
from mlplab.utils.instantiate import build_datamodule, build_module
from mlplab.utils.process import prepare_process
from mlplab.utils.report import format_metrics, metric_values

log = logging.getLogger(__name__)
register_resolvers()


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Rebuild the run stored in `cfg.ckpt_path`, load its weights and test it."""
    validate_config(cfg)
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(checkpoint["hyper_parameters"])
    # data lives where this machine keeps it, not where the training machine did
    run_cfg.paths = OmegaConf.merge(run_cfg.paths, {k: cfg.paths[k] for k in ("data_dir", "data_mirror")})
    if cfg.get("data"):  # another data set; its ${seed} and ${paths...} resolve in the run's config
        run_cfg.data = OmegaConf.to_container(cfg.data, resolve=False)
    datamodule = build_datamodule(run_cfg)
    module = build_module(run_cfg, datamodule)
    check_fits(checkpoint, module, run_cfg, cfg.ckpt_path)
    module.load_state_dict(checkpoint["state_dict"])
    trainer = instantiate(cfg.trainer)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = metric_values(trainer)
    log.info("Test metrics of %s:\n%s", cfg.ckpt_path, format_metrics(metrics, prefix="test/"))
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    prepare_process()
    evaluate(cfg)


if __name__ == "__main__":
    main()
