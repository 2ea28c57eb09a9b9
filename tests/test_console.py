"""What a user sees on the console: a config error is its message alone (the key named in the last line)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlplab.config.location import PROJECT_ROOT

TIMEOUT_S = 300


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python <script> <args>` from the repository root, with this checkout's sources."""
    paths = [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths)), **(env or {})}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


@pytest.mark.parametrize(
    ("script", "args", "key"),
    [
        ("train.py", ["lr=-1", "logger=none"], "lr=-1"),
        ("predict.py", ["ckpt_path=nowhere", "inputs=no/such/folder"], "inputs='no/such/folder'"),
    ],
)
def test_a_config_error_prints_its_message_alone(script, args, key, tmp_path):
    process = run_script(script, *args, f"paths.output_root={tmp_path}")
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 1, process.stderr
    assert 1 <= len(lines) <= 3, process.stderr  # no traceback: Hydra's is 18 lines
    assert lines[-1].startswith(f"ConfigError: {key} is invalid"), process.stderr
    assert "Traceback" not in process.stderr + process.stdout


def test_hydra_full_error_still_shows_the_traceback(tmp_path):
    process = run_script(
        "train.py", "lr=-1", "logger=none", f"paths.output_root={tmp_path}", env={"HYDRA_FULL_ERROR": "1"}
    )
    assert process.returncode == 1
    assert "Traceback" in process.stderr and "ConfigError: lr=-1 is invalid" in process.stderr
