"""A stack computes only its members still training (issue 26): from the epoch after a member froze (finished its own
epochs, stopped early, pruned, diverged) the stacked network is rebuilt without it, and each remaining member goes on
with its weights, generator and optimizer state exactly as they were: its jobs still equal the basic launcher's."""

from __future__ import annotations

import lightning as L
import torch

from mlplab.models.mlp import MLP
from mlplab.models.tasks import ClassificationTask
from mlplab.run.record import read_run_record
from mlplab.sweeps.stacked.network import StackedMLP
from mlplab.sweeps.stacked.optimizer import StackedOptimizer
from mlplab.sweeps.stacked.training import StackTrainer
from tests.helpers.housing_sweeps import Job, assert_same_jobs, housing_data, sweep
from tests.helpers.runs import job_folders, run_main_in_process

# members 0 and 1 train 1 epoch, members 2 and 3 train 3; dropout: each remaining member's own draws go on
OVERRIDES = ["trainer.max_epochs=1,3", "seed=1,2", "model.dropout=0.2"]


def test_members_that_finished_their_epochs_are_no_longer_computed(tmp_path, monkeypatch):
    data = housing_data(tmp_path)
    epochs: list[list[tuple[bool, int]]] = []  # per stacked epoch: (training, members) of each forward
    forward, train_epoch = StackedMLP.forward, StackTrainer._train_epoch

    def counting_forward(self: StackedMLP, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] == self.members  # one input slice a member: the batch dimension of its matmuls
        epochs[-1].append((self.training, x.shape[0]))
        return forward(self, x)

    def counted_epoch(self: StackTrainer) -> None:
        epochs.append([])
        train_epoch(self)

    monkeypatch.setattr(StackedMLP, "forward", counting_forward)
    monkeypatch.setattr(StackTrainer, "_train_epoch", counted_epoch)
    folder = tmp_path / "stacked"
    run_main_in_process(monkeypatch, "-m", *data, *OVERRIDES, "hydra/launcher=stacked", f"hydra.sweep.dir={folder}")
    monkeypatch.undo()  # the basic launcher's single runs count nothing
    stacked = [
        Job(job, read_run_record(job), sorted(p.name for p in (job / "checkpoints").glob("*.ckpt")))
        for job in job_folders(folder)
    ]
    basic, output = sweep(data, tmp_path / "basic", "basic", *OVERRIDES)

    assert [sorted(set(forwards)) for forwards in epochs] == [
        [(False, 4), (True, 4)],  # all four train (and are validated) in the first epoch
        [(False, 2), (True, 2)],  # then only the two 3-epoch members: training steps and validation
        [(False, 2), (True, 2)],
    ]
    assert [job.record["epochs"] for job in stacked] == [1, 1, 3, 3]
    assert_same_jobs(stacked, basic, output)


def _networks() -> list[MLP]:
    built = []
    for seed, hidden in enumerate([(16, 12), (32, 24), (24, 12)], start=1):  # member 1 is the widest: padding shrinks
        L.seed_everything(seed, verbose=False)
        built.append(MLP(20, 3, hidden=hidden))
    return built


def _batches(members: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(members, 16, 20, generator=generator), torch.randint(0, 3, (members, 16), generator=generator))
        for _ in range(3)
    ]


def _step(network: StackedMLP, optimizer: StackedOptimizer, x, y, frozen: list[bool]) -> None:
    optimizer.zero_grad()
    torch.vmap(ClassificationTask(3).loss)(network(x), y).sum().backward()
    optimizer.step([{"lr": 1e-2}] * network.members, frozen)


def test_a_rebuilt_stack_steps_each_remaining_member_as_the_full_stack_would():
    full = StackedMLP(_networks())
    full_optimizer = StackedOptimizer(full.parameters(), torch.optim.Adam, regions=full.member_regions())
    for x, y in _batches(3, seed=1):
        _step(full, full_optimizer, x, y, [False] * 3)

    # member 1 froze: its MLP keeps its final weights, members 0 and 2 go on in a stack of their own
    networks = _networks()
    for i, network in enumerate(networks):
        network.load_state_dict(full.member_state(i))
    rebuilt = StackedMLP([networks[0], networks[2]])
    optimizer = StackedOptimizer(rebuilt.parameters(), torch.optim.Adam, regions=rebuilt.member_regions())
    optimizer.take_state(full_optimizer, [0, 2])
    assert rebuilt.widest == [20, 24, 12, 3]  # the widest member's padding went with it

    # the same inputs for members 0 and 2 in both; the full stack computes its frozen member 1 but does not step it
    for x, y in _batches(3, seed=2):
        _step(full, full_optimizer, x, y, [False, True, False])
        _step(rebuilt, optimizer, x[[0, 2]], y[[0, 2]], [False, False])

    order = [0, 3, 1, 4, 2, 5]  # each layer's weight and bias in the stacked parameters (3 weights, then 3 biases)
    for slot, i in enumerate([0, 2]):
        for name, value in full.member_state(i).items():
            assert torch.equal(rebuilt.member_state(slot)[name], value), (i, name)
        state, expected = optimizer.member_state(slot, order), full_optimizer.member_state(i, order)
        assert state.keys() == expected.keys() and len(state) == 6  # Adam's moments for each
        for k in state:
            for name, value in expected[k].items():
                assert torch.equal(torch.as_tensor(state[k][name]), torch.as_tensor(value)), (i, k, name)
