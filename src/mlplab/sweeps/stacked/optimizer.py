"""Each member's own learning rate and schedule on stacked parameters, exactly as PyTorch's optimizer gives them.

The configured optimizer steps the stacked parameters at lr 1; each member's step `p_new - p_old` is then
scaled by that member's current lr. SGD (with or without momentum, Nesterov), Adam, AdamW (its decoupled
decay too) and RMSprop, as PyTorch implements them, make updates linear in lr, and their state (moments,
momentum buffers) does not depend on lr, so this is each member's own update. Each member's current lr comes
from a shadow optimizer (one dummy parameter, the member's own optimizer config) with the member's own
scheduler attached, stepped when Lightning would step the real one: any scheduler works, ReduceLROnPlateau
with the member's own monitored metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
# optimizer settings a scheduler may change besides lr (OneCycleLR cycles momentum / Adam's beta1)
SCHEDULED_SETTINGS = ("momentum", "betas")


class MemberSchedule:
    """One member's learning rate: a shadow optimizer with the member's optimizer settings and scheduler."""

    def __init__(self, factory: OptimizerFactory, make_scheduler: Callable[[torch.optim.Optimizer], Any] | None):
        self.shadow = factory([nn.Parameter(torch.zeros(1))])
        # Lightning's lr_scheduler dict (scheduler, interval, frequency, monitor) or None for a constant lr
        self.config: dict[str, Any] | None = make_scheduler(self.shadow) if make_scheduler else None
        # a step without gradients changes nothing; it tells the scheduler the optimizer steps (no ordering warning)
        self.shadow.step()

    @property
    def lr(self) -> float:
        return float(self.shadow.param_groups[0]["lr"])

    def settings(self) -> dict[str, Any]:
        group = self.shadow.param_groups[0]
        return {key: group[key] for key in SCHEDULED_SETTINGS if key in group}

    def step(self, interval: str, step_count: int, metrics: Mapping[str, float] | None = None) -> None:
        """Step the scheduler as Lightning would at the end of a step (`interval="step"`) or an epoch; `step_count`
        counts those steps or epochs so far (1 after the first), for the scheduler's `frequency`."""
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
    """Steps stacked parameters (first dimension: the member) with `factory`, each member at its own lr."""

    def __init__(self, params: Iterable[nn.Parameter], factory: OptimizerFactory) -> None:
        self.params = list(params)
        self.optimizer = factory(self.params, lr=1.0)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(
        self, lrs: Sequence[float], frozen: Sequence[bool] = (), settings: Mapping[str, Any] | None = None
    ) -> None:
        """One step: member i moves by its lr-1 step times `lrs[i]`; a frozen member (diverged) does not move.

        `settings`: scheduled optimizer settings (momentum, betas) that every member shares, set before the step.
        """
        for group in self.optimizer.param_groups:
            group.update(settings or {})
        if not any(frozen) and len(set(lrs)) == 1:
            # every member at the same lr: PyTorch's own step, no scaling (exactly the single run's arithmetic)
            for group in self.optimizer.param_groups:
                group["lr"] = lrs[0]
            self.optimizer.step()
            return
        for group in self.optimizer.param_groups:
            group["lr"] = 1.0
        device, dtype = self.params[0].device, self.params[0].dtype
        weights = torch.tensor(list(lrs), dtype=dtype, device=device)
        stopped = [i for i, f in enumerate(frozen) if f]
        before = [p.detach().clone() for p in self.params]
        self.optimizer.step()
        with torch.no_grad():
            for param, old in zip(self.params, before):
                # old + lr * (p_lr1 - old): the member's own step
                # in place: the stacked weights and states outgrow the CPU's caches, so each pass over them counts
                torch.lerp(old, param, weights.view(-1, *[1] * (param.dim() - 1)), out=param)
                if stopped:  # its step may be NaN: put its old values back, not old + 0 * NaN
                    param[stopped] = old[stopped]
