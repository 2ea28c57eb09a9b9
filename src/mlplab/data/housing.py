"""California housing (Pace & Barry, 1997): predict a district's median house value from 8 features.

The features and the target are exactly scikit-learn's `fetch_california_housing` ones (the target in
units of 100,000 USD). Whichever source provides them, they are verified, then cached once per data
folder as `<data_dir>/california_housing/california_housing.npz` (temp file + atomic rename).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from filelock import FileLock

from mlplab.data.sources import DataUnavailableError, Source, SourceError, md5sum
from mlplab.data.tensor_datamodule import Split, TensorDataModule
from mlplab.models.tasks import RegressionTask

log = logging.getLogger(__name__)

FEATURE_NAMES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")
TARGET_NAME = "MedHouseVal"
# the StatLib file `cal_housing.data`: 9 comma-separated columns, no header
STATLIB_COLUMNS = ("longitude", "latitude", "housingMedianAge", "totalRooms", "totalBedrooms", "population",
                   "households", "medianIncome", "medianHouseValue")
STATLIB_NAME = "cal_housing.data"
STATLIB_MD5 = "2c9da11498c5aa9ed02cf8b7f6e77ea7"
# what the full data set looks like (the data mirror's README lists the same checks)
NUM_ROWS = 20640
MEAN_MED_INC = 3.870671
MEAN_TARGET = 2.06855817
MAX_TARGET = 5.00001


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


def check_full_data_set(features: np.ndarray, target: np.ndarray, where: str) -> None:
    """Raise SourceError unless the arrays are the whole data set (row count and known means)."""
    if features.shape != (NUM_ROWS, len(FEATURE_NAMES)) or target.shape != (NUM_ROWS,):
        raise SourceError(f"{where} gave features {features.shape} and target {target.shape}; "
                          f"expected ({NUM_ROWS}, {len(FEATURE_NAMES)}) and ({NUM_ROWS},)")
    checks = {
        "mean MedInc": (float(features[:, 0].mean()), MEAN_MED_INC),
        "mean target": (float(target.mean()), MEAN_TARGET),
        "max target": (float(target.max()), MAX_TARGET),
    }
    for what, (got, expected) in checks.items():
        if not abs(got - expected) < 1e-5:
            raise SourceError(f"{where} gave {what} {got:.6f}, expected {expected}: not the California housing data")


class HousingSource(Protocol):
    def load(self, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
        """Return (features (N, 8), target (N,)), verified, using `scratch` for any files; or raise SourceError."""


class ScikitLearnDownload:
    """scikit-learn's `fetch_california_housing`: needs internet, unless `data_home` already holds its cache.

    With `data_home=None` it downloads into the scratch folder, so nothing is left behind; the content
    is checked against the known row count and means.
    """

    def __init__(self, data_home: str | Path | None = None, timeout: float = 30.0) -> None:
        self.data_home = Path(data_home).expanduser() if data_home else None
        self.timeout = timeout

    def __str__(self) -> str:
        return "scikit-learn fetch_california_housing" + (f" (data_home={self.data_home})" if self.data_home else "")

    def load(self, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import fetch_california_housing

        # scikit-learn's urlretrieve has no timeout of its own: without one a dead network hangs the run
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its "Retry downloading" warning; the failure is reported below
                features, target = fetch_california_housing(
                    data_home=self.data_home or scratch, return_X_y=True, n_retries=1, delay=0.1
                )
        except Exception as e:  # URLError, TimeoutError, OSError for a bad checksum, ...
            raise SourceError(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
        finally:
            socket.setdefaulttimeout(previous)
        check_full_data_set(features, target, str(self))
        return features, target


class StatLibFile:
    """The original StatLib file `cal_housing.data` from a raw-file source (a Mirror), checked by md5."""

    def __init__(self, source: Source, md5: str = STATLIB_MD5, name: str = STATLIB_NAME) -> None:
        self.source = source
        self.md5 = md5
        self.name = name

    def __str__(self) -> str:
        return f"{self.source} ({self.name})"

    def load(self, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
        self.source.fetch([self.name], scratch)
        path = scratch / self.name
        got = md5sum(path)
        if got != self.md5:
            raise SourceError(f"{self.name} has md5 {got}, expected {self.md5} (truncated, or another file)")
        try:
            return features_from_statlib(read_statlib(path))
        except HousingFormatError as e:
            raise SourceError(str(e)) from None


class HousingDataModule(TensorDataModule):
    """California housing regression: a seeded train/val/test split, features standardised with the
    training split's statistics, the target in units of 100,000 USD.

    Args:
        data_dir: root of the data cache; the verified arrays live in `<data_dir>/california_housing/`.
        sources: where to get the data when it is not cached yet, tried in order (ScikitLearnDownload, StatLibFile).
        val_fraction, test_fraction: shares of all rows held out for validation and test.
        split_seed: seeds the split, so every run and sweep job sees the same one.
    """

    name = "california_housing"

    def __init__(
        self,
        data_dir: str | Path,
        sources: Sequence[HousingSource] = (),
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        split_seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed)
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} are invalid: each must be "
                "in (0, 1) and together below 1, so that some rows are left to train on"
            )
        self.folder = Path(data_dir) / self.name
        self.sources = list(sources)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.feature_mean: torch.Tensor | None = None
        self.feature_std: torch.Tensor | None = None

    @property
    def cache_file(self) -> Path:
        return self.folder / "california_housing.npz"

    @property
    def input_size(self) -> int:
        return len(FEATURE_NAMES)

    @property
    def task(self) -> RegressionTask:
        return RegressionTask(FEATURE_NAMES, TARGET_NAME)

    def prepare_data(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / ".lock")):
            if self.cache_file.is_file():
                return
            failures: list[str] = []
            for source in self.sources:
                with tempfile.TemporaryDirectory(dir=self.folder, prefix=".fetch-") as scratch:
                    try:
                        features, target = source.load(Path(scratch))
                    except SourceError as e:
                        failures.append(f"{source}: {e}")
                        continue
                    partial = Path(scratch) / self.cache_file.name
                    np.savez(partial, features=features, target=target, source=str(source))
                    os.replace(partial, self.cache_file)  # atomic: readers see all or nothing
                    log.info("California housing: verified data from %s, cached in %s", source, self.cache_file)
                    return
            tried = "\n".join(f"  {i}. {f}" for i, f in enumerate(failures, 1)) or "  (no sources configured)"
            raise DataUnavailableError(
                f"Could not get the California housing data into {self.folder}.\nTried, in order:\n{tried}\n"
                f"To provide it yourself, put the StatLib file {STATLIB_NAME} (md5 {STATLIB_MD5}) in the folder "
                f"california_housing/ of a data mirror and set paths.data_mirror=<mirror> or DATA_MIRROR."
            )

    def load_splits(self) -> dict[str, Split]:
        features, target = self._read_cache()
        n = len(features)
        n_val, n_test = round(n * self.val_fraction), round(n * self.test_fraction)
        if min(n_val, n_test, n - n_val - n_test) < 1:
            raise ValueError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction={self.test_fraction} of {n} rows "
                f"leave an empty split (train {n - n_val - n_test}, val {n_val}, test {n_test})"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        test_idx, val_idx, train_idx = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        x, y = torch.from_numpy(features), torch.from_numpy(target)
        # statistics of the training rows only: validation and test stay unseen
        self.feature_mean = x[train_idx].mean(dim=0)
        std = x[train_idx].std(dim=0)
        self.feature_std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays 0, not NaN
        x, y = self.prepare_inputs(x), y.float()
        return {"train": (x[train_idx], y[train_idx]), "val": (x[val_idx], y[val_idx]), "test": (x[test_idx], y[test_idx])}

    def prepare_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw feature rows (N, 8), columns in FEATURE_NAMES' order, standardised with the training split's statistics."""
        if self.feature_mean is None or self.feature_std is None:
            raise RuntimeError("California housing: no feature statistics yet: call setup() or load_state_dict() first")
        return ((raw.double() - self.feature_mean) / self.feature_std).float()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The training split's feature statistics, kept in checkpoints: predict.py standardises new rows with them."""
        if self.feature_mean is None or self.feature_std is None:
            return {}
        return {"feature_mean": self.feature_mean, "feature_std": self.feature_std}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.feature_mean = state_dict["feature_mean"].double()
        self.feature_std = state_dict["feature_std"].double()

    def _read_cache(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            with np.load(self.cache_file, allow_pickle=False) as cached:
                features, target = cached["features"], cached["target"]
        except FileNotFoundError:
            raise DataUnavailableError(f"{self.cache_file} does not exist: run prepare_data() first") from None
        except (OSError, KeyError, ValueError) as e:
            raise HousingFormatError(f"{self.cache_file} is unreadable ({e}): delete it to fetch the data again") from None
        if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES) or target.shape != (len(features),):
            raise HousingFormatError(f"{self.cache_file} holds features {features.shape} and target {target.shape}; "
                                     f"expected (N, {len(FEATURE_NAMES)}) and (N,): delete it to fetch the data again")
        return features, target
