"""The network: a configurable stack of fully connected layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}
NORMS: dict[str | None, type[nn.Module] | None] = {
    None: None,
    "none": None,
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
}


def _kaiming(weight: torch.Tensor, nonlinearity: str, std: float) -> None:
    nn.init.kaiming_normal_(weight, nonlinearity=nonlinearity)


def _xavier(weight: torch.Tensor, nonlinearity: str, std: float) -> None:
    nn.init.xavier_uniform_(weight, gain=nn.init.calculate_gain(nonlinearity))


def _trunc_normal(weight: torch.Tensor, nonlinearity: str, std: float) -> None:
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


INITS = {"kaiming": _kaiming, "xavier": _xavier, "trunc_normal": _trunc_normal}


def count_parameters(network: nn.Module) -> int:
    """How many numbers the network learns (the `model/params` a run logs)."""
    return sum(p.numel() for p in network.parameters())


class MLP(nn.Module):
    """Flatten the input, [input dropout], then `hidden` blocks of Linear -> [norm] -> activation -> [dropout], then Linear.

    An empty `hidden` gives a linear model (logistic or linear regression). Values are checked where the config
    is (mlplab.config.rules), before anything is built.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden: Sequence[int] = (300, 300),
        activation: str = "relu",
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        norm: str | None = None,
        init: str = "kaiming",
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.dropout, self.input_dropout = dropout, input_dropout
        self.init = init
        self.init_std = init_std

        layers: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:
            # drops input features (pixels) as Srivastava et al. (2014) do for MNIST: 0.2 with 0.5 in the hidden layers
            layers.append(nn.Dropout(input_dropout))
        width = input_size
        for h in hidden:
            layers.append(nn.Linear(width, h))
            norm_cls = NORMS[norm]
            if norm_cls is not None:
                layers.append(norm_cls(h))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, output_size))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    @property
    def sizes(self) -> list[int]:
        """Layer widths from input to output, e.g. [784, 300, 300, 10]."""
        return [self.linears[0].in_features] + [layer.out_features for layer in self.linears]

    def reset_parameters(self) -> None:
        # torch has no gain for GELU: ReLU's is the usual stand-in
        hidden_gain = "relu" if self.activation == "gelu" else self.activation
        linears = self.linears
        for i, layer in enumerate(linears):
            # the output layer feeds the loss, not an activation: unit gain
            nonlinearity = "linear" if i == len(linears) - 1 else hidden_gain
            INITS[self.init](layer.weight, nonlinearity, self.init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"sizes={'-'.join(map(str, self.sizes))}, params={count_parameters(self):,}, init={self.init}"
