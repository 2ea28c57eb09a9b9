"""What every path of one measurement shares, and what mlplab's own config and code make of it."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from mlplab.config.compose import compose_run_config
from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.run.build import build_datamodule

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Setting:
    """What every path shares in one measurement."""

    data_dir: Path
    device: str
    batch_size: int
    epochs: int
    hidden: tuple[int, ...] = (300, 300)
    optimizer: str = "adam"
    lr: float = 1e-3
    val_size: int = 5000
    split_seed: int = 0
    seed: int = 0
    workers: int = 0
    logger: str | None = None
    overrides: tuple[str, ...] = ()

    @property
    def accelerator(self) -> str:
        """mlplab's accelerator config for the device."""
        return "gpu" if torch.device(self.device).type == "cuda" else "cpu"


def mlplab_overrides(setting: Setting) -> list[str]:
    """The `python train.py` overrides that make mlplab's run match the setting."""
    return [
        f"paths.data_dir={setting.data_dir}",
        f"accelerator={setting.accelerator}",
        f"data.batch_size={setting.batch_size}",
        f"data.val_size={setting.val_size}",
        f"data.split_seed={setting.split_seed}",
        f"trainer.max_epochs={setting.epochs}",
        f"model.hidden=[{','.join(map(str, setting.hidden))}]",
        f"optimizer={setting.optimizer}",
        f"lr={setting.lr}",
        f"seed={setting.seed}",
        *([f"logger={setting.logger}"] if setting.logger else []),
        *setting.overrides,
    ]


@functools.cache
def run_config(setting: Setting) -> DictConfig:
    """mlplab's composed config for the setting (composed once: before any clock starts)."""
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        return compose_run_config(mlplab_overrides(setting), Path(tmp))


def datamodule(setting: Setting) -> TensorDataModule:
    """mlplab's data module for the setting: its files, split and normalisation are every path's."""
    return build_datamodule(run_config(setting))


def network(setting: Setting, data: TensorDataModule) -> nn.Module:
    """mlplab's network for the data (the config's model), initialised from the setting's seed."""
    torch.manual_seed(setting.seed)
    return instantiate(run_config(setting).model, input_size=data.input_size, output_size=data.task.output_size)


def optimizer_factory(setting: Setting) -> OptimizerFactory:
    """The optimizer mlplab's config makes (e.g. fused Adam), so that every path steps the same way."""
    return instantiate(run_config(setting).optimizer)
