"""`model.hidden` widths of one depth stack (issue 26 part 3): each layer padded to the widest member, the padding inert.

A padded member computes, steps and saves as its single run: its outputs equal its single MLP's bit for bit after
training steps on the CPU, its padding stays exact zeros and outside its optimizer state, and its weights come back
with its own narrow shapes.
"""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch

from mlplab.models.mlp import MLP
from mlplab.models.tasks import ClassificationTask
from mlplab.sweeps.stacked.grouping import differing_keys, group_jobs
from mlplab.sweeps.stacked.network import StackedMLP
from mlplab.sweeps.stacked.optimizer import StackedOptimizer

TASK = ClassificationTask(3)
INPUTS, BATCH, STEPS = 20, 16, 4
# the widths of one depth: the narrow member is padded in both hidden layers, in and out
WIDTHS = [(16, 12), (32, 24), (24, 12)]
OPTIMIZERS = {
    "adamw decay": partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.5),
    "adam l2": partial(torch.optim.Adam, lr=1e-2, weight_decay=0.1),
    "sgd momentum": partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=0.1),
    "sgd nesterov": partial(torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True),
}


def networks(activation: str, dropout: float = 0.0) -> list[MLP]:
    built = []
    for seed, hidden in enumerate(WIDTHS, start=1):
        L.seed_everything(seed, verbose=False)
        built.append(MLP(INPUTS, TASK.output_size, hidden=hidden, activation=activation, dropout=dropout))
    return built


def batches(steps: int = STEPS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(BATCH, INPUTS, generator=generator), torch.randint(0, 3, (BATCH,), generator=generator))
        for _ in range(steps)
    ]


def train_stack(stacked: StackedMLP, factory, data) -> StackedOptimizer:
    """`data`'s batches, the same for every member, as the stacked fit steps them (mlplab.sweeps.stacked.training)."""
    optimizer = StackedOptimizer(stacked.parameters(), factory, regions=stacked.member_regions())
    settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.optimizer.param_groups]
    loss = torch.vmap(TASK.loss)
    stacked.train()
    for x, y in data:
        n = stacked.members
        losses = loss(stacked(x.expand(n, *x.shape)), y.expand(n, *y.shape))
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step(settings)
    return optimizer


def train_alone(network: MLP, factory, data) -> torch.optim.Optimizer:
    """The single run's steps: its own optimizer on its own parameters."""
    optimizer = factory(network.parameters())
    network.train()
    for x, y in data:
        optimizer.zero_grad()
        TASK.loss(network(x), y).backward()
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_padded_member_computes_as_its_single_run_bit_for_bit_after_training_steps(name, activation):
    factory, data = OPTIMIZERS[name], batches()
    stacked = StackedMLP(networks(activation))
    assert stacked.padded
    train_stack(stacked, factory, data)
    x = torch.randn(7, INPUTS)
    out = stacked.eval()(x.expand(3, *x.shape))
    for i, network in enumerate(networks(activation)):
        train_alone(network, factory, data)
        single = network.eval()(x)
        assert torch.equal(out[i], single), (i, (out[i] - single).abs().max())
        state = stacked.member_state(i)
        assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in network.state_dict().items()}
        for key, value in network.state_dict().items():
            assert torch.equal(state[key], value), (i, key)


def test_a_padded_member_with_dropout_draws_its_single_runs_masks():
    factory, data = OPTIMIZERS["adamw decay"], batches()
    stacked = StackedMLP(networks("gelu", dropout=0.3))
    starts = [torch.Generator().manual_seed(100 + i).get_state() for i in range(3)]
    stacked.generators = [torch.Generator().set_state(state) for state in starts]
    train_stack(stacked, factory, data)
    for i, network in enumerate(networks("gelu", dropout=0.3)):
        torch.set_rng_state(starts[i])  # the single run draws from torch's generator, where the member's starts
        train_alone(network, factory, data)
        for key, value in network.state_dict().items():
            assert torch.equal(stacked.member_state(i)[key], value), (i, key)


def padding(stacked: StackedMLP, i: int) -> list[torch.Tensor]:
    """Member i's padded values in every stacked parameter."""
    values = []
    for param, region in zip(stacked.parameters(), stacked.member_regions()[i]):
        outside = torch.ones_like(param, dtype=torch.bool)
        outside[region] = False
        values.append(param.detach()[i][outside[i]])
    return values


@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("batched", [False, True], ids=["narrow matmuls", "padded matmuls"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_padding_stays_zero_gets_no_gradient_and_no_optimizer_state(name, batched, dropout):
    stacked = StackedMLP(networks("sigmoid", dropout))  # sigmoid(0) = 0.5: padded units are not zero by themselves
    stacked.narrow_matmuls = not batched  # the GPU's way (padded batched matmuls) too, here on the CPU
    optimizer = train_stack(stacked, OPTIMIZERS[name], batches())
    narrow = 0
    assert sum(p.numel() for p in padding(stacked, narrow)) > 0
    assert all(torch.equal(p, torch.zeros_like(p)) for p in padding(stacked, narrow))
    for param, region in zip(stacked.parameters(), stacked.member_regions()[narrow]):
        grad = param.grad[narrow].clone()
        grad[region[1:]] = 0
        assert torch.equal(grad, torch.zeros_like(grad))  # no gradient reached its padding
    # its optimizer state: its own narrow shapes, and nothing for the padding
    shapes = [tuple(p.shape) for p in networks("sigmoid")[narrow].parameters()]
    states = stacked_state_shapes(optimizer, narrow)
    assert states and all(sorted(shapes) == sorted(s) for s in states.values()), states


def stacked_state_shapes(optimizer: StackedOptimizer, i: int) -> dict[str, list[tuple[int, ...]]]:
    """Each optimizer state tensor (exp_avg, momentum_buffer, ...) of member i, by name: the shapes it has."""
    shapes: dict[str, list[tuple[int, ...]]] = {}
    for view in optimizer.views[i]:
        for name, value in optimizer.optimizer.state[view].items():
            if torch.is_tensor(value) and value.dim() > 0:
                shapes.setdefault(name, []).append(tuple(value.shape))
    return shapes


def test_padded_matmuls_give_each_member_its_own_outputs():
    """The batched way (a GPU's) computes the same function: to float tolerance, the padding adding exact zeros."""
    stacked = StackedMLP(networks("sigmoid")).eval()
    x = torch.randn(3, 9, INPUTS)
    narrow = stacked(x)
    stacked.narrow_matmuls = False
    torch.testing.assert_close(stacked(x), narrow, rtol=1e-6, atol=1e-6)
    for i, network in enumerate(networks("sigmoid")):
        torch.testing.assert_close(narrow[i], network.eval()(x[i]), rtol=0, atol=0)


def test_members_of_other_depths_are_refused():
    with pytest.raises(ValueError, match="one depth"):
        StackedMLP([MLP(784, 10, hidden=(32,)), MLP(784, 10, hidden=(32, 16))])


# ---- grouping: widths of one depth share a stack, other depths stack apart, a search's widths through `search.*`


def test_widths_of_one_depth_share_a_stack_and_other_depths_stack_apart_saying_why(compose_config):
    hidden = ["[16]", "[32]", "[16,8]", "[64,32]", "[8]"]
    cfgs = [compose_config(f"model.hidden={h}") for h in hidden]
    stacks = group_jobs(cfgs, max_members=16)
    assert [s.jobs for s in stacks] == [[0, 1, 4], [2, 3]]
    assert differing_keys([cfgs[i] for i in stacks[0].jobs]) == ["model.hidden"]
    assert "model.hidden has 1 hidden layers here, 2 in other jobs" in stacks[0].apart
    assert "model.hidden has 2 hidden layers here, 1 in other jobs" in stacks[1].apart
    lone = group_jobs([*cfgs[:2], compose_config("model.hidden=[16,8]")], max_members=16)
    assert [s.jobs for s in lone] == [[0, 1], [2]]
    assert "a stack holds networks of one depth" in lone[1].alone  # the log line says why it runs alone


def test_a_searchs_widths_stack_through_search_values_that_only_feed_model_hidden(compose_config):
    """conf/hparams_search/mnist_optuna.yaml: `model.hidden: ["${search.hidden1}", "${search.hidden2}"]`."""
    widths = [(64, 32), (128, 32), (256, 64)]
    cfgs = [
        compose_config("hparams_search=mnist_optuna", f"search.hidden1={a}", f"search.hidden2={b}", "optimizer=adam")
        for a, b in widths
    ]
    assert [list(cfg.model.hidden) for cfg in cfgs] == [list(w) for w in widths]
    assert [s.jobs for s in group_jobs(cfgs, max_members=16)] == [[0, 1, 2]]
    assert differing_keys(cfgs) == ["model.hidden"]


def test_a_search_value_that_feeds_anything_else_keeps_jobs_apart(compose_config):
    # search.hidden1 also sets the batch size here: jobs with other values differ in more than their widths
    cfgs = [
        compose_config(
            "hparams_search=mnist_optuna", f"search.hidden1={a}", "data.batch_size=${search.hidden1}", "optimizer=adam"
        )
        for a in (64, 128)
    ]
    assert [s.jobs for s in group_jobs(cfgs, max_members=16)] == [[0], [1]]
