"""What the Optuna sweeper's tests share: a tiny, quick search's overrides and a run of train.py in this process."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import tiny_overrides


def search_args(tiny_mnist, sweep: Path, *extra: str, epochs: int = 3) -> list[str]:
    """`-m hparams_search=mnist_optuna` on the tiny files: small network, no pictures, CSV logs, one thread."""
    tiny = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.max_epochs=")]
    return [
        "-m",
        "hparams_search=mnist_optuna",
        *tiny,
        f"trainer.max_epochs={epochs}",
        "callbacks=lean",
        "baselines=false",
        "logger=csv",
        "torch_threads=1",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def run_in_process(monkeypatch, args: list[str]) -> None:
    from mlplab.train import cli

    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    cli()
