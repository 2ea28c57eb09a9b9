"""Shared fixtures: tiny real data files written by the tests, and configs composed the way train.py composes them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from mlplab.config.compose import compose_run_config
from mlplab.config.location import PROJECT_ROOT
from mlplab.data.idx import write_idx

REAL_DATA_DIR = PROJECT_ROOT / "data"


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never talk to a W&B server and never see the developer's credentials."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_idx_dataset(
    root: Path, name: str = "MNIST", n_train: int = 600, n_test: int = 200, seed: int = 0
) -> dict[str, str]:
    """Write four learnable tiny IDX files into root/<name>/raw; return their name -> md5.

    Each class is a bright horizontal band at its own height plus noise, so a small MLP can learn it.
    """
    rng = np.random.default_rng(seed)
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 255
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = raw / f"{prefix}-{kind}-ubyte"
            write_idx(path, array)
            files[path.name] = md5(path)
    return files


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """(data_dir, files) of a tiny MNIST-format data set."""
    data_dir = tmp_path / "data"
    return data_dir, make_idx_dataset(data_dir)


@pytest.fixture
def compose_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose conf/train.yaml like `python train.py <overrides>` would, with outputs under tmp_path."""

    def _compose(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_run_config(overrides, tmp_path / "run", config_name)

    return _compose


def tiny_overrides(data_dir: Path, files: dict[str, str]) -> list[str]:
    """Overrides that point the MNIST config at tiny files and keep the run short."""
    files_override = "{" + ",".join(f"{k}:{v}" for k, v in files.items()) + "}"
    return [
        f"paths.data_dir={data_dir}",
        f"+data.files={files_override}",
        "data.sources=[]",
        "data.val_size=100",
        "data.batch_size=32",
        "data.eval_batch_size=64",
        # a constant learning rate, as the tests predict it; the default cosine's T_max follows trainer.max_epochs,
        # which resume tests change (a test that needs a scheduler names it after these overrides)
        "scheduler=none",
        "accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "callbacks.model_summary=null",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
    ]
