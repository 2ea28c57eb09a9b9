"""The base of every mlplab data module: splits held as tensors, served as TensorBatches on the device."""

from __future__ import annotations

import lightning as L
import torch

from mlplab.data.batches import TensorBatches
from mlplab.data.splits import PoolSplit
from mlplab.models.tasks import Task

Split = tuple[torch.Tensor, torch.Tensor]


class TensorDataModule(L.LightningDataModule):
    """Subclasses fetch files in `prepare_data`, build the three splits in `load_splits`, and say
    what the task is; this class moves each split to the training device once and batches it there.
    Subclasses divide their training pool into train and val with `pool_split` (the fixed split or a fold).
    """

    pool_split = PoolSplit()

    def __init__(self, batch_size: int = 64, eval_batch_size: int = 1024, seed: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.splits: dict[str, Split] = {}
        self._on_device: dict[tuple[str, str], Split] = {}

    # what subclasses provide
    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def task(self) -> Task:
        raise NotImplementedError

    def load_splits(self) -> dict[str, Split]:
        """Return {"train": (x, y), "val": ..., "test": ...} as CPU tensors."""
        raise NotImplementedError

    def prepare_inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Map raw inputs (images as uint8, feature rows as read) to the network's inputs, exactly as the
        training data is prepared; predict.py feeds new inputs through it."""
        raise NotImplementedError

    def to_device(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Turn stored features into the network's input on `device` (images: uint8 -> normalised float)."""
        return x.to(device)

    def augment(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A training batch's inputs as the network sees them, drawn afresh each step (none by default) from
        `generator`, or torch's default one on x's device (a single run's); the stacked fit passes each member's own.
        Returns `x` itself when there is nothing to do."""
        return x

    # the Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    def share_data_of(self, other: TensorDataModule) -> None:
        """Use `other`'s loaded splits (a data module of the same data config) instead of reading them again,
        with what `other` fitted on its training split (feature statistics: its state)."""
        other.setup()
        self.splits, self._on_device = other.splits, other._on_device
        self.load_state_dict(other.state_dict())

    def on_after_batch_transfer(self, batch: Split, dataloader_idx: int) -> Split:
        if self.trainer is not None and self.trainer.training:  # evaluation sees the data as it is
            x, y = batch
            return self.augment(x), y
        return batch

    def train_dataloader(self) -> TensorBatches:
        # overfitting means the same few batches every epoch: no shuffling then
        overfitting = bool(self.trainer and self.trainer.overfit_batches)
        return self._batches("train", self.batch_size, shuffle=not overfitting)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

    def split_on_device(self, split: str, device: torch.device | str = "cpu") -> Split:
        """A split's (inputs, targets) on `device`, converted once and kept."""
        device = torch.device(device)
        key = (split, str(device))
        if key not in self._on_device:
            self.setup()
            x, y = self.splits[split]
            self._on_device[key] = (self.to_device(x, device), y.to(device))
        return self._on_device[key]

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> TensorBatches:
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer else torch.device("cpu")
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        x, y = self.split_on_device(split, device)
        return TensorBatches(x, y, batch_size, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world_size)
