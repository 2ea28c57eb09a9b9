"""`make test-gpu` on a machine without a GPU: every GPU test is skipped, the reason is printed, and it exits 0."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import torch

from mlplab.config.location import PROJECT_ROOT


def gpu_check_command() -> list[str]:
    recipe = re.search(r"^test-gpu:.*\n\t(.+)$", (PROJECT_ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has a test-gpu target"
    words = shlex.split(recipe.group(1).replace("$(ARGS)", ""))
    assert words[:3] == ["$(PY)", "-m", "pytest"] and "-m" in words[3:] and "gpu" in words
    return [sys.executable, *words[1:]]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a GPU prints")
def test_make_test_gpu_without_a_gpu_skips_everything_says_why_and_exits_0():
    result = subprocess.run(
        gpu_check_command(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    summary = output.strip().splitlines()[-1]
    assert re.search(r"\d+ skipped", summary) and "passed" not in summary and "failed" not in summary, summary
    assert "no CUDA GPU here" in output and "make test-gpu" in output  # the reason, for each test
