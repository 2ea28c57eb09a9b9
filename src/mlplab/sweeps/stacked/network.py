"""N MLPs of the same shape as one batched network: weights `(N, out, in)`, one `baddbmm` per layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mlplab.models.mlp import ACTIVATIONS, MLP


class StackedMLP(nn.Module):
    """The members' MLPs side by side: input `(N, batch, ...)`, output `(N, batch, out)`; member i is slice i.

    Built from the members' own MLPs (each initialised as its single run would be), so member i starts with
    exactly its single run's weights; `member_state(i)` gives them back in the MLP's own state_dict layout.
    Only what the MLP does without per-sample statistics stacks: Linear, activation, input and hidden dropout, each
    member with its own probabilities (grouping refuses norms).
    """

    def __init__(self, networks: Sequence[MLP]) -> None:
        super().__init__()
        first = networks[0]
        for network in networks[1:]:
            if network.sizes != first.sizes or network.activation != first.activation:
                raise ValueError(f"members differ: sizes {network.sizes} vs {first.sizes}")
        # each member's Sequential indices of its Linear layers (a Dropout layer shifts them): member_state names
        # them as the member's own MLP does
        self.linear_names = [
            [name for name, m in n.layers.named_children() if isinstance(m, nn.Linear)] for n in networks
        ]
        # each member's own dropout probabilities (0: its MLP has no Dropout layer, and draws nothing)
        self.input_dropouts = [float(n.input_dropout) for n in networks]
        self.dropouts = [float(n.dropout) for n in networks]
        # each member's random draws: its own generator, set by the stacked fit to the member's single run's state
        self.generators: list[torch.Generator | None] = [None] * len(networks)
        self.activation = ACTIVATIONS[first.activation]()
        # weights kept as nn.Linear keeps them, (out, in) per member: the same matmul layout as the single run
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([n.linears[k].weight.detach() for n in networks]).clone())
            for k in range(len(first.linears))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([n.linears[k].bias.detach() for n in networks]).unsqueeze(1).clone())
            for k in range(len(first.linears))
        )

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2)
        if self.training:
            h = self._dropout(h, self.input_dropouts)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias, h, weight.transpose(1, 2))
            if i < last:
                h = self.activation(h)
                if self.training:
                    h = self._dropout(h, self.dropouts)
        return h

    def _dropout(self, h: torch.Tensor, probabilities: Sequence[float]) -> torch.Tensor:
        """Member i's slice dropped with its own probability, its mask drawn as nn.Dropout draws it on the CPU (a
        Bernoulli draw of the slice's shape, scaled by 1 / (1 - p)) from its own generator: its single run's mask."""
        if not any(probabilities):
            return h
        masks = []
        for i, p in enumerate(probabilities):
            if p > 0:
                mask = torch.empty_like(h[i]).bernoulli_(1 - p, generator=self.generators[i]).div_(1 - p)
            else:
                mask = torch.ones_like(h[i])
            masks.append(mask)
        return h * torch.stack(masks)

    def member_shapes(self) -> list[torch.Size]:
        """A member's own shape of each stacked parameter, in `parameters()` order (its weights, then its biases)."""
        return [w.shape[1:] for w in self.weights] + [b.shape[2:] for b in self.biases]

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights as its MLP's state_dict (`layers.<k>.weight`, `layers.<k>.bias`), detached copies."""
        state = {}
        for name, weight, bias in zip(self.linear_names[i], self.weights, self.biases):
            state[f"layers.{name}.weight"] = weight[i].detach().clone()
            state[f"layers.{name}.bias"] = bias[i, 0].detach().clone()
        return state
