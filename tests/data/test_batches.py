import torch

from mlplab.data.batches import TensorBatches


def _data(n):
    return torch.arange(n).float().unsqueeze(1), torch.arange(n)


def test_training_batches_cover_every_sample_once_per_epoch_in_a_seeded_order():
    x, y = _data(100)
    batches = TensorBatches(x, y, batch_size=32, shuffle=True, seed=3)
    first = torch.cat([b for _, b in batches])
    assert len(batches) == 4 and [len(b) for _, b in batches] == [32, 32, 32, 4]
    assert sorted(first.tolist()) == list(range(100))
    assert torch.equal(first, torch.cat([b for _, b in TensorBatches(x, y, 32, shuffle=True, seed=3)]))
    batches.sampler.set_epoch(1)
    second = torch.cat([b for _, b in batches])
    assert not torch.equal(first, second)  # a new order each epoch
    for xb, yb in batches:
        assert torch.equal(xb.squeeze(1).long(), yb)  # inputs stay paired with their targets


def test_evaluation_batches_are_in_order_and_complete():
    x, y = _data(10)
    batches = TensorBatches(x, y, batch_size=4)
    assert torch.equal(torch.cat([b for _, b in batches]), y)
    assert len(batches) == len(list(batches)) == 3


def test_distributed_training_shards_are_disjoint_and_equal_in_size():
    x, y = _data(103)
    shards = [torch.cat([b for _, b in TensorBatches(x, y, 10, shuffle=True, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 51
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_distributed_evaluation_sees_every_sample_exactly_once_in_equal_step_counts():
    x, y = _data(103)
    per_rank = [list(TensorBatches(x, y, 10, rank=r, world_size=2)) for r in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == len(TensorBatches(x, y, 10, rank=0, world_size=2))
    seen = torch.cat([b for rank in per_rank for _, b in rank])
    assert sorted(seen.tolist()) == list(range(103))
