"""Running train.py as a user would, and reading what its runs and sweeps leave behind.

Two ways to run it: `run_train_process` starts `python train.py <args>` as a subprocess (with a timeout; the test
process keeps its own signal handlers and Lightning's state), `run_cli_in_process` calls train.py's entry point in
the test process (faster; pytest's monkeypatch puts `sys.argv` back). `start_train_process` starts one in the
background, for a test that stops it itself.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplab.config.location import PROJECT_ROOT
from mlplab.train import cli, main
from tests.conftest import tiny_overrides

TRAIN_PY = PROJECT_ROOT / "train.py"
TIMEOUT_S = 420  # a hung DDP collective must fail the test, not the CI job
STEPS_PER_EPOCH = 16  # tiny_mnist's 500 training images (600 less 100 for validation) in batches of 32


def train_env(**extra: str) -> dict[str, str]:
    """This process's environment, with this checkout's sources and its tests (the `_target_` helpers of
    tests/helpers/callbacks.py) first on PYTHONPATH, whatever folder the run starts in; plus `extra`."""
    path = [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path)), **extra}


def train_command(*args: str) -> list[str]:
    return [sys.executable, str(TRAIN_PY), *args]


def run_train_process(
    *args: str, cwd: Path = PROJECT_ROOT, expect_code: int | None = 0, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess:
    """`python train.py <args>` in `cwd`, its output captured; fails with that output unless it exits with
    `expect_code` (None: any code, for the test to judge)."""
    process = subprocess.run(
        train_command(*args),
        cwd=cwd,
        env=train_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if expect_code is not None:
        assert process.returncode == expect_code, (
            f"train.py exited with {process.returncode}, not {expect_code}:\n"
            f"{process.stdout[-3000:]}\n{process.stderr[-5000:]}"
        )
    return process


def start_train_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT, **popen
) -> subprocess.Popen:
    """`python train.py <args>` started in the background, with `env` added to its environment; `popen`: where its
    output goes (subprocess.Popen's stdout, stderr)."""
    return subprocess.Popen(
        train_command(*args), cwd=cwd, env=train_env(**(env or {})), stdin=subprocess.DEVNULL, **popen
    )


def run_cli_in_process(monkeypatch, *args: str) -> None:
    """train.py's `cli()` in this process, as `python train.py <args>` runs it: `ckpt_path=<run>` and
    `sweep_resume=<sweep>` made into that run's or sweep's overrides, then Hydra's entry point."""
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    cli()


def run_main_in_process(monkeypatch, *args: str) -> None:
    """Hydra's entry point `main()` in this process, with `args` as train.py's command line (no resume rewriting)."""
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    main()


def short(data_dir: Path, files: dict[str, str]) -> list[str]:
    """tiny_overrides for one epoch."""
    return [*tiny_overrides(data_dir, files), "trainer.max_epochs=1"]


def job_folders(sweep_dir: Path) -> list[Path]:
    """A sweep's job folders (0, 1, ...), in order."""
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (its path relative to it) and its md5: compare two to see that nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def metrics_rows(run: Path) -> list[dict[str, str]]:
    """The rows of a run's csv/metrics.csv (logger=csv)."""
    with (run / "csv" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def logged_values(run: Path, key: str) -> list[float]:
    """Every value logged for `key` in a run's csv/metrics.csv, in order."""
    return [float(row[key]) for row in metrics_rows(run) if row.get(key)]


def _history(run_folder: Path) -> list[tuple[str, str, dict[str, float]]]:
    """metrics.csv as (epoch, step, values) rows, without the wall-clock figures (time/), which differ between runs."""
    return [
        (
            row["epoch"],
            row["step"],
            {k: float(v) for k, v in row.items() if v and k not in ("epoch", "step") and not k.startswith("time/")},
        )
        for row in metrics_rows(run_folder)
    ]


def assert_same_history(run_folder: Path, expected_folder: Path, name: str = "") -> None:
    """`run_folder`'s metrics.csv has the rows of `expected_folder`'s: the same epochs, steps and metrics."""
    history, expected = _history(run_folder), _history(expected_folder)
    assert [(e, s, sorted(v)) for e, s, v in history] == [(e, s, sorted(v)) for e, s, v in expected], name
    for (epoch, step, values), (_, _, expected_values) in zip(history, expected):
        assert values == pytest.approx(expected_values, rel=1e-6, abs=1e-9), f"{name}: epoch {epoch}, step {step}"
