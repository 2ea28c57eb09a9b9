"""The stacked optimizer steps each member with its own settings (lr and schedule, weight decay, momentum) exactly as
the member's own PyTorch optimizer would."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from mlplab.config.location import CONFIG_DIR
from mlplab.sweeps.stacked.optimizer import MemberSchedule, StackedOptimizer

OPTIMIZERS = sorted(p.stem for p in (CONFIG_DIR / "optimizer").glob("*.yaml"))
LRS = [1e-3, 3e-2, 1e-1]


def test_every_optimizer_config_is_covered():
    assert OPTIMIZERS == ["adam", "adamw", "rmsprop", "sgd"]


CASES = [(name, 0.0) for name in OPTIMIZERS] + [("sgd", 0.9), ("rmsprop", 0.9)]  # momentum: SGD's and RMSprop's


@pytest.mark.parametrize(("name", "momentum"), CASES)
@pytest.mark.parametrize("scheduler", ["none", "step", "onecycle"])
def test_stacked_steps_equal_each_member_stepping_alone(name, scheduler, momentum, compose_config):
    overrides = [f"optimizer={name}", f"scheduler={scheduler}", "trainer.max_epochs=3"]
    if momentum:
        overrides.append(f"optimizer.momentum={momentum}")
    if name == "sgd":
        overrides.append("optimizer.weight_decay=0.01")  # L2 decay too
    steps = 6
    factories, schedules = [], []
    for lr in LRS:
        cfg = compose_config(*overrides, f"lr={lr}")
        factory = instantiate(cfg.optimizer)
        make = None
        if cfg.scheduler:
            scheduler_cfg = instantiate(cfg.scheduler, _convert_="all")
            if "total_steps" in scheduler_cfg["scheduler"].keywords:
                scheduler_cfg["scheduler"].keywords["total_steps"] = steps

            def make(opt, cfg=scheduler_cfg):
                return {**cfg, "scheduler": cfg["scheduler"](opt)}

        factories.append(factory)
        schedules.append(MemberSchedule(factory, make))

    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(len(LRS), 5, 4, generator=generator), torch.randn(len(LRS), 1, 4, generator=generator)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(steps)]

    # each member alone, with PyTorch's optimizer and scheduler for its config
    alone = []
    for i, factory in enumerate(factories):
        params = [nn.Parameter(p[i].clone()) for p in start]
        optimizer = factory(params)
        scheduler = None
        if schedules[i].config:
            scheduler_cfg = instantiate(compose_config(*overrides, f"lr={LRS[i]}").scheduler, _convert_="all")
            if "total_steps" in scheduler_cfg["scheduler"].keywords:
                scheduler_cfg["scheduler"].keywords["total_steps"] = steps
            scheduler = scheduler_cfg["scheduler"](optimizer)
        for t in range(steps):
            for p, g in zip(params, grads[t]):
                p.grad = g[i].clone()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()  # every step here, whatever the interval: the same in both
        alone.append([p.detach() for p in params])

    stacked_params = [nn.Parameter(p.clone()) for p in start]
    stacked = StackedOptimizer(stacked_params, factories[0])
    for t in range(steps):
        for p, g in zip(stacked_params, grads[t]):
            p.grad = g.clone()
        stacked.step([s.settings() for s in schedules])
        for s in schedules:
            if s.config:
                s.config["scheduler"].step()

    for i in range(len(LRS)):
        for got, want in zip(stacked_params, alone[i]):
            torch.testing.assert_close(got[i].detach(), want, rtol=1e-5, atol=1e-6)
    moved = [not torch.equal(p[i], s[i]) for p, s in zip(stacked_params, start) for i in range(len(LRS))]
    assert all(moved)


def test_a_frozen_member_does_not_move_and_the_others_step_as_before():
    start = torch.randn(3, 4, 2)
    grad = torch.randn_like(start)
    grad[1] = float("nan")  # a diverged member's gradient

    def run(frozen):
        p = nn.Parameter(start.clone())
        optimizer = StackedOptimizer([p], lambda params: torch.optim.Adam(params, lr=1e-2))
        p.grad = grad.clone()
        optimizer.step([{"lr": 1e-2}] * 3, frozen=frozen)
        return p.detach()

    stepped = run([False, True, False])
    assert torch.equal(stepped[1], start[1])
    assert not torch.equal(stepped[0], start[0])
    alone = nn.Parameter(start[0].clone())
    adam = torch.optim.Adam([alone], lr=1e-2)
    alone.grad = grad[0].clone()
    adam.step()
    torch.testing.assert_close(stepped[0], alone.detach(), rtol=1e-5, atol=1e-7)


# members of one stack with their own weight decay, momentum and Nesterov flag (each a job of a grid over them)
OWN_SETTINGS = {
    "sgd": [
        ["optimizer.weight_decay=0", "optimizer.momentum=0"],
        ["optimizer.weight_decay=0.05", "optimizer.momentum=0.9"],
        ["optimizer.weight_decay=0.01", "optimizer.momentum=0.5", "optimizer.nesterov=true"],
    ],
    "adam": [[f"optimizer.weight_decay={wd}"] for wd in (0.0, 0.1, 0.01)],
    "adamw": [[f"optimizer.weight_decay={wd}"] for wd in (0.0, 0.1, 0.5)],
    "rmsprop": [
        [f"optimizer.weight_decay={wd}", f"optimizer.momentum={m}"] for wd, m in ((0, 0), (0.1, 0.9), (0.01, 0.5))
    ],
}


@pytest.mark.parametrize("name", sorted(OWN_SETTINGS))
def test_members_with_their_own_weight_decay_and_momentum_step_as_each_alone(name, compose_config):
    steps = 4
    factories = [
        instantiate(compose_config(f"optimizer={name}", "lr=0.05", *own).optimizer) for own in OWN_SETTINGS[name]
    ]
    members = len(factories)
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(members, 5, 4, generator=generator), torch.randn(members, 1, 4, generator=generator)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(steps)]

    alone = []
    for i, factory in enumerate(factories):
        params = [nn.Parameter(start[0][i].clone()), nn.Parameter(start[1][i, 0].clone())]
        optimizer = factory(params)
        for t in range(steps):
            params[0].grad, params[1].grad = grads[t][0][i].clone(), grads[t][1][i, 0].clone()
            optimizer.step()
        alone.append((params, optimizer.state_dict()))

    stacked_params = [nn.Parameter(p.clone()) for p in start]
    stacked = StackedOptimizer(stacked_params, factories[0], shapes=[torch.Size([5, 4]), torch.Size([4])])
    schedules = [MemberSchedule(factory, None) for factory in factories]
    for t in range(steps):
        for p, g in zip(stacked_params, grads[t]):
            p.grad = g.clone()
        stacked.step([s.settings() for s in schedules])

    for i, (params, state) in enumerate(alone):
        torch.testing.assert_close(stacked_params[0][i].detach(), params[0].detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(stacked_params[1][i, 0].detach(), params[1].detach(), rtol=1e-6, atol=1e-7)
        # its state (momentum buffers, moments) as its own optimizer keeps it, none where it keeps none
        own = stacked.member_state(i, [0, 1])
        assert own.keys() == state["state"].keys()
        for k, values in state["state"].items():
            assert own[k].keys() == values.keys()
            for key, value in values.items():
                torch.testing.assert_close(own[k][key], value, rtol=1e-6, atol=1e-7)
