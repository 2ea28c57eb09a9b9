"""California housing (Pace & Barry, 1997): predict a district's median house value from 8 features.

The data is StatLib's table `cal_housing.data`, fetched and checked against its md5 like any raw file
(mlplab.data.sources), then kept in `<data_dir>/california_housing/`. The features and the target are
exactly scikit-learn's `fetch_california_housing` ones (the target in units of 100,000 USD).
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
import torch

from mlplab.data.features import FEATURE_TRANSFORMS
from mlplab.data.sources import DataUnavailableError, Source, SourceError, fetch_verified
from mlplab.data.splits import PoolSplit, seeded_order
from mlplab.data.tensor_datamodule import Split, TensorDataModule
from mlplab.models.tasks import RegressionTask

FEATURE_NAMES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")
TARGET_NAME = "MedHouseVal"
# the StatLib file `cal_housing.data`: 9 comma-separated columns, no header, every value written "%.6f"
STATLIB_COLUMNS = (
    "longitude",
    "latitude",
    "housingMedianAge",
    "totalRooms",
    "totalBedrooms",
    "population",
    "households",
    "medianIncome",
    "medianHouseValue",
)
STATLIB_NAME = "cal_housing.data"
STATLIB_MD5 = "2c9da11498c5aa9ed02cf8b7f6e77ea7"
NUM_ROWS = 20640  # in the official StatLib file
# scikit-learn's cache of that table (sklearn/datasets/_california_housing.py): the file name, and which
# StatLib column each of its columns is. ScikitLearnDownload checks that this still holds on every use.
SCIKIT_LEARN_CACHE = "cal_housing_py3.pkz"
SCIKIT_LEARN_COLUMNS = [8, 7, 2, 3, 4, 5, 6, 1, 0]


class HousingFormatError(ValueError):
    """A file does not hold the California housing table in the expected form."""


def read_statlib(path: str | Path) -> np.ndarray:
    """Read `cal_housing.data` into a float64 array of shape (rows, 9), with clear errors for bad content."""
    path = Path(path)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:  # numpy names the row: "the number of columns changed from 9 to 4 at row 7"
        raise HousingFormatError(f"{path} is not a complete StatLib housing file: {e}") from None
    if table.shape[1] != len(STATLIB_COLUMNS) or len(table) == 0:
        raise HousingFormatError(
            f"{path} has shape {table.shape}; expected rows of {len(STATLIB_COLUMNS)} columns ({', '.join(STATLIB_COLUMNS)})"
        )
    if not np.isfinite(table).all():
        raise HousingFormatError(f"{path} holds values that are not finite numbers")
    if (table[:, STATLIB_COLUMNS.index("households")] <= 0).any():
        raise HousingFormatError(f"{path} has a district with households <= 0 (the averages divide by it)")
    return table


def features_from_statlib(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 features and the target, computed as scikit-learn's `fetch_california_housing` does."""
    lon, lat, age, rooms, bedrooms, population, households, income, value = table.T
    features = np.column_stack(
        [income, age, rooms / households, bedrooms / households, population, population / households, lat, lon]
    )
    return features, value / 100000.0


class ScikitLearnDownload:
    """scikit-learn's `fetch_california_housing` (needs internet, unless `data_home` already holds its cache),
    written back as the StatLib file it was read from: byte for byte the original, so its md5 checks it.

    With `data_home=None` it downloads into the scratch folder, so nothing is left behind.
    """

    def __init__(self, data_home: str | Path | None = None, timeout: float = 30.0) -> None:
        self.data_home = Path(data_home).expanduser() if data_home else None
        self.timeout = timeout

    def __str__(self) -> str:
        return "scikit-learn fetch_california_housing" + (f" (data_home={self.data_home})" if self.data_home else "")

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        from sklearn.datasets import fetch_california_housing

        if list(names) != [STATLIB_NAME]:
            raise SourceError(f"gives only {STATLIB_NAME}, not {', '.join(names)}")
        data_home = self.data_home or dest / "scikit_learn"
        # scikit-learn's urlretrieve has no timeout of its own: without one a dead network hangs the run
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore"
                )  # its "Retry downloading" warning; the failure is reported by the caller
                features, target = fetch_california_housing(
                    data_home=data_home, return_X_y=True, n_retries=1, delay=0.1
                )
        except Exception as e:  # URLError, TimeoutError, OSError for a bad checksum, ...
            raise SourceError(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
        finally:
            socket.setdefaulttimeout(previous)
        table = np.empty((len(features), len(STATLIB_COLUMNS)))
        table[:, SCIKIT_LEARN_COLUMNS] = joblib.load(data_home / SCIKIT_LEARN_CACHE)
        recomputed = features_from_statlib(table)
        if not (np.array_equal(recomputed[0], features) and np.array_equal(recomputed[1], target)):
            raise SourceError(
                f"scikit-learn's cache {SCIKIT_LEARN_CACHE} no longer holds the StatLib columns in the "
                f"order {SCIKIT_LEARN_COLUMNS}: update mlplab.data.housing.SCIKIT_LEARN_COLUMNS"
            )
        np.savetxt(dest / STATLIB_NAME, table, fmt="%.6f", delimiter=",")


class StatLibFile:
    """The StatLib file from a raw-file `source`: what housing sources were before every source gave raw files.

    Kept only so that the configs saved in older runs' checkpoints still build (eval.py, predict.py); it passes
    the fetch on to `source`, and the data module checks the md5.
    """

    def __init__(self, source: Source, md5: str = STATLIB_MD5, name: str = STATLIB_NAME) -> None:
        self.source = source

    def __str__(self) -> str:
        return str(self.source)

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        self.source.fetch(names, dest)


class HousingDataModule(TensorDataModule):
    """California housing regression: a seeded train/val/test split, features transformed with the
    training split's statistics (standardised, or quantile-normalised), the target in units of 100,000 USD.

    Args:
        data_dir: root of the data cache; the verified StatLib file lives in `<data_dir>/california_housing/`.
        sources: where to get that file when it is missing or corrupt, tried in order (mlplab.data.sources).
        val_fraction, test_fraction: shares of all rows held out for validation and test.
        split_seed: seeds the split (and the folds), so every run and sweep job sees the same one.
        folds, fold: k-fold cross-validation: the rows that are not test rows in `folds` folds, fold `fold`
            validating (val_fraction is then moot); None, None: the fixed split.
        md5: of the StatLib file; defaults to the official one.
        feature_transform: "standard" (mean 0, std 1) or "quantile" (each feature mapped to a standard normal
            through its training quantiles; mlplab.data.features), fitted on the training rows only.
    """

    name = "california_housing"
    known_rows = NUM_ROWS  # the splits are carved from these (mlplab.config checks the fractions against it)
    known_md5s = (STATLIB_MD5,)  # a source whose file has another md5 may hold any number of rows

    def __init__(
        self,
        data_dir: str | Path,
        sources: Sequence[Source] = (),
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        split_seed: int = 0,
        md5: str = STATLIB_MD5,
        folds: int | None = None,
        fold: int | None = None,
        feature_transform: str = "standard",
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        self.folder = Path(data_dir) / self.name
        self.sources = list(sources)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.pool_split = PoolSplit(folds=folds, fold=fold, seed=split_seed)
        self.md5 = md5
        # the name is checked with the config (mlplab.config.rules)
        self.feature_transform = FEATURE_TRANSFORMS[feature_transform]()

    @property
    def data_file(self) -> Path:
        return self.folder / STATLIB_NAME

    @property
    def input_size(self) -> int:
        return len(FEATURE_NAMES)

    @property
    def task(self) -> RegressionTask:
        return RegressionTask(FEATURE_NAMES, TARGET_NAME)

    def prepare_data(self) -> None:
        fetch_verified(self.folder, {STATLIB_NAME: self.md5}, self.sources, what="California housing")

    def load_splits(self) -> dict[str, Split]:
        if not self.data_file.is_file():
            raise DataUnavailableError(f"{self.data_file} does not exist: run prepare_data() first")
        features, target = features_from_statlib(read_statlib(self.data_file))
        n = len(features)
        n_val, n_test = round(n * self.val_fraction), round(n * self.test_fraction)
        order = seeded_order(n, self.split_seed)
        test_idx, pool = order[:n_test], order[n_test:]  # the test rows are the same whatever the pool's split
        train_idx, val_idx = self.pool_split.split(pool, n_val)
        x, y = torch.from_numpy(features), torch.from_numpy(target)
        self.feature_transform.fit(x[train_idx])  # the training rows only: validation and test stay unseen
        x, y = self.prepare_inputs(x), y.float()
        return {
            "train": (x[train_idx], y[train_idx]),
            "val": (x[val_idx], y[val_idx]),
            "test": (x[test_idx], y[test_idx]),
        }

    def prepare_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw feature rows (N, 8), columns in FEATURE_NAMES' order, transformed with the training split's statistics."""
        if not self.feature_transform.fitted:
            raise RuntimeError("California housing: no feature statistics yet: call setup() or load_state_dict() first")
        return self.feature_transform(raw)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The training split's feature statistics, kept in checkpoints: predict.py transforms new rows with them."""
        return self.feature_transform.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.feature_transform.load_state_dict(state_dict)
