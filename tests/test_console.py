"""What a user sees on the console: a run says where it writes, one line per epoch, its results, and last where
everything went and the commands that come next, each of which runs as printed; a config error is its message
alone (the key named in the last line)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mlplab.config.location import PROJECT_ROOT
from tests.conftest import tiny_overrides

TIMEOUT_S = 300

NOISE = ("FLOPs", "GPU available", "TPU available", "wandb: ", "Tip", "sync_dist", "dirpath", "Traceback")


def _environment() -> dict[str, str]:
    """The test's environment, with this interpreter's folder first on PATH: what an activated venv gives the
    user, for a printed command that starts with `python` or `wandb`."""
    paths = [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")]
    # the tests' WANDB_SILENT (tests/conftest.py) would hide W&B's banner and footer: the run's own config must
    environment = {name: value for name, value in os.environ.items() if name != "WANDB_SILENT"}
    return {
        **environment,
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python <script> <args>` from the repository root, with this checkout's sources."""
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=PROJECT_ROOT,
        env={**_environment(), **(env or {})},
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


def test_a_default_run_prints_its_folder_epochs_results_and_next_commands_that_run(tiny_mnist, tmp_path):
    # the default run on tiny files: its callbacks, progress bar, baselines and W&B logger (offline) as they are
    overrides = [
        o
        for o in tiny_overrides(*tiny_mnist)
        if not o.startswith(("callbacks.model_summary", "trainer.enable_progress_bar"))
    ]
    process = run_script("train.py", *overrides, f"paths.output_root={tmp_path / 'outputs'}")
    console = process.stdout + process.stderr
    lines = console.strip().splitlines()
    assert process.returncode == 0, console
    assert not [word for word in NOISE if word in console], console
    assert lines[0].startswith("Run folder: ") and len(lines) <= 20, console  # ~75 lines before
    assert [line.split(":")[0] for line in lines if line.startswith("Epoch ")] == ["Epoch 0/1", "Epoch 1/1"], console
    assert any(line.startswith("Network vs scikit-learn baselines") for line in lines), console
    assert any(line.startswith("Test metrics") for line in lines), console
    outputs = Path(lines[-5].removeprefix("Outputs: "))
    assert outputs == tmp_path.resolve() / "outputs" / "mnist" / "runs" / outputs.name, console
    assert lines[-4] == "Next:", console

    commands = [shlex.split(line) for line in lines[-3:]]
    assert [words[1] for words in commands] == ["eval.py", "predict.py", "leet"], console
    for words in commands[:2]:
        # as printed, from where the run was started; outputs of eval and predict under tmp_path, not the checkout
        ran = subprocess.run(
            [*words, f"paths.output_root={tmp_path / 'after'}"],
            cwd=PROJECT_ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert ran.returncode == 0, f"{shlex.join(words)}:\n{ran.stdout}\n{ran.stderr}"
    assert (next((tmp_path / "after").rglob("predictions.csv"))).read_text().startswith("file,")
    # `wandb leet <folder>` opens a terminal UI: check the program, its command and the folder it is given
    wandb, leet, folder = commands[2]
    help_text = subprocess.run(
        [wandb, leet, "--help"], cwd=PROJECT_ROOT, env=_environment(), capture_output=True, text=True, timeout=120
    )
    assert help_text.returncode == 0, help_text.stderr
    assert (PROJECT_ROOT / folder).resolve() == outputs / "wandb" and any((outputs / "wandb").glob("*run-*"))
