"""Tiny California housing files in the StatLib format, written by the tests."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from mlplab.data.housing import STATLIB_NAME
from tests.conftest import md5


def make_statlib_file(mirror: Path, n: int = 400, seed: int = 0) -> str:
    """Write `n` plausible districts to mirror/california_housing/cal_housing.data; return its md5.

    The house value rises with income and latitude plus noise, so a small network can learn it.
    """
    rng = np.random.default_rng(seed)
    households = rng.integers(50, 2000, n).astype(float)
    income = rng.uniform(0.5, 15, n)
    latitude = rng.uniform(32.5, 42, n)
    columns = [
        rng.uniform(-124.3, -114.3, n),  # longitude
        latitude,
        rng.integers(1, 53, n).astype(float),  # housingMedianAge
        households * rng.uniform(3, 8, n),  # totalRooms
        households * rng.uniform(0.8, 1.3, n),  # totalBedrooms
        households * rng.uniform(1.5, 4, n),  # population
        households,
        income,
        np.clip(30000 * income + 8000 * (latitude - 32) + rng.normal(0, 20000, n), 14999, 500001),
    ]
    folder = mirror / "california_housing"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATLIB_NAME
    np.savetxt(path, np.column_stack(columns), fmt="%.6f", delimiter=",")
    return md5(path)


def write_scikit_learn_cache(data_home: Path, statlib_file: Path) -> None:
    """Write the cache `fetch_california_housing` reads from `data_home`, as scikit-learn itself writes it."""
    table = np.loadtxt(statlib_file, delimiter=",")
    data_home.mkdir(parents=True, exist_ok=True)
    joblib.dump(table[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]], data_home / "cal_housing_py3.pkz", compress=6)


def housing_overrides(data_dir: Path, mirror: Path, file_md5: str) -> list[str]:
    """Overrides that train on the tiny file through the mirror only (no network), short and quiet."""
    return [
        "data=housing",
        f"paths.data_dir={data_dir}",
        f"data.md5={file_md5}",
        f"data.sources=[{{_target_:mlplab.data.sources.Mirror,root:'{mirror}',folder:california_housing}}]",
        "data.batch_size=32",
        "accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "callbacks.model_summary=null",
        "scheduler=none",  # a constant lr unless a test asks for a schedule (the default is cosine)
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "baseline_models.random_forest.n_estimators=10",
    ]
