"""End to end on the real California housing data, from the data mirror (DATA_MIRROR, set by .ci/run)."""

import os
from pathlib import Path

import numpy as np
import pytest

from mlplab.data.housing import STATLIB_NAME, ScikitLearnDownload, StatLibFile
from mlplab.data.sources import Mirror
from mlplab.train import train
from tests.statlib import write_scikit_learn_cache

pytestmark = pytest.mark.slow


@pytest.fixture
def mirror() -> Path:
    root = os.environ.get("DATA_MIRROR")
    assert root, "set DATA_MIRROR to the data mirror folder (.ci/run sets ../shared/data)"
    return Path(root)


def test_the_mirror_file_gives_what_scikit_learns_download_gives(mirror, tmp_path):
    from_mirror = StatLibFile(Mirror(mirror, "california_housing")).load(tmp_path)
    # scikit-learn's own cache, written from the same file: its loader and our checks accept it
    write_scikit_learn_cache(tmp_path / "sklearn", mirror / "california_housing" / STATLIB_NAME)
    from_scikit_learn = ScikitLearnDownload(data_home=tmp_path / "sklearn").load(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(from_mirror, from_scikit_learn))


def test_a_short_run_on_real_housing_beats_the_linear_baseline(compose_config, mirror, tmp_path):
    cfg = compose_config("experiment=housing_mlp", "trainer.max_epochs=10", f"paths.data_mirror={mirror}",
                         "accelerator=cpu", "trainer.enable_progress_bar=false")
    metrics = train(cfg)
    assert metrics["baseline/linear/rmse"] == pytest.approx(0.73, abs=0.03)
    assert metrics["baseline/random_forest/rmse"] < 0.55
    assert metrics["test/rmse"] < 0.95 * metrics["baseline/linear/rmse"]
