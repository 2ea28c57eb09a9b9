"""What each member makes of the stacked batch: its own loss (its task's settings, `data.label_smoothing`) and its
own augmentation (its data module's `data.max_shift`, drawn from its own generator), each as its single run's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.models.tasks import Task


def _loss_settings(task: Task) -> str:
    """What decides a task's loss: its class and attributes (tasks equal in them compute the same loss)."""
    return f"{type(task).__module__}.{type(task).__qualname__}{sorted((k, repr(v)) for k, v in vars(task).items())}"


class MemberLosses:
    """Each member's own task's loss on its own slice: output `(N, batch, ...)`, target `(N, batch, ...)` -> `(N,)`.

    Members whose tasks are equal share one vmapped call: one for the whole stack when all are (the usual case);
    otherwise one a group, put back in member order.
    """

    def __init__(self, tasks: Sequence[Task]) -> None:
        groups: dict[str, list[int]] = {}
        for i, task in enumerate(tasks):
            groups.setdefault(_loss_settings(task), []).append(i)
        self.groups: list[tuple[Callable[..., torch.Tensor], list[int]]] = [
            (torch.vmap(tasks[members[0]].loss), members) for members in groups.values()
        ]
        order = [i for _, members in self.groups for i in members]
        # position of member i in the groups' concatenated losses
        self.member_order = torch.tensor(sorted(range(len(order)), key=order.__getitem__))
        self._indices: dict[torch.device, tuple[list[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(self.groups) == 1:
            return self.groups[0][0](output, target)
        members, order = self._on(output.device)
        losses = [
            loss(output.index_select(0, index), target.index_select(0, index))
            for (loss, _), index in zip(self.groups, members)
        ]
        return torch.cat(losses).index_select(0, order)

    def _on(self, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The groups' member indices and the member order as tensors on `device`, made once."""
        if device not in self._indices:
            self._indices[device] = (
                [torch.tensor(members, device=device) for _, members in self.groups],
                self.member_order.to(device),
            )
        return self._indices[device]


def augment_members(
    x: torch.Tensor, datamodules: Sequence[TensorDataModule], generators: Sequence[torch.Generator | None]
) -> torch.Tensor:
    """The stacked training inputs `(N, batch, ...)`, member i's slice augmented by its own data module (its own
    `max_shift`) from its own generator: its single run's draws when the generator is where its single run's is.
    Returns `x` itself when no member augments (nothing drawn, nothing copied)."""
    slices = x.unbind(0)
    augmented = [dm.augment(s, generator=g) for dm, s, g in zip(datamodules, slices, generators, strict=True)]
    if all(a is s for a, s in zip(augmented, slices)):
        return x
    return torch.stack(augmented)
