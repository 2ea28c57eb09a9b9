"""Parallel sweep jobs spread over the devices: each job slot's process sees only its own GPUs (CUDA_VISIBLE_DEVICES),
a device never holds two jobs at once, a killed job's device goes to the next job. Without a GPU the assignment is
tested with a declared device list (hydra.launcher.devices=[...]): the jobs run on the CPU and record what they saw."""

from __future__ import annotations

import csv
import json
import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.run.record import read_run_record
from mlplab.sweeps.devices import device_groups, devices_per_job, slot_devices
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import DEVICES_SEEN
from tests.helpers.runs import job_folders, run_train_process


def test_devices_are_grouped_per_job_and_a_job_that_needs_more_than_there_are_is_refused():
    assert device_groups(["0", "1", "2", "3"], 1) == ["0", "1", "2", "3"]
    assert device_groups([0, 1, 2, 3, 4], 2) == ["0,1", "2,3"]  # the fifth is left: no job fits on it alone
    with pytest.raises(ValueError, match=r"devices_per_job=3 is invalid: only 2 device\(s\)"):
        device_groups(["0", "1"], 3)
    assert devices_per_job(None, 2) == 2  # a DDP job with trainer.devices=2 takes two
    assert devices_per_job(None, "auto") == 1
    assert devices_per_job(4, 1) == 4
    with pytest.raises(ValueError, match="devices_per_job=0 is invalid"):
        devices_per_job(0, 1)


@pytest.mark.skipif(os.environ.get("CUDA_VISIBLE_DEVICES") is not None, reason="checks the default on a machine as is")
def test_cpu_sweeps_get_no_devices_and_keep_their_n_jobs_slots():
    import torch

    settings = {"devices": None, "devices_per_job": None}
    assert slot_devices(settings, {"accelerator": "cpu", "devices": 1}) == []
    expected = [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    assert slot_devices(settings, {"accelerator": "auto", "devices": 1}) == expected
    assert slot_devices({"devices": [3, 5], "devices_per_job": None}, {"accelerator": "cpu", "devices": 1}) == [
        "3",
        "5",
    ]  # a declared list is used as given


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def test_the_launcher_settings_compose_and_slurm_asks_for_gpus_only_for_gpu_jobs():
    parallel = _compose(["hydra/launcher=parallel", "hydra.launcher.devices=[0,1]", "hydra.launcher.devices_per_job=2"])
    assert list(parallel.hydra.launcher.devices) == [0, 1] and parallel.hydra.launcher.devices_per_job == 2
    assert parallel.hydra.launcher.n_jobs == 2
    cpu = _compose(["hydra/launcher=slurm", "accelerator=ddp_cpu", "trainer.devices=2"])
    assert (cpu.hydra.launcher.tasks_per_node, cpu.hydra.launcher.gpus_per_node) == (2, 0)
    gpu = _compose(["hydra/launcher=slurm", "accelerator=ddp", "trainer.devices=4"])
    assert (gpu.hydra.launcher.tasks_per_node, gpu.hydra.launcher.gpus_per_node) == (4, 4)
    stacked_cpu = _compose(["hydra/launcher=stacked_slurm", "accelerator=cpu"])
    assert stacked_cpu.hydra.launcher.gpus_per_node == 0
    assert _compose(["hydra/launcher=stacked_slurm", "accelerator=gpu"]).hydra.launcher.gpus_per_node == 1


def test_jobs_spread_over_declared_devices_one_job_per_device_at_a_time_and_a_killed_jobs_device_is_reused(
    tiny_mnist, tmp_path
):
    sweep = tmp_path / "sweep"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train_process(
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.devices=[0,1,2]",
        "torch_threads=1",
        *quick,
        "callbacks=none",
        "logger=csv",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "seed=1,2,3,4,5,6",
        "+callbacks.devices={_target_:tests.helpers.callbacks.RecordDevices,kill:1}",
        f"hydra.sweep.dir={sweep}",
    )
    folders = job_folders(sweep)
    records = [read_run_record(folder) for folder in folders]
    seen = [json.loads((folder / DEVICES_SEEN).read_text()) for folder in folders]
    assert [r["status"] for r in records] == ["completed", "failed", *["completed"] * 4]
    # every job saw exactly one of the declared devices, and its record says which
    assert {s["visible"] for s in seen} == {"0", "1", "2"}
    assert [r["devices"] for r in records] == [s["visible"] for s in seen]
    # a device never held two jobs at once
    for device in ("0", "1", "2"):
        spans = sorted((s["start"], s["end"]) for s in seen if s["visible"] == device)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), (device, spans)
    # the killed job's device went on with a new process for a later job
    killed = seen[1]
    later = [s for s in seen[2:] if s["visible"] == killed["visible"]]
    assert later and all(s["pid"] != killed["pid"] for s in later)
    assert "3 at a time, one per device group ([0] [1] [2]" in result.stdout + result.stderr
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["devices"] for row in rows] == [r["devices"] for r in records]


def test_a_job_that_needs_two_devices_gets_a_pair_of_its_own(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    run_train_process(
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.devices=[0,1,2,3,4]",
        "hydra.launcher.devices_per_job=2",
        "torch_threads=1",
        *quick,
        "callbacks=none",
        "logger=none",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "seed=1,2,3",
        "+callbacks.devices={_target_:tests.helpers.callbacks.RecordDevices}",
        f"hydra.sweep.dir={sweep}",
    )
    seen = [json.loads((folder / DEVICES_SEEN).read_text())["visible"] for folder in job_folders(sweep)]
    assert set(seen) <= {"0,1", "2,3"} and len(set(seen)) == 2  # device 4 alone fits no job


def test_a_stacked_sweep_trains_one_stack_per_device_side_by_side(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train_process(
        "-m",
        "hydra/launcher=stacked",
        "hydra.launcher.devices=[0,1]",
        "torch_threads=1",
        *quick,
        "callbacks=lean",
        "baselines=false",
        "logger=csv",
        "trainer.max_epochs=1",
        "optimizer=adam,sgd",  # two stacks: jobs stack only when they differ in lr and seed alone
        "lr=1e-3,3e-3",
        f"hydra.sweep.dir={sweep}",
    )
    records = [read_run_record(folder) for folder in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed"] * 4
    by_optimizer = {}
    for record in records:
        optimizer = next(o for o in record["overrides"] if o.startswith("optimizer="))
        by_optimizer.setdefault(optimizer, set()).add(record["devices"])
    # each stack on a device of its own, every member of a stack on its stack's (run_record.json's `devices`: no
    # test callback here, since a callback the stack does not know sends its job to run alone)
    assert (
        sorted(by_optimizer.values(), key=sorted) == [{"0"}, {"1"}]
        or sorted(by_optimizer.values(), key=sorted) == [{"0"}, {"1"}][::-1]
    )
    assert "Training 2 stacks 2 at a time, one per device (0 1)" in result.stdout + result.stderr
