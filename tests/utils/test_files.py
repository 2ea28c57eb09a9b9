"""Checkpoints and other files are written whole or not at all; an unwritable output folder is caught before training."""

import os
import pickle
import sys

import pytest
import torch

from mlplab.checkpoints.io import AtomicCheckpointIO
from mlplab.train import main, train
from mlplab.utils.errors import ConfigError
from mlplab.utils.files import atomic_write
from tests.conftest import tiny_overrides


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "cache.json"
    with atomic_write(path, "w") as f:
        f.write('{"version": 1}')
    with pytest.raises(RuntimeError), atomic_write(path, "w") as f:
        f.write('{"version": 2, "half')
        raise RuntimeError("killed mid-write")
    assert path.read_text() == '{"version": 1}'
    assert os.listdir(tmp_path) == ["cache.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_checkpoint_that_fails_to_serialise_leaves_the_previous_one_intact(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    # pickling a lambda fails after part of the file is written (AttributeError up to Python 3.11, then PicklingError)
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}, "hook": lambda: None}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_runs_write_checkpoints_through_the_atomic_plugin(compose_config, tiny_mnist):
    from mlplab.run.build import build_trainer

    trainer = build_trainer(compose_config(*tiny_overrides(*tiny_mnist)), [], [])
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_an_output_folder_that_cannot_be_written_stops_the_run_before_training(compose_config, tiny_mnist, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = compose_config(*tiny_overrides(*tiny_mnist))
    cfg.paths.output_dir = str(blocker / "run")  # a folder inside a file: fails for root too
    with pytest.raises(
        ConfigError,
        match=rf"paths.output_dir='{blocker / 'run'}' is invalid: it cannot be written "
        r"\(NotADirectoryError: Not a directory\)\. Choose a writable folder",
    ):
        train(cfg)


def test_an_unwritable_run_folder_on_the_command_line_fails_clearly(tiny_mnist, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(sys, "argv", ["train.py", *tiny_overrides(*tiny_mnist), f"hydra.run.dir={blocker / 'run'}"])
    with pytest.raises((SystemExit, OSError)) as error:
        main()
    shown = capsys.readouterr().err + str(error.value)
    assert str(blocker / "run") in shown and "Not a directory" in shown
