import datetime as dt
import sys

import hydra.core.utils
import pytest
from omegaconf import OmegaConf

from mlplab.run.folders import claim_new_folder
from mlplab.train import main
from tests.conftest import make_idx_dataset, md5, tiny_overrides


class _FrozenClock(dt.datetime):
    """Every run of the test starts at the same second, as runs a script starts together may."""

    @classmethod
    def now(cls, tz=None):
        return cls(2025, 1, 31, 12, 0, 0)


@pytest.fixture
def same_second(monkeypatch):
    monkeypatch.setattr(hydra.core.utils, "datetime", _FrozenClock)  # what Hydra's `${now:...}` reads


def _run(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["train.py", *args])
    main()


def _quick(data_dir, files):
    """A one-epoch run on the tiny files with nothing but checkpoints and records written."""
    return [
        *tiny_overrides(data_dir, files),
        "trainer.max_epochs=1",
        "baselines=false",
        "logger=none",
        "callbacks=lean",
    ]


def test_claim_new_folder_takes_the_next_free_name_and_leaves_existing_ones_alone(tmp_path):
    first = claim_new_folder(tmp_path / "runs" / "12-00-00")
    (first / "keep.txt").write_text("mine")
    assert claim_new_folder(first) == tmp_path / "runs" / "12-00-00_2"
    assert claim_new_folder(first) == tmp_path / "runs" / "12-00-00_3"
    assert (first / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["12-00-00", "12-00-00_2", "12-00-00_3"]


def test_two_runs_started_in_the_same_second_keep_their_own_folders(tmp_path, monkeypatch, tiny_mnist, same_second):
    common = [f"paths.output_root={tmp_path / 'outputs'}", *_quick(*tiny_mnist)]
    _run(monkeypatch, *common, "seed=1")
    first = tmp_path / "outputs" / "mnist" / "runs" / "2025-01-31_12-00-00"
    first_checkpoint = md5(first / "checkpoints" / "last.ckpt")
    _run(monkeypatch, *common, "seed=2")
    second = first.with_name(first.name + "_2")
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name, second.name]
    assert md5(first / "checkpoints" / "last.ckpt") == first_checkpoint  # the second run did not overwrite it
    for folder, seed in ((first, 1), (second, 2)):
        assert OmegaConf.load(folder / ".hydra" / "config.yaml").seed == seed
        assert OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra.runtime.output_dir == str(folder)
        assert (folder / "checkpoints" / "last.ckpt").is_file() and (folder / "run_record.json").is_file()


def test_a_folder_the_user_names_is_used_as_given(tmp_path, monkeypatch, tiny_mnist, same_second):
    folder = tmp_path / "mine"
    folder.mkdir()
    _run(monkeypatch, f"hydra.run.dir={folder}", *_quick(*tiny_mnist))
    assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("mine")] == ["mine"]


def test_two_sweeps_started_in_the_same_second_keep_their_own_folders(tmp_path, monkeypatch, same_second):
    files = make_idx_dataset(tmp_path / "data", name="MNIST")
    common = [f"paths.output_root={tmp_path / 'outputs'}", *_quick(tmp_path / "data", files)]
    _run(monkeypatch, "-m", "seed=1,2", *common)
    _run(monkeypatch, "-m", "seed=3", *common)
    sweeps = tmp_path / "outputs" / "mnist" / "multiruns"
    assert sorted(p.name for p in sweeps.iterdir()) == ["2025-01-31_12-00-00", "2025-01-31_12-00-00_2"]
    first, second = sweeps / "2025-01-31_12-00-00", sweeps / "2025-01-31_12-00-00_2"
    assert [OmegaConf.load(first / job / ".hydra" / "config.yaml").seed for job in ("0", "1")] == [1, 2]
    assert OmegaConf.load(second / "0" / ".hydra" / "config.yaml").seed == 3
    assert not (second / "1").exists()


def test_a_sweep_over_data_sets_keeps_its_jobs_in_one_folder_named_by_task(tmp_path, monkeypatch):
    files = make_idx_dataset(tmp_path / "data", name="MNIST")
    assert make_idx_dataset(tmp_path / "data", name="FashionMNIST") == files
    # no hydra.sweep.dir: the folder comes from task_name, i.e. `${hydra:runtime.choices.data}`
    argv = [
        "train.py",
        "-m",
        "data=mnist,fashion_mnist",
        f"paths.output_root={tmp_path / 'outputs'}",
        *tiny_overrides(tmp_path / "data", files),
        "trainer.max_epochs=1",
        "baselines=false",
        "logger=none",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    sweeps = list((tmp_path / "outputs").glob("*/multiruns/*"))
    assert len(sweeps) == 1 and sweeps[0].parts[-3] == "mnist"  # the sweep's base choice names its folder
    assert sorted(p.name for p in sweeps[0].iterdir()) == [
        ".sweep.lock",
        "0",
        "1",
        "multirun.yaml",
        "summary.csv",
        "summary.md",
        "summary.png",
        "sweep_jobs.json",
    ]
    for job, data in (("0", "mnist"), ("1", "fashion_mnist")):
        hydra_cfg = OmegaConf.load(sweeps[0] / job / ".hydra" / "hydra.yaml").hydra
        assert hydra_cfg.runtime.choices.data == data
        assert (sweeps[0] / job / "checkpoints" / "last.ckpt").is_file()
