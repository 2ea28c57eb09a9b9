"""A terminal gets Lightning's bar; a file gets one line per epoch and none of the third-party noise."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from mlplab.callbacks.progress_bar import ProgressBar
from mlplab.config.location import PROJECT_ROOT
from mlplab.train import train
from tests.conftest import tiny_overrides

USER_CALLBACK = """
import warnings
import lightning as L

class Warner(L.Callback):
    def on_train_start(self, trainer, pl_module):
        warnings.warn("the user's own deprecation", FutureWarning)
        warnings.warn("the user's own warning")
"""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_run_piped_to_a_file_logs_one_line_per_epoch_and_no_noise(tiny_mnist, tmp_path):
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "warner.py").write_text(USER_CALLBACK)
    overrides = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.enable_progress_bar")]
    command = [
        sys.executable,
        "train.py",
        *overrides,
        "trainer.max_epochs=3",
        "logger=none",
        "baselines=false",
        "callbacks=lean",
        "callbacks.progress_bar.refresh_rate=1",
        "+callbacks.user={_target_:userpkg.warner.Warner}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(tmp_path)])}
    with open(tmp_path / "log", "w") as log:
        subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=300
        )
    output = (tmp_path / "log").read_text()
    assert "\r" not in output and "it/s" not in output  # no bar, no redraws
    lines = [line for line in output.splitlines() if "Epoch " in line]
    # Lightning's 0-based epoch over the last one's, as in the checkpoint names
    assert [line.split("Epoch ")[1].split(":")[0] for line in lines] == ["0/2", "1/2", "2/2"], output
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-epoch*.ckpt")
    assert f"Epoch {int(best.stem.removeprefix('best-epoch'))}/2:" in output
    assert all("train/loss" in line and "val/acc" in line and line.endswith(" s)") for line in lines)
    assert "Tip:" not in output and "LeafSpec" not in output  # Lightning's advert, a deprecation inside Lightning
    assert "the user's own deprecation" in output and "the user's own warning" in output


def test_a_terminal_keeps_the_bar(compose_config, tiny_mnist, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert not ProgressBar().epoch_lines
    overrides = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.enable_progress_bar")]
    train(
        compose_config(
            *overrides, "logger=none", "baselines=false", "callbacks=lean", "callbacks.progress_bar.refresh_rate=1"
        )
    )
    output = terminal.getvalue()
    assert "\r" in output and "Epoch 1/1: 100%" in output  # tqdm's redraws, as on any terminal; 0-based as on files


@pytest.mark.parametrize(
    ("epoch_lines", "isatty", "lines"),
    [(None, False, True), (None, True, False), (True, True, True), (False, False, False)],
)
def test_lines_or_bars_follow_stdout_unless_set(monkeypatch, epoch_lines, isatty, lines):
    monkeypatch.setattr(sys, "stdout", Terminal() if isatty else io.StringIO())
    bar = ProgressBar(epoch_lines=epoch_lines)
    assert bar.epoch_lines is lines and bar.is_enabled is not lines
