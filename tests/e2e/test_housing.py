"""End to end on the real California housing data, from the configured sources (no setting needed: the
StatLib file ships with mlplab)."""

import numpy as np
import pytest
from sklearn.datasets import fetch_california_housing

from mlplab.data.housing import STATLIB_MD5, STATLIB_NAME, ScikitLearnDownload, features_from_statlib, read_statlib
from mlplab.data.sources import Bundled, md5sum
from mlplab.train import train
from tests.helpers.statlib import write_scikit_learn_cache

pytestmark = pytest.mark.slow


def test_the_shipped_file_is_the_statlib_table_that_scikit_learn_reads(tmp_path):
    Bundled("california_housing").fetch([STATLIB_NAME], tmp_path)
    assert md5sum(tmp_path / STATLIB_NAME) == STATLIB_MD5 == "2c9da11498c5aa9ed02cf8b7f6e77ea7"
    features, target = features_from_statlib(read_statlib(tmp_path / STATLIB_NAME))
    # the data mirror README's checks
    assert features.shape == (20640, 8)
    assert features[:, 0].mean() == pytest.approx(3.870671, abs=1e-6)
    assert target.mean() * 100000 == pytest.approx(206855.817, abs=1e-3) and target.max() == pytest.approx(5.00001)
    # scikit-learn's own cache, written from the same file: its loader gives our features, and the
    # scikit-learn source writes the file back byte for byte
    write_scikit_learn_cache(tmp_path / "sklearn", tmp_path / STATLIB_NAME)
    from_scikit_learn = fetch_california_housing(
        data_home=tmp_path / "sklearn", download_if_missing=False, return_X_y=True
    )
    assert all(np.array_equal(a, b) for a, b in zip((features, target), from_scikit_learn))
    (tmp_path / "back").mkdir()
    ScikitLearnDownload(data_home=tmp_path / "sklearn").fetch([STATLIB_NAME], tmp_path / "back")
    assert md5sum(tmp_path / "back" / STATLIB_NAME) == STATLIB_MD5


def test_a_short_run_on_real_housing_beats_the_linear_baseline(compose_config):
    cfg = compose_config(
        "experiment=housing_mlp", "trainer.max_epochs=10", "accelerator=cpu", "trainer.enable_progress_bar=false"
    )
    metrics = train(cfg)
    assert metrics["baseline/linear/rmse"] == pytest.approx(0.73, abs=0.03)
    assert metrics["baseline/random_forest/rmse"] < 0.55
    assert metrics["test/rmse"] < 0.95 * metrics["baseline/linear/rmse"]
