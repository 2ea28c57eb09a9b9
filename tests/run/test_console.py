"""A sweep job's console shows warnings and what the sweep says about itself; a run's next commands quote its folder
as the shell and Hydra read it back (tests/test_console.py runs them on a real run)."""

from __future__ import annotations

import io
import logging
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlplab.run.console import next_commands, quiet_console_in_sweep_jobs


@pytest.fixture
def console():
    stream = io.StringIO()
    handler, file_handler = logging.StreamHandler(stream), logging.FileHandler("/dev/null")
    root = logging.getLogger()
    root.addHandler(handler)
    root.addHandler(file_handler)
    level, root.level = root.level, logging.INFO
    yield stream, file_handler
    root.removeHandler(handler)
    root.removeHandler(file_handler)
    file_handler.close()
    root.setLevel(level)


def _log_three() -> None:
    logging.getLogger("mlplab.callbacks.progress_bar").info("an epoch line")
    logging.getLogger("mlplab.run.record").warning("a warning")
    logging.getLogger("mlplab.sweeps.report.write").info("the sweep report")


def test_a_sweep_jobs_console_shows_warnings_and_the_sweeps_own_lines(console):
    stream, file_handler = console
    quiet_console_in_sweep_jobs(True)
    _log_three()
    assert stream.getvalue().splitlines() == ["a warning", "the sweep report"]
    assert not file_handler.filters  # train.log keeps everything


def test_a_single_runs_console_shows_everything_even_after_a_sweep_job(console):
    stream, _ = console
    quiet_console_in_sweep_jobs(True)
    quiet_console_in_sweep_jobs(False)
    _log_three()
    assert stream.getvalue().splitlines() == ["an epoch line", "a warning", "the sweep report"]


def test_the_next_commands_give_back_a_folder_with_a_space_and_an_accent(tmp_path):
    folder = tmp_path / "my runs" / "réseau"
    cfg = OmegaConf.create(
        {
            "paths": {"output_dir": str(folder)},
            "data": {"_target_": "mlplab.data.images.MNISTDataModule"},
            "logger": {"wandb": {"mode": None}},
        }
    )
    eval_command, predict_command, leet = (shlex.split(c) for c in next_commands(cfg))
    assert eval_command[1:2] == ["eval.py"] and predict_command[1:2] == ["predict.py"]
    for words in (eval_command, predict_command):
        parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(words[2:])}
        assert parsed["ckpt_path"] == str(folder)
    assert predict_command[-1] == "inputs=docs/examples/digits" or predict_command[-1].endswith("docs/examples/digits")
    assert leet[1:] == ["leet", str(folder / "wandb")]
