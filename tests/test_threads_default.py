"""OpenMP's threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE), set by mlplab before torch loads OpenMP,
unless the user chose a policy (BENCHMARKS.md, "Threads")."""

from __future__ import annotations

import os
import subprocess
import sys

from mlplab.config.location import PROJECT_ROOT

PROBE = "import os, mlplab, torch; print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads())"


def _policy(env: dict[str, str]) -> str:
    env = {**env, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def test_mlplab_makes_openmp_threads_sleep_while_they_wait_unless_told_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"
    assert _policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
