import pytest
import torch
from torch import nn

from mlplab.models.mlp import ACTIVATIONS, MLP, count_parameters


def test_default_mnist_mlp_has_328810_parameters():
    model = MLP(784, 10, hidden=[300, 300])
    assert count_parameters(model) == 328_810
    assert model.sizes == [784, 300, 300, 10]


def test_empty_hidden_is_a_linear_model():
    model = MLP(784, 10, hidden=[])
    assert [type(m) for m in model.layers] == [nn.Flatten, nn.Linear]
    assert count_parameters(model) == 784 * 10 + 10


def test_images_are_flattened_and_outputs_have_the_class_dimension():
    model = MLP(784, 10, hidden=[32])
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    assert model(torch.rand(5, 784)).shape == (5, 10)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds_and_runs(activation):
    model = MLP(8, 1, hidden=[16, 16], activation=activation)
    assert isinstance(model.layers[2], ACTIVATIONS[activation])
    assert torch.isfinite(model(torch.randn(4, 8))).all()


@pytest.mark.parametrize("norm, layer", [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_layers_follow_each_hidden_linear(norm, layer):
    model = MLP(8, 2, hidden=[16, 16], norm=norm, dropout=0.1)
    kinds = [type(m) for m in model.layers]
    assert kinds.count(layer) == 2 and kinds.count(nn.Dropout) == 2
    assert kinds.index(layer) == kinds.index(nn.Linear) + 1


def test_inits_give_the_intended_weight_statistics():
    torch.manual_seed(0)
    kaiming = MLP(1000, 10, hidden=[1000], init="kaiming").linears[0].weight
    assert kaiming.std().item() == pytest.approx((2 / 1000) ** 0.5, rel=0.05)
    trunc = MLP(1000, 10, hidden=[1000], init="trunc_normal", init_std=0.01).linears[0].weight
    assert trunc.abs().max().item() <= 0.02 + 1e-6
    xavier = MLP(1000, 10, hidden=[1000], init="xavier", activation="tanh").linears[0].weight
    bound = (5 / 3) * (6 / 2000) ** 0.5
    assert xavier.abs().max().item() <= bound + 1e-6
    assert all((layer.bias == 0).all() for layer in MLP(10, 2, hidden=[5]).linears)


def test_input_dropout_drops_input_features_in_training_only():
    model = MLP(100, 1, hidden=[8], input_dropout=0.5)
    assert [type(m) for m in model.layers][:3] == [nn.Flatten, nn.Dropout, nn.Linear]
    dropout = model.layers[1]
    x = torch.ones(20, 100)
    model.train()
    dropped = dropout(x)
    assert 0.3 < (dropped == 0).float().mean().item() < 0.7  # about half the inputs zeroed...
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # ...and the rest scaled by 1 / (1 - p)
    model.eval()
    assert torch.equal(dropout(x), x)
    assert nn.Dropout not in [type(m) for m in MLP(100, 1, hidden=[8]).layers]
