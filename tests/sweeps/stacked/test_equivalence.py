"""A stack trains each member as its single run would: the same 2 lr x 2 seed jobs through the basic launcher and
through `hydra/launcher=stacked` (real `python train.py -m` on tiny files) give the same initial weights, the same
first-epoch losses and the same test metrics, with Adam and SGD and a step scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.helpers.runs import job_folders, logged_values, run_train_process

JOBS = ["optimizer=adam,sgd", "lr=3e-4,1e-3", "seed=1,2"]


def sweep(tiny_mnist, folder: Path, *extra: str) -> list[Path]:
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    run_train_process(
        "-m",
        *quick,
        "callbacks=lean",
        "baselines=false",
        "logger=csv",
        "scheduler=step",
        "scheduler.scheduler.step_size=1",
        "torch_threads=1",
        *JOBS,
        *extra,
        f"hydra.sweep.dir={folder}",
    )
    return job_folders(folder)


@pytest.mark.slow
def test_a_stack_gives_each_member_its_single_runs_weights_losses_and_test_metrics(tiny_mnist, tmp_path):
    single = sweep(tiny_mnist, tmp_path / "basic")
    stacked = sweep(tiny_mnist, tmp_path / "stacked", "hydra/launcher=stacked")

    assert len(single) == len(stacked) == 8
    for one, many in zip(single, stacked):
        a, b = read_run_record(one), read_run_record(many)
        assert a["overrides"] == b["overrides"] and b["status"] == "completed"
        # the first step's loss is computed with the initial weights: equal initial weights, equal data order
        first_a, first_b = logged_values(one, "train/loss")[0], logged_values(many, "train/loss")[0]
        assert first_b == pytest.approx(first_a, rel=1e-5), f"job {one.name}: initial weights or first batch differ"
        # every logged step of the first epoch, and its epoch losses: each member's own lr, schedule and order
        steps = len(logged_values(one, "train/loss")) // 2
        assert logged_values(many, "train/loss")[:steps] == pytest.approx(
            logged_values(one, "train/loss")[:steps], rel=1e-4
        )
        for key in ("train/loss_epoch", "val/loss"):
            assert logged_values(many, key)[0] == pytest.approx(logged_values(one, key)[0], rel=1e-4), (one.name, key)
        assert logged_values(many, "lr") == pytest.approx(
            logged_values(one, "lr"), rel=1e-6
        )  # the step schedule, per member
        for key in ("test/loss", "test/acc", "val/loss"):
            assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-3, abs=1e-5), (one.name, key)
        assert b["objective"] == pytest.approx(a["objective"], abs=1e-6)
        assert b["epochs"] == a["epochs"] == 2

        # the checkpoints are single-run checkpoints: same keys, same config, weights close to the single run's.
        # Adam divides by each weight's own gradient scale: a weight whose gradient is rounding noise (a unit that
        # hardly matters) takes lr-sized steps either way, so its weights agree less closely, though the losses agree
        ckpt_a = torch.load(one / "checkpoints" / "last.ckpt", weights_only=True)
        ckpt_b = torch.load(many / "checkpoints" / "last.ckpt", weights_only=True)
        assert ckpt_b["state_dict"].keys() == ckpt_a["state_dict"].keys()
        assert ckpt_b["hyper_parameters"]["lr"] == ckpt_a["hyper_parameters"]["lr"]
        for name, weight in ckpt_a["state_dict"].items():
            if name.startswith("network."):
                atol = 1e-2 if "optimizer=adam" in a["overrides"] else 1e-3
                torch.testing.assert_close(ckpt_b["state_dict"][name], weight, rtol=1e-3, atol=atol)
        # ... and resume as a single run's: the same loop counters, scheduler state, optimizer settings and state
        assert ckpt_b["loops"] == ckpt_a["loops"]
        assert ckpt_b["lr_schedulers"] == ckpt_a["lr_schedulers"]
        optimizer_a, optimizer_b = ckpt_a["optimizer_states"][0], ckpt_b["optimizer_states"][0]
        assert optimizer_b["param_groups"] == optimizer_a["param_groups"]
        assert optimizer_b["state"].keys() == optimizer_a["state"].keys()
        for k, state in optimizer_a["state"].items():
            assert optimizer_b["state"][k].keys() == state.keys()
            for name, value in state.items():
                torch.testing.assert_close(optimizer_b["state"][k][name], value, rtol=1e-2, atol=1e-3)
        assert ckpt_b["MNISTDataModule"] == ckpt_a["MNISTDataModule"]
        assert [p.name for p in sorted((many / "checkpoints").glob("best-*.ckpt"))] == [
            p.name for p in sorted((one / "checkpoints").glob("best-*.ckpt"))
        ]
        assert {p.name for p in (many / ".hydra").iterdir()} == {"config.yaml", "overrides.yaml", "hydra.yaml"}
    assert (tmp_path / "stacked" / "summary.csv").is_file()
