"""The batched network is its members side by side: same outputs, same weights back, gradients kept apart."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from mlplab.models.mlp import MLP
from mlplab.sweeps.stacked.network import StackedMLP


def members(seeds, **kwargs):
    networks = []
    for seed in seeds:
        L.seed_everything(seed, verbose=False)
        networks.append(MLP(784, 10, hidden=(32, 16), **kwargs))
    return networks


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_each_slice_is_its_member(activation):
    networks = members([1, 2, 3], activation=activation)
    stacked = StackedMLP(networks)
    x = torch.randn(3, 8, 1, 28, 28)
    out = stacked(x)
    assert out.shape == (3, 8, 10)
    for i, network in enumerate(networks):
        torch.testing.assert_close(out[i], network(x[i]), rtol=1e-5, atol=1e-6)
        state = stacked.member_state(i)
        assert state.keys() == network.state_dict().keys()
        for name, value in network.state_dict().items():
            assert torch.equal(state[name], value)  # the member's initial weights, exactly


def test_one_members_nan_stays_in_its_own_gradients():
    networks = members([1, 2])
    stacked = StackedMLP(networks)
    x = torch.randn(2, 4, 784)
    x[1, 0, 0] = float("nan")
    stacked(x).sum().backward()
    assert all(torch.isfinite(p.grad[0]).all() for p in stacked.parameters())
    assert not all(torch.isfinite(p.grad[1]).all() for p in stacked.parameters())


def test_members_of_different_shapes_are_refused():
    # widths of one depth stack (tests/sweeps/stacked/test_widths.py); depths, inputs and outputs must agree
    with pytest.raises(ValueError, match="members differ"):
        StackedMLP([MLP(784, 10, hidden=(32,)), MLP(784, 10, hidden=(32, 16))])
    with pytest.raises(ValueError, match="members differ"):
        StackedMLP([MLP(784, 10, hidden=(32,)), MLP(784, 2, hidden=(32,))])


def test_input_and_hidden_dropout_stack_and_are_off_in_eval():
    networks = members([1, 2], input_dropout=0.2, dropout=0.4)
    stacked = StackedMLP(networks)
    assert (stacked.input_dropouts, stacked.dropouts) == ([0.2, 0.2], [0.4, 0.4])
    x = torch.randn(2, 8, 784)
    stacked.eval()
    for i, network in enumerate(networks):
        torch.testing.assert_close(stacked(x)[i], network.eval()(x[i]), rtol=1e-5, atol=1e-6)
    stacked.train()
    assert not torch.equal(stacked(x), stacked(x))  # dropout draws anew in training
    only_input = StackedMLP(members([1], input_dropout=0.3))
    assert (only_input.input_dropouts, only_input.dropouts) == ([0.3], [0.0])


def test_each_member_drops_with_its_own_probability_the_units_its_single_run_drops():
    networks = members([1, 2, 3], input_dropout=0.1, dropout=0.3)
    networks[1] = members([2], dropout=0.5)[0]  # no input dropout, another hidden rate: its layer names differ
    stacked = StackedMLP(networks)
    assert stacked.member_state(1).keys() == networks[1].state_dict().keys()
    x = torch.randn(3, 8, 784)
    states = [torch.Generator().manual_seed(10 + i).get_state() for i in range(3)]
    stacked.generators = [torch.Generator().set_state(state) for state in states]
    out = stacked.train()(x)
    for i, network in enumerate(networks):
        torch.set_rng_state(states[i])  # the single run draws from torch's generator, here where the member's starts
        torch.testing.assert_close(out[i], network.train()(x[i]), rtol=1e-5, atol=1e-6)
