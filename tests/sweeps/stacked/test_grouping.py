"""Grouping: jobs equal up to lr and seed share a stack of at most max_members; what cannot stack runs alone,
with a reason naming the key."""

from __future__ import annotations

import pytest

from mlplab.sweeps.stacked.grouping import differing_keys, group_jobs, unstackable_reason


def test_jobs_that_differ_in_lr_and_seed_stack_and_others_go_to_their_own_stacks(compose_config):
    cfgs = [
        compose_config(f"optimizer={opt}", f"lr={lr}", f"seed={seed}")
        for opt in ("adam", "sgd")
        for lr in (1e-3, 1e-2)
        for seed in (1, 2)
    ]
    stacks = group_jobs(cfgs, max_members=16)
    assert [s.jobs for s in stacks] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(s.alone is None for s in stacks)
    assert differing_keys(cfgs[:4])[:2] == ["lr", "seed"]


def test_max_members_splits_a_stack_and_a_lone_job_runs_alone(compose_config):
    cfgs = [compose_config(f"lr={lr}") for lr in (1e-4, 2e-4, 3e-4, 4e-4, 5e-4)]
    stacks = group_jobs(cfgs, max_members=2)
    assert [s.jobs for s in stacks] == [[0, 1], [2, 3], [4]]
    assert "no other job" in stacks[2].alone
    with pytest.raises(ValueError, match="max_members=0"):
        group_jobs(cfgs, max_members=0)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.norm=batch", "model.norm=batch"),
        ("accelerator=ddp_cpu", "trainer.devices"),
        ("trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val=1.0"),
        ("compile=true", "compile=True"),
        ("trainer.accumulate_grad_batches=2", "trainer.accumulate_grad_batches=2"),
        ("model._target_=torch.nn.Identity", "model._target_=torch.nn.Identity"),
    ],
)
def test_what_cannot_stack_runs_alone_naming_the_key(compose_config, override, key):
    cfg = compose_config(override)
    reason = unstackable_reason(cfg)
    assert reason is not None and key in reason
    stacks = group_jobs([cfg, compose_config(override, "lr=0.1")], max_members=16)
    assert [s.jobs for s in stacks] == [[0], [1]] and all(s.alone == reason for s in stacks)


def test_clipping_by_value_early_stopping_and_every_scheduler_stack(compose_config):
    assert (
        unstackable_reason(compose_config("trainer.gradient_clip_val=1.0", "trainer.gradient_clip_algorithm=value"))
        is None
    )
    for scheduler in ("cosine", "step", "onecycle", "plateau"):
        assert unstackable_reason(compose_config(f"scheduler={scheduler}")) is None
    assert unstackable_reason(compose_config("callbacks=early_stopping")) is None  # each member stops on its own
