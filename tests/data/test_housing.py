import logging
import re

import hydra
import numpy as np
import pytest
import torch
from sklearn.datasets import fetch_california_housing

from mlplab.config.validation import validate_config
from mlplab.data.housing import (
    STATLIB_MD5,
    STATLIB_NAME,
    HousingDataModule,
    HousingFormatError,
    ScikitLearnDownload,
    features_from_statlib,
    read_statlib,
)
from mlplab.data.sources import DataUnavailableError, Mirror, fetch_verified, md5sum
from mlplab.train import train
from mlplab.utils.errors import ConfigError
from tests.conftest import md5
from tests.helpers.statlib import housing_overrides, make_statlib_file, write_scikit_learn_cache


def _datamodule(tmp_path, file_md5, sources=None, **kwargs):
    sources = sources if sources is not None else [Mirror(tmp_path / "mirror", "california_housing")]
    return HousingDataModule(data_dir=tmp_path / "data", sources=sources, md5=file_md5, **kwargs)


def test_features_and_target_are_exactly_scikit_learns(tmp_path):
    make_statlib_file(tmp_path / "mirror", n=50)
    statlib_file = tmp_path / "mirror" / "california_housing" / STATLIB_NAME
    write_scikit_learn_cache(tmp_path / "sklearn", statlib_file)
    expected_x, expected_y = fetch_california_housing(
        data_home=tmp_path / "sklearn", download_if_missing=False, return_X_y=True
    )
    x, y = features_from_statlib(read_statlib(statlib_file))
    assert np.array_equal(x, expected_x) and np.array_equal(y, expected_y)


def test_scikit_learns_copy_is_written_back_as_the_statlib_file_byte_for_byte(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=50)
    write_scikit_learn_cache(tmp_path / "sklearn", tmp_path / "mirror" / "california_housing" / STATLIB_NAME)
    (tmp_path / "out").mkdir()
    ScikitLearnDownload(data_home=tmp_path / "sklearn").fetch([STATLIB_NAME], tmp_path / "out")
    assert md5sum(tmp_path / "out" / STATLIB_NAME) == file_md5


def test_a_scikit_learn_copy_that_is_not_the_full_data_set_is_rejected_by_its_md5(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=50)
    write_scikit_learn_cache(tmp_path / "sklearn", tmp_path / "mirror" / "california_housing" / STATLIB_NAME)
    with pytest.raises(DataUnavailableError, match=f"cal_housing.data has md5 {file_md5}, expected {STATLIB_MD5}"):
        fetch_verified(
            tmp_path / "data", {STATLIB_NAME: STATLIB_MD5}, [ScikitLearnDownload(data_home=tmp_path / "sklearn")]
        )
    assert not (tmp_path / "data" / STATLIB_NAME).exists()


def _offline(monkeypatch, tmp_path):
    """A proxy on a closed local port: downloads fail at once, as offline, whatever this machine's network."""
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_without_network_scikit_learn_fails_cleanly_and_the_mirror_provides_the_data(tmp_path, monkeypatch, caplog):
    _offline(monkeypatch, tmp_path)
    file_md5 = make_statlib_file(tmp_path / "mirror")
    mirror = Mirror(tmp_path / "mirror", "california_housing")
    dm = _datamodule(tmp_path, file_md5, sources=[ScikitLearnDownload(), mirror])
    with caplog.at_level(logging.INFO, logger="mlplab.data.sources"):
        dm.prepare_data()
    assert sorted(p.name for p in dm.folder.iterdir()) == [".lock", STATLIB_NAME]  # no scratch left
    assert md5sum(dm.data_file) == file_md5
    assert not (tmp_path / "home").exists()
    assert f"California housing: {STATLIB_NAME} from {mirror}, md5 verified" in caplog.text
    with pytest.raises(DataUnavailableError, match=r"1\. scikit-learn fetch_california_housing: URLError"):
        _datamodule(tmp_path / "other", file_md5, sources=[ScikitLearnDownload()]).prepare_data()


def test_offline_with_no_mirror_set_the_configured_sources_give_the_shipped_file(
    compose_config, tmp_path, monkeypatch, caplog
):
    _offline(monkeypatch, tmp_path)
    monkeypatch.delenv("DATA_MIRROR", raising=False)
    cfg = compose_config("data=housing", f"paths.data_dir={tmp_path / 'data'}")
    assert cfg.paths.data_mirror is None
    dm = hydra.utils.instantiate(cfg.data)
    with caplog.at_level(logging.INFO, logger="mlplab.data.sources"):
        dm.prepare_data()
    assert md5sum(dm.data_file) == STATLIB_MD5
    assert f"{STATLIB_NAME} from the copy shipped with mlplab (mlplab/data/bundled/california_housing)" in caplog.text
    dm.setup()
    assert sum(len(dm.splits[s][0]) for s in ("train", "val", "test")) == 20640


def test_the_data_config_saved_by_older_runs_still_builds_and_gets_the_data(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror")
    old = {
        "_target_": "mlplab.data.housing.HousingDataModule",
        "data_dir": str(tmp_path / "data"),
        "split_seed": 0,
        "val_fraction": 0.1,
        "test_fraction": 0.2,
        "sources": [
            {
                "_target_": "mlplab.data.housing.StatLibFile",
                "md5": file_md5,
                "source": {
                    "_target_": "mlplab.data.sources.Mirror",
                    "root": str(tmp_path / "mirror"),
                    "folder": "california_housing",
                },
            }
        ],
    }
    dm = hydra.utils.instantiate(old, md5=file_md5)  # old configs have no md5 key: they mean the official file
    dm.prepare_data()
    dm.setup()
    assert md5sum(dm.data_file) == file_md5 and len(dm.splits["test"][0]) == 80


def test_splits_are_seeded_disjoint_and_standardised_with_training_statistics(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    dm = _datamodule(tmp_path, file_md5, val_fraction=0.1, test_fraction=0.2)
    dm.prepare_data()
    dm.setup()
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [210, 30, 60]
    train_x, train_y = dm.splits["train"]
    assert train_x.dtype == train_y.dtype == torch.float32 and train_x.shape[1] == dm.input_size == 8
    assert torch.allclose(train_x.mean(0), torch.zeros(8), atol=1e-5) and torch.allclose(
        train_x.std(0), torch.ones(8), atol=1e-5
    )
    assert not torch.allclose(
        dm.splits["test"][0].mean(0), torch.zeros(8), atol=1e-3
    )  # test rows did not shape the statistics
    _, target = features_from_statlib(read_statlib(tmp_path / "mirror" / "california_housing" / STATLIB_NAME))
    every_target = torch.cat([dm.splits[s][1] for s in ("train", "val", "test")])
    assert torch.equal(every_target.sort().values, torch.from_numpy(target).float().sort().values)
    again, other = _datamodule(tmp_path, file_md5), _datamodule(tmp_path, file_md5, split_seed=1)
    again.setup(), other.setup()
    assert torch.equal(again.splits["test"][1], dm.splits["test"][1])
    assert not torch.equal(other.splits["test"][1], dm.splits["test"][1])


def test_a_truncated_mirror_file_is_rejected_by_its_md5_and_nothing_is_cached(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror")
    path = tmp_path / "mirror" / "california_housing" / STATLIB_NAME
    path.write_bytes(path.read_bytes()[:-40])
    dm = _datamodule(tmp_path, file_md5)
    with pytest.raises(DataUnavailableError, match=f"cal_housing.data has md5 {md5(path)}, expected {file_md5}"):
        dm.prepare_data()
    assert not dm.data_file.exists()


def test_a_truncated_file_with_a_matching_md5_is_rejected_naming_the_row(tmp_path):
    make_statlib_file(tmp_path / "mirror", n=100)
    path = tmp_path / "mirror" / "california_housing" / STATLIB_NAME
    path.write_bytes(path.read_bytes()[:-40])  # the last row loses its last columns
    dm = _datamodule(tmp_path, md5(path))
    dm.prepare_data()  # the md5 is the one asked for
    with pytest.raises(HousingFormatError, match=r"is not a complete StatLib housing file: .*row 100"):
        dm.setup()


def test_a_table_with_other_columns_is_rejected(tmp_path):
    path = tmp_path / "eight_columns.data"
    np.savetxt(path, np.ones((5, 8)), fmt="%.6f", delimiter=",")
    with pytest.raises(ValueError, match=r"has shape \(5, 8\); expected rows of 9 columns \(longitude, latitude"):
        read_statlib(path)


@pytest.mark.parametrize(
    "val_fraction, test_fraction, key",
    [
        (0.5, 0.5, "data.val_fraction + data.test_fraction"),
        (0.0, 0.2, "data.val_fraction"),
        (0.1, 1.2, "data.test_fraction"),
        (0.1, 0.00001, "data.val_fraction and data.test_fraction"),
    ],
)
def test_split_fractions_that_leave_no_split_are_rejected(compose_config, val_fraction, test_fraction, key):
    cfg = compose_config("data=housing", f"data.val_fraction={val_fraction}", f"data.test_fraction={test_fraction}")
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}=.* is invalid"):
        validate_config(cfg)


def test_a_short_run_learns_the_target_far_better_than_the_mean(compose_config, tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=600)
    cfg = compose_config(
        *housing_overrides(tmp_path / "data", tmp_path / "mirror", file_md5),
        "trainer.max_epochs=8",
        "lr=3e-3",
        "baselines=false",
    )
    metrics = train(cfg)
    assert {"test/mse", "test/rmse", "test/mae", "test/r2", "val/rmse"} <= metrics.keys()
    assert metrics["test/r2"] > 0.5  # the mean predictor scores 0
    assert metrics["test/rmse"] == pytest.approx(metrics["test/mse"] ** 0.5, rel=1e-4)
