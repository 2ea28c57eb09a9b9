"""N MLPs of one depth as one batched network: weights `(N, out, in)`, one `baddbmm` per layer.

Members whose widths differ are padded to the widest member, layer by layer, and the padding is inert: it starts at
zero and nothing writes it (the optimizer steps each member's own slice, mlplab.sweeps.stacked.optimizer), padded
hidden units are exact zeros after the activation (sigmoid(0) is 0.5), so they add nothing to the next layer and no
gradient reaches the padded weights; a member's state_dict is its own narrow MLP's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mlplab.models.mlp import ACTIVATIONS, MLP


def _padded(tensor: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """`tensor` in the leading corner of a zero tensor of `shape` (its other values exact zeros)."""
    padding = []
    for have, want in zip(reversed(tensor.shape), reversed(shape)):
        padding += [0, want - have]
    return F.pad(tensor, padding)


class StackedMLP(nn.Module):
    """The members' MLPs side by side: input `(N, batch, ...)`, output `(N, batch, out)`; member i is slice i.

    Built from the members' own MLPs (each initialised as its single run would be), so member i starts with
    exactly its single run's weights; `member_state(i)` gives them back in the MLP's own state_dict layout.
    Only what the MLP does without per-sample statistics stacks: Linear, activation, input and hidden dropout, each
    member with its own probabilities (grouping refuses norms). Members need one depth, input and output size and
    activation; their hidden widths may differ (padded, see the module's docstring).
    """

    def __init__(self, networks: Sequence[MLP]) -> None:
        super().__init__()
        first = networks[0]
        for network in networks[1:]:
            sizes, expected = network.sizes, first.sizes
            if len(sizes) != len(expected) or (sizes[0], sizes[-1]) != (expected[0], expected[-1]):
                raise ValueError(
                    f"members differ: sizes {sizes} vs {first.sizes}: a stack takes one depth, input and output size"
                )
            if network.activation != first.activation:
                raise ValueError(f"members differ: activation {network.activation} vs {first.activation}")
        # each member's layer widths, input to output; the stacked weights hold the widest of each layer
        self.sizes = [list(n.sizes) for n in networks]
        self.widest = [max(widths) for widths in zip(*self.sizes)]
        self.padded = any(sizes != self.widest for sizes in self.sizes)
        # on the CPU a padded stack computes each member's layers on its own slices (see _narrow_forward); None:
        # there, padded batched matmuls elsewhere
        self.narrow_matmuls: bool | None = None
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
        layers = range(len(first.linears))
        # weights kept as nn.Linear keeps them, (out, in) per member: the same matmul layout as the single run
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([_padded(n.linears[k].weight.detach(), self._shape(k)) for n in networks]))
            for k in layers
        )
        self.biases = nn.ParameterList(
            nn.Parameter(
                torch.stack([_padded(n.linears[k].bias.detach(), [self.widest[k + 1]]) for n in networks]).unsqueeze(1)
            )
            for k in layers
        )
        # which hidden units are a member's own (True) or padding, per hidden layer: (N, 1, widest)
        for k in layers[:-1]:
            units = torch.arange(self.widest[k + 1])
            own = torch.stack([units < sizes[k + 1] for sizes in self.sizes]).unsqueeze(1)
            self.register_buffer(f"own_units_{k}", own, persistent=False)

    def _shape(self, k: int) -> tuple[int, int]:
        """Layer k's stacked weight shape per member: the widest member's `(out, in)`."""
        return self.widest[k + 1], self.widest[k]

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2)
        if self.training:
            h = self._dropout(h, self.input_dropouts, [sizes[0] for sizes in self.sizes])
        narrow = self.narrow_matmuls if self.narrow_matmuls is not None else h.device.type == "cpu"
        if self.padded and narrow:
            return self._narrow_forward(h)
        last = len(self.weights) - 1
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias, h, weight.transpose(1, 2))
            if k < last:
                h = self.activation(h)
                if self.padded:  # exact zeros, whatever the activation gives at 0; no gradient flows through them
                    h = torch.where(getattr(self, f"own_units_{k}"), h, 0.0)
                if self.training:
                    h = self._dropout(h, self.dropouts, [sizes[k + 1] for sizes in self.sizes])
        return h

    def _narrow_forward(self, h: torch.Tensor) -> torch.Tensor:
        """Each member's layers on its own slices of the stacked weights, with its single run's shapes and ops.

        BLAS sums a padded inner dimension in another order than the narrow one (MKL's blocking depends on it: a
        16-wide member padded to 32, or 300 padded to 512, differs in the last bit), so on the CPU, where a batched
        matmul is a loop over the members anyway, each member computes as its single run: bit for bit.
        """
        weights = [w.unbind(0) for w in self.weights]
        biases = [b.unbind(0) for b in self.biases]
        last = len(weights) - 1
        outputs = []
        for i, (hi, sizes) in enumerate(zip(h.unbind(0), self.sizes)):
            for k in range(last + 1):
                hi = F.linear(hi, weights[k][i][: sizes[k + 1], : sizes[k]], biases[k][i][0, : sizes[k + 1]])
                if k < last:
                    hi = self.activation(hi)
                    if self.training and self.dropouts[i] > 0:
                        hi = hi * self._mask(hi.shape, self.dropouts[i], i, hi)
            outputs.append(hi)
        return torch.stack(outputs)

    def _mask(self, shape: Sequence[int], p: float, i: int, like: torch.Tensor) -> torch.Tensor:
        """Member i's dropout mask of `shape`, drawn as nn.Dropout draws it on the CPU (a Bernoulli draw scaled by
        1 / (1 - p)) from the member's own generator: its single run's mask."""
        mask = torch.empty(shape, dtype=like.dtype, device=like.device)
        return mask.bernoulli_(1 - p, generator=self.generators[i]).div_(1 - p)

    def _dropout(self, h: torch.Tensor, probabilities: Sequence[float], widths: Sequence[int]) -> torch.Tensor:
        """Member i's slice dropped with its own probability, its mask drawn for its own width (`widths[i]`) from its
        own generator, as its single run draws it; padded units get 0."""
        if not any(probabilities):
            return h
        masks = []
        for i, (p, width) in enumerate(zip(probabilities, widths)):
            if p > 0:
                mask = _padded(self._mask((h.shape[1], width), p, i, h), h.shape[1:])
            else:
                mask = torch.ones_like(h[i])
            masks.append(mask)
        return h * torch.stack(masks)

    def member_regions(self) -> list[list[tuple]]:
        """Member i's own values in each stacked parameter, in `parameters()` order (its weights, then its biases):
        indices whose views have its MLP's shapes, `(out, in)` and `(out,)`, and leave the padding out."""
        regions = []
        for i, sizes in enumerate(self.sizes):
            weights = [(i, slice(0, sizes[k + 1]), slice(0, sizes[k])) for k in range(len(self.weights))]
            biases = [(i, 0, slice(0, sizes[k + 1])) for k in range(len(self.biases))]
            regions.append(weights + biases)
        return regions

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights as its MLP's state_dict (`layers.<k>.weight`, `layers.<k>.bias`), detached copies of its
        own widths (no padding)."""
        state = {}
        regions = self.member_regions()[i]
        layers = len(self.weights)
        for k, (name, weight, bias) in enumerate(zip(self.linear_names[i], self.weights, self.biases)):
            state[f"layers.{name}.weight"] = weight[regions[k]].detach().clone()
            state[f"layers.{name}.bias"] = bias[regions[layers + k]].detach().clone()
        return state
