"""Mini-batches sliced from tensors that already live on the training device.

This replaces Dataset + DataLoader for data that fits in memory: no per-sample Python, no collation,
no host-to-device copy per step. Lightning accepts any sized iterable as a dataloader.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class EpochOrder:
    """The sample order of each epoch: seeded, so every rank (and a resumed run) sees the same one.

    Lightning calls `set_epoch` on a dataloader's `sampler` at the start of every epoch.
    """

    def __init__(self, num_samples: int, shuffle: bool, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, device: torch.device) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples, device=device)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).to(device)


class TensorBatches:
    """Iterates `(x[i], y[i])` for index batches `i` over tensors on one device.

    With `world_size > 1` each rank takes its own shard: for training, an equal share (the few
    samples that don't divide evenly are left out of that epoch, as DistributedSampler does); for
    evaluation, every sample exactly once, in the same number of batches on every rank.

    It is stateful in Lightning's sense: a checkpoint saved mid-epoch records how many batches of that
    epoch were served, and a run resumed from it serves the rest of the same epoch's order.
    """

    batch_sampler = None  # Lightning inspects DataLoader-like attributes; batching happens here instead

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochOrder(len(x), shuffle, seed)
        self._served = 0  # batches of the current pass handed out so far
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches to skip) from a checkpoint

    @property
    def training(self) -> bool:
        return self.sampler.shuffle

    def _shard(self) -> list[torch.Tensor]:
        order = self.sampler.indices(self.x.device)
        if self.training:
            per_rank = len(order) // self.world_size
            mine = order[self.rank :: self.world_size][:per_rank]
            return list(torch.split(mine, self.batch_size))
        # evaluation: split into a multiple of world_size near-equal batches, deal them out round-robin
        num_batches = self.world_size * -(-len(order) // (self.world_size * self.batch_size))
        return list(torch.tensor_split(order, num_batches))[self.rank :: self.world_size]

    def __len__(self) -> int:
        n = len(self.x)
        if self.training:
            return -(-(n // self.world_size) // self.batch_size)
        return -(-n // (self.world_size * self.batch_size))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self._shard()
        skip = 0
        if self._resume_at is not None and self._resume_at[0] == self.sampler.epoch:
            skip = self._resume_at[1]
        self._resume_at = None
        self._served = skip
        for index in batches[skip:]:
            self._served += 1  # counted before the yield: a checkpoint taken while this batch trains includes it
            # index_select: several times faster than x[index] (advanced indexing) for a batch of rows
            yield self.x.index_select(0, index), self.y.index_select(0, index)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (state["epoch"], state["served"])
