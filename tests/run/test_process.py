"""Process-wide settings are made by the entry points, not as a side effect of importing a module."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from mlplab import eval as eval_entry
from mlplab import train as train_entry
from mlplab.config.location import PROJECT_ROOT
from mlplab.run.process import NVML_CHECK


def has_nvidia_driver() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_importing_the_module_leaves_the_environment_alone():
    code = (
        f"import os, lightning; before = os.environ.get({NVML_CHECK!r}); import mlplab.models.module, mlplab.train; "
        f"print(before, os.environ.get({NVML_CHECK!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )
    before, after = result.stdout.split()
    assert before == "1" and after == "1"  # Lightning sets it on import; importing mlplab does not undo it


@pytest.mark.parametrize(
    ("entry", "argv"), [(train_entry, ["train.py", "lr=-1"]), (eval_entry, ["eval.py", "ckpt_path=missing.ckpt"])]
)
def test_the_entry_point_drops_the_nvml_probe_where_there_is_no_driver(entry, argv, tmp_path, monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(sys, "argv", [*argv, f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit):  # the run itself fails at once: what counts is what main() did first
        entry.main()
    assert os.environ.get(NVML_CHECK) == ("1" if has_nvidia_driver() else None)
