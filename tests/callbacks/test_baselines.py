import csv
import json
import logging
import os

import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression

from mlplab.callbacks.baselines import Baselines
from mlplab.config.validation import validate_config
from mlplab.data.housing import HousingDataModule
from mlplab.data.images import FashionMNISTDataModule
from mlplab.data.sources import Mirror
from mlplab.train import train
from mlplab.utils.errors import ConfigError
from tests.conftest import make_idx_dataset, tiny_overrides
from tests.helpers.statlib import housing_overrides, make_statlib_file


class CountingRegressor(DummyRegressor):
    """A scikit-learn mean predictor that counts its fits (a class attribute: the instances change)."""

    fits: list[int] = []

    def fit(self, X, y, sample_weight=None):
        CountingRegressor.fits.append(len(X))
        return super().fit(X, y, sample_weight)


@pytest.fixture
def housing(tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    source = Mirror(tmp_path / "mirror", "california_housing")

    def datamodule(**kwargs) -> HousingDataModule:
        dm = HousingDataModule(tmp_path / "data", sources=[source], md5=file_md5, **kwargs)
        dm.prepare_data()
        dm.setup()
        return dm

    return datamodule


def test_baselines_are_logged_next_to_the_test_metrics_and_compared_in_a_table(compose_config, tmp_path, caplog):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=400)
    cfg = compose_config(*housing_overrides(tmp_path / "data", tmp_path / "mirror", file_md5), "logger=csv")
    with caplog.at_level(logging.INFO, logger="mlplab.callbacks.baselines"):
        metrics = train(cfg)
    for name in ("mean", "linear", "random_forest"):
        assert {f"baseline/{name}/{m}" for m in ("mse", "rmse", "mae", "r2")} <= metrics.keys()
    assert abs(metrics["baseline/mean/r2"]) < 0.1 < metrics["baseline/linear/r2"]  # the data is mostly linear
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    test_row = next(r for r in rows if r.get("test/rmse"))
    assert float(test_row["baseline/linear/rmse"]) == pytest.approx(metrics["baseline/linear/rmse"])
    table = next(r.getMessage() for r in caplog.records if "Network vs scikit-learn baselines" in r.getMessage())
    lines = table.splitlines()[1:]
    assert lines[0].split() == ["model", "mse", "rmse", "mae", "r2", "fit", "s"]
    assert [line.split()[0] for line in lines[1:]] == ["network", "mean", "linear", "random_forest"]
    assert float(lines[1].split()[2]) == pytest.approx(metrics["test/rmse"], abs=1e-4)


def test_baselines_false_fits_and_logs_nothing(compose_config, tmp_path):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=200)
    cfg = compose_config(
        *housing_overrides(tmp_path / "data", tmp_path / "mirror", file_md5), "baselines=false", "trainer.max_epochs=1"
    )
    metrics = train(cfg)
    assert "test/rmse" in metrics and not [k for k in metrics if k.startswith("baseline/")]
    assert not (tmp_path / "data" / "baselines").exists()


def test_results_are_cached_per_split_and_model_so_sweep_jobs_do_not_refit(housing, tmp_path):
    CountingRegressor.fits.clear()
    cache_dir = tmp_path / "data" / "baselines"
    first = Baselines({"mean": CountingRegressor()}, cache_dir=cache_dir).fit_and_score(housing())
    # a new callback in a new run, as in the next job of a sweep: same split, same model
    again = Baselines({"mean": CountingRegressor()}, cache_dir=cache_dir).fit_and_score(housing())
    assert CountingRegressor.fits == [210] and again == first
    assert list(again["mean"]["metrics"]) == ["mse", "rmse", "mae", "r2"]  # the task's order, for the table
    Baselines({"mean": CountingRegressor()}, cache_dir=cache_dir).fit_and_score(housing(split_seed=1))
    Baselines({"mean": CountingRegressor(strategy="median")}, cache_dir=cache_dir).fit_and_score(housing())
    assert len(CountingRegressor.fits) == 3
    caches = sorted(p.name for p in cache_dir.iterdir() if p.suffix != ".lock")
    assert len(caches) == 2 and all(
        name.startswith("california_housing-") and name.endswith(".json") for name in caches
    )
    assert json.loads((cache_dir / caches[0]).read_text())["mean"]["metrics"].keys() == {"mse", "rmse", "mae", "r2"}


def test_image_baselines_fit_on_a_seeded_subsample_of_the_normalised_training_images(tmp_path):
    files = make_idx_dataset(tmp_path / "data", name="FashionMNIST", n_train=600, n_test=200)
    dm = FashionMNISTDataModule(tmp_path / "data", files=files, val_size=100)
    dm.setup()
    callback = Baselines({"logistic_regression": LogisticRegression(C=0.01, max_iter=200)}, max_train_samples=150)
    results = callback.fit_and_score(dm)
    assert results["logistic_regression"]["metrics"]["acc"] > 0.9  # the tiny classes are easy
    x, _ = callback._arrays(dm, "train", 150)
    assert x.shape == (150, 784) and abs(float(x.mean())) < 1  # normalised like the network's input
    assert (callback._arrays(dm, "train", 150)[0] == x).all()


def test_a_bad_subsample_size_is_rejected(compose_config):
    with pytest.raises(ConfigError, match="baseline_train_samples=0 is invalid: must be an integer >= 1"):
        validate_config(compose_config("baseline_train_samples=0"))


def test_image_runs_log_the_logistic_regression_baseline(compose_config, tiny_mnist):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "trainer.max_epochs=1", "baseline_train_samples=200")
    metrics = train(cfg)
    assert metrics["baseline/logistic_regression/acc"] > 0.5


def test_an_unreadable_cache_is_replaced_by_fresh_results(housing, tmp_path):
    CountingRegressor.fits.clear()
    cache_dir = tmp_path / "data" / "baselines"
    first = Baselines({"mean": CountingRegressor()}, cache_dir=cache_dir).fit_and_score(housing())
    cache = next(cache_dir.glob("*.json"))
    cache.write_text('{"mean": {"model": ')  # cut short
    again = Baselines({"mean": CountingRegressor()}, cache_dir=cache_dir).fit_and_score(housing())
    assert again == {"mean": {**first["mean"], "fit_s": again["mean"]["fit_s"]}} and len(CountingRegressor.fits) == 2
    assert json.loads(cache.read_text())["mean"]["metrics"] == first["mean"]["metrics"]


def test_a_cache_write_that_fails_leaves_the_previous_cache_and_no_temporary_file(housing, tmp_path, monkeypatch):
    cache_dir = tmp_path / "data" / "baselines"
    Baselines({"mean": CountingRegressor()}, cache_dir=cache_dir).fit_and_score(housing())
    (cache,) = cache_dir.glob("*.json")
    before = cache.read_text()

    def killed_before_the_rename(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", killed_before_the_rename)
    with pytest.raises(OSError, match="killed before the rename"):  # a new model: the cache is written again
        Baselines(
            {"mean": CountingRegressor(), "median": CountingRegressor(strategy="median")}, cache_dir=cache_dir
        ).fit_and_score(housing())
    assert cache.read_text() == before
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([cache.name, cache.name + ".lock"])
