"""Building a run's objects from its config with Hydra's `instantiate`."""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.models.module import SupervisedModule
from mlplab.run.hooks import skip_empty_batch_hooks


def build_datamodule(cfg: DictConfig) -> TensorDataModule:
    return instantiate(cfg.data)


def build_module(cfg: DictConfig, datamodule: TensorDataModule) -> SupervisedModule:
    """The network gets its input and output sizes from the data; the module gets everything else from the config."""
    task = datamodule.task
    network = instantiate(cfg.model, input_size=datamodule.input_size, output_size=task.output_size)
    scheduler = instantiate(cfg.scheduler, _convert_="all") if cfg.get("scheduler") else None
    module = SupervisedModule(
        network, task, optimizer=instantiate(cfg.optimizer), scheduler=scheduler, compile=cfg.get("compile", False)
    )
    # the checkpoint carries the whole resolved config: eval.py rebuilds the run from it alone
    module.save_hyperparameters(OmegaConf.to_container(cfg, resolve=True))
    return module


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry of a group such as `callbacks` or `logger`; null entries are switched off."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None and "_target_" in entry]


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    return _instantiate_group(cfg.get("callbacks"))


def build_loggers(cfg: DictConfig) -> list[Logger]:
    return _instantiate_group(cfg.get("logger"))


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> L.Trainer:
    if not cfg.trainer.get("enable_progress_bar", True):
        # trainer.enable_progress_bar=false is the switch users know; Lightning refuses a bar callback with it
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    skip_empty_batch_hooks(trainer.callbacks)  # Lightning's own callbacks included
    return trainer
