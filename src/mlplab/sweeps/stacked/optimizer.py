"""Each member's own optimizer settings and schedule on stacked parameters, exactly as PyTorch's optimizer gives them.

The configured PyTorch optimizer holds one parameter group per member, whose parameters are views of the member's
slices of the stacked parameters (sharing their storage): PyTorch's own step updates each member with its own
hyperparameters (lr, weight_decay, momentum, nesterov, betas, ...) and keeps its state (moments, momentum buffers,
step counts) as the member's single run keeps it. Each member's current settings come from a shadow optimizer (one
dummy parameter, the member's own optimizer config) with the member's own scheduler attached, stepped when
Lightning would step the real one: any scheduler works, ReduceLROnPlateau with the member's own monitored metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class MemberSchedule:
    """One member's optimizer settings over time: a shadow optimizer with the member's optimizer config and scheduler."""

    def __init__(self, factory: OptimizerFactory, make_scheduler: Callable[[torch.optim.Optimizer], Any] | None):
        self.shadow = factory([nn.Parameter(torch.zeros(1))])
        # Lightning's lr_scheduler dict (scheduler, interval, frequency, monitor) or None for a constant lr
        self.config: dict[str, Any] | None = make_scheduler(self.shadow) if make_scheduler else None
        # a step without gradients changes nothing; it tells the scheduler the optimizer steps (no ordering warning)
        self.shadow.step()

    @property
    def on_plateau(self) -> bool:
        """Whether its scheduler is a ReduceLROnPlateau (Lightning steps those after the epoch's checkpoints)."""
        return self.config is not None and isinstance(
            self.config["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau
        )

    @property
    def lr(self) -> float:
        return float(self.shadow.param_groups[0]["lr"])

    def settings(self) -> dict[str, Any]:
        """The member's param group now, without its parameters: its own lr, weight_decay, momentum, betas, ...,
        as its scheduler has set them (OneCycleLR cycles momentum or Adam's beta1 too)."""
        return {key: value for key, value in self.shadow.param_groups[0].items() if key != "params"}

    def step(self, interval: str, step_count: int, metrics: Mapping[str, float] | None = None) -> None:
        """Step the scheduler as Lightning would at the end of a step (`interval="step"`) or an epoch; `step_count`
        counts, as Lightning does for the scheduler's `frequency`, the epoch's steps so far (1 after its first) or the
        epochs so far."""
        if self.config is None or self.config.get("interval", "epoch") != interval:
            return
        if step_count % int(self.config.get("frequency", 1)):
            return
        scheduler = self.config["scheduler"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = self.config.get("monitor")
            if metrics is None or monitor not in metrics:
                raise KeyError(f"ReduceLROnPlateau monitors {monitor!r}, which this epoch did not log")
            scheduler.step(metrics[monitor])
        else:
            scheduler.step()


class StackedOptimizer:
    """Steps stacked parameters (first dimension: the member) with `factory`'s optimizer, each member as one param
    group of its own. `regions[i][k]`: the index of member i's own values in stacked parameter k (default `(i,)`, its
    slice; a padded member's narrow corner, StackedMLP.member_regions), so that its optimizer sees, steps and keeps
    state for its own values only. `shapes[k]`: a member's own shape of stacked parameter k, where its region's view
    needs reshaping (a bias kept as `(N, 1, out)` is `(out,)` in the MLP), so that its state has its single run's shapes.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        factory: OptimizerFactory,
        shapes: Sequence[torch.Size] | None = None,
        regions: Sequence[Sequence[tuple]] | None = None,
    ) -> None:
        self.params = list(params)
        members = self.params[0].shape[0]
        self.regions = regions or [[(i,)] * len(self.params) for i in range(members)]
        # views sharing the stacked storage: PyTorch's in-place step on them is the step of the stacked weights
        self.views = [
            [
                nn.Parameter(p.detach()[region].view(shape) if shapes else p.detach()[region])
                for p, region, shape in zip(self.params, self.regions[i], shapes or self.params)
            ]
            for i in range(members)
        ]
        self.optimizer = factory([{"params": views} for views in self.views])

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None
        for views in self.views:
            for view in views:
                view.grad = None

    def step(self, settings: Sequence[Mapping[str, Any]], frozen: Sequence[bool] = ()) -> None:
        """One step: member i with its own hyperparameters `settings[i]` (lr, weight_decay, momentum, ...: its
        schedule's `settings()`); a frozen member (diverged, stopped early) neither moves nor changes its state."""
        for i, (group, views) in enumerate(zip(self.optimizer.param_groups, self.views)):
            group.update(settings[i])
            stopped = i < len(frozen) and frozen[i]
            for param, view, region in zip(self.params, views, self.regions[i]):
                # PyTorch skips a parameter without a gradient, as a single run's optimizer would
                view.grad = None if stopped or param.grad is None else param.grad[region].reshape(view.shape)
        self.optimizer.step()

    def take_state(self, previous: StackedOptimizer, members: Sequence[int]) -> None:
        """Member j's optimizer state and settings become copies of `previous`'s member `members[j]`'s (its moments,
        momentum buffers, step counts): a stack rebuilt for fewer members steps each as `previous` would have."""
        for views, group, i in zip(self.views, self.optimizer.param_groups, members, strict=True):
            group.update({key: value for key, value in previous.optimizer.param_groups[i].items() if key != "params"})
            for view, old in zip(views, previous.views[i], strict=True):
                if view.shape != old.shape:
                    raise ValueError(f"member {i}'s parameter {tuple(old.shape)} became {tuple(view.shape)}")
                if old in previous.optimizer.state:
                    saved = previous.optimizer.state[old]
                    self.optimizer.state[view] = {k: v.clone() if torch.is_tensor(v) else v for k, v in saved.items()}

    def member_state(self, i: int, order: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Member i's optimizer state in its single run's parameter order (`order[k]`: the stacked parameter holding
        its k-th parameter), detached copies; a parameter without state (SGD without momentum) has no entry."""
        state = {}
        for k, index in enumerate(order):
            saved = self.optimizer.state.get(self.views[i][index], {})
            if saved:
                state[k] = {name: v.clone() if torch.is_tensor(v) else v for name, v in saved.items()}
        return state
