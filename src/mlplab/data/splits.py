"""How a data set's training pool (the rows that train or validate) is divided: the fixed hold-out every
data module has always used, or k folds for cross-validation (`data.folds=K data.fold=i`).

Every data module hands its pool to `PoolSplit.split`, so both strategies behave the same on every data
set; the test split is the data module's own business and never changes with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlplab.utils.errors import ConfigError


def seeded_order(n: int, seed: int) -> torch.Tensor:
    """The rows 0..n-1 in the seeded order of the fixed split (torch's CPU generator, as before folds existed)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def fold_numbers(n: int, folds: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """The fold (0..folds-1) of each of `n` rows: shuffled with numpy's PCG64 (the same rows on every machine),
    grouped by class when `labels` are given, then dealt round the folds in turn, so the folds' sizes, and
    with labels each class's count in every fold, differ by at most one."""
    order = np.random.default_rng(seed).permutation(n)
    if labels is not None:
        order = order[np.argsort(labels[order], kind="stable")]
    numbers = np.empty(n, dtype=np.int64)
    numbers[order] = np.arange(n) % folds
    return numbers


def check_fold_sizes(folds: int, pool: int) -> None:
    """Raise ConfigError unless each of `folds` folds of `pool` rows holds at least 2 rows to validate on."""
    if pool // folds < 2:
        raise ConfigError(
            f"data.folds={folds} is invalid: the training pool has {pool} rows: at most {pool // 2} folds "
            "(each fold validates on at least 2 rows)"
        )


@dataclass(frozen=True)
class PoolSplit:
    """Which rows of the pool validate: the first `val_size` of the pool's seeded order (folds=None), or
    fold `fold` of `folds` (stratified by class when the data module passes labels), seeded by `seed`."""

    folds: int | None = None
    fold: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds is None and self.fold is not None:
            raise ValueError(f"fold={self.fold} needs folds (k-fold cross-validation)")
        if self.folds is not None and not (self.folds >= 2 and self.fold is not None and 0 <= self.fold < self.folds):
            raise ValueError(f"folds={self.folds} and fold={self.fold} are invalid: folds >= 2, fold in [0, folds)")

    @property
    def tag(self) -> str:
        """A name for the split in file names: empty for the fixed split, `fold<i>of<K>` for a fold."""
        return "" if self.folds is None else f"fold{self.fold}of{self.folds}"

    def split(
        self, pool: torch.Tensor, val_size: int, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(train rows, validation rows) of `pool`, a 1-d tensor of row indices in the data module's seeded order.

        `val_size` is the fixed split's validation size; `labels[row]` is a row's class (None: not stratified).
        """
        if self.folds is None:
            return pool[val_size:], pool[:val_size]
        check_fold_sizes(self.folds, len(pool))  # a ConfigError: data files of the user's own, known only now
        rows = pool.sort().values  # the folds do not depend on torch's permutation, only on numpy's
        numbers = torch.from_numpy(
            fold_numbers(len(rows), self.folds, self.seed, None if labels is None else labels[rows].numpy())
        )
        return rows[numbers != self.fold], rows[numbers == self.fold]
