"""Each stack member stays a run of its own: a member driven to NaN ends `diverged` while the others train on
unaffected; eval.py reproduces a member's test metrics from its folder; its W&B run holds its own metrics."""

from __future__ import annotations

import csv
import signal
import subprocess
import time

import pytest
import torch

from mlplab.eval import evaluate
from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.helpers.runs import job_folders, run_train_process, start_train_process
from tests.helpers.statlib import housing_overrides, make_statlib_file
from tests.helpers.wandb_offline import OfflineRun, offline_runs

DIVERGING_LR = 1e4  # SGD at this lr overflows within a few steps


def stacked_sweep(tiny_mnist, folder, lrs, *extra, launcher="stacked"):
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train_process(
        "-m",
        *quick,
        "callbacks.model_summary=null",
        "optimizer=sgd",
        "optimizer.momentum=0.9",
        "torch_threads=1",
        f"lr={','.join(map(str, lrs))}",
        "seed=1",
        f"hydra/launcher={launcher}",
        *extra,
        f"hydra.sweep.dir={folder}",
    )
    return job_folders(folder), result.stdout + result.stderr


@pytest.mark.slow
def test_a_diverging_member_is_recorded_diverged_and_the_others_are_unaffected(tiny_mnist, tmp_path, compose_config):
    jobs, output = stacked_sweep(tiny_mnist, tmp_path / "with", [0.01, 0.03, DIVERGING_LR], "logger=many")
    alone, _ = stacked_sweep(tiny_mnist, tmp_path / "without", [0.01, 0.03], "logger=csv")

    assert "stack of 3 jobs (#0, #1, #2) differing in lr" in output
    records = [read_run_record(job) for job in jobs]
    assert [r["status"] for r in records] == ["completed", "completed", "diverged"]
    assert "Training diverged" in records[2]["error"] and f"lr={DIVERGING_LR:g}" in records[2]["error"]
    assert records[2]["objective"] is None
    for with_it, without in zip(jobs[:2], alone):
        a, b = read_run_record(with_it), read_run_record(without)
        for key in ("val/acc", "val/loss", "test/loss", "test/acc", "train/loss_epoch"):
            assert a["metrics"][key] == pytest.approx(b["metrics"][key], rel=1e-6, abs=1e-9), key
    # the diverged member kept its last good checkpoint (none saved after the NaN) and its curves up to it
    assert (jobs[2] / "checkpoints" / "last.ckpt").is_file() or not list((jobs[2] / "checkpoints").glob("*"))

    # eval.py on a member's folder (its best checkpoint) gives the test metrics its own test gave
    data_dir = tiny_mnist[0]
    for job in jobs[:2]:
        metrics = evaluate(
            compose_config(f"ckpt_path={job}", f"paths.data_dir={data_dir}", "accelerator=cpu", config_name="eval")
        )
        recorded = read_run_record(job)["metrics"]
        for key in ("test/loss", "test/acc"):
            assert metrics[key] == pytest.approx(recorded[key], rel=1e-5), (job.name, key)

    # each member's own W&B run (offline), read back: its config, its metrics, finished; the diverged one failed
    runs = [OfflineRun(path) for job in jobs for path in offline_runs(job / "wandb")]
    assert len(runs) == 3 and len({run.id for run in runs}) == 3
    assert [run.config["lr"] for run in runs] == [0.01, 0.03, DIVERGING_LR]
    assert [run.exit_code for run in runs] == [0, 0, 1]  # the diverged run ends failed, as a single run does
    for run, job in zip(runs[:2], jobs[:2]):
        recorded = read_run_record(job)["metrics"]
        assert run.summary["test/acc"] == pytest.approx(recorded["test/acc"])
        assert run.summary["val/loss"] == pytest.approx(recorded["val/loss"])
        assert any("train/loss" in row for row in run.history)
    assert {run.group for run in runs} == {"with"}
    csv_rows = list(csv.DictReader((jobs[0] / "csv" / "metrics.csv").open()))
    assert [row["epoch"] for row in csv_rows if row.get("val/acc")] == ["0", "1"]
    assert (jobs[0] / "curves.png").is_file() and (jobs[0] / "images" / "test" / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_early_stopping_stops_one_member_as_its_single_run_and_the_others_go_on(tiny_mnist, tmp_path):
    # lr 1e-9 cannot improve val/loss by min_delta: its early stopping stops it after its second epoch (patience 1);
    # lr 0.03 improves every epoch and trains all three
    stopping = [
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=1e-4",
        "monitor.metric=val/loss",
        "monitor.mode=min",
        "trainer.max_epochs=3",
        "logger=csv",
        "baselines=false",
    ]
    stacked, output = stacked_sweep(tiny_mnist, tmp_path / "stacked", [1e-9, 0.03], *stopping)
    single, _ = stacked_sweep(tiny_mnist, tmp_path / "basic", [1e-9, 0.03], *stopping, launcher="basic")

    assert "stack of 2 jobs (#0, #1) differing in lr" in output
    assert "Stacked job #0 stops early after epoch 1" in output
    records = [read_run_record(job) for job in stacked]
    assert [r["epochs"] for r in records] == [read_run_record(job)["epochs"] for job in single] == [2, 3]
    for many, one in zip(stacked, single):
        a, b = read_run_record(one), read_run_record(many)
        assert b["status"] == "completed"
        for key in ("val/loss", "test/loss", "test/acc"):
            assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-4, abs=1e-6), (one.name, key)
        # its last.ckpt holds its early stopping's state, as the single run's does
        state_a = torch.load(one / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
        state_b = torch.load(many / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
        key = next(k for k in state_a if k.startswith("EarlyStopping"))
        assert state_b[key]["wait_count"] == state_a[key]["wait_count"]
        assert state_b[key]["stopped_epoch"] == state_a[key]["stopped_epoch"]


@pytest.mark.slow
def test_a_stack_stopped_by_sigterm_saves_every_members_last_ckpt_and_a_rerun_resumes_each_as_a_single_run(
    tiny_mnist, tmp_path
):
    sweep = tmp_path / "sweep"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    command = [
        "-m",
        *quick,
        "callbacks=lean",
        "logger=csv",
        "baselines=false",
        "trainer.max_epochs=20",
        "torch_threads=1",
        "lr=1e-3,3e-3",
        "seed=1",
        "hydra/launcher=stacked",
        f"hydra.sweep.dir={sweep}",
    ]
    process = start_train_process(*command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (sweep / "1" / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)  # the stack is in its second epoch (or later)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 143, output
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [(r["status"], r["signal"]) for r in records] == [("interrupted", "SIGTERM")] * 2
    for job in job_folders(sweep):
        saved = torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)
        assert 0 < saved["global_step"] < 20 * 16 and saved["optimizer_states"] and "loops" in saved

    run_train_process(*command)  # the same command again: each member resumes from its last.ckpt as a single run
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [(r["status"], r["epochs"]) for r in records] == [("completed", 20)] * 2
    for job in job_folders(sweep):
        assert f"resuming from {job / 'checkpoints' / 'last.ckpt'}" in (job / "train.log").read_text()


@pytest.mark.parametrize("transform", ["standard", "quantile"])
def test_every_member_of_a_housing_stack_keeps_the_feature_statistics_in_its_checkpoints(tmp_path, transform):
    # the members share the first member's loaded splits; what it fitted on them must reach every member's
    # checkpoint, or testing a member's best checkpoint (and eval.py, predict.py) has no statistics to restore
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    folder = tmp_path / "sweep"
    run_train_process(
        "-m",
        *housing_overrides(tmp_path / "data", tmp_path / "mirror", file_md5),
        f"data.feature_transform={transform}",
        "baselines=false",
        "logger=csv",
        "callbacks=lean",
        "torch_threads=1",
        "lr=1e-3,3e-3",
        "hydra/launcher=stacked",
        f"hydra.sweep.dir={folder}",
    )
    states = []
    for job in job_folders(folder):
        assert read_run_record(job)["status"] == "completed", job
        (best,) = (job / "checkpoints").glob("best-*.ckpt")
        states.append(torch.load(best, weights_only=True)["HousingDataModule"])
    assert len(states) == 2 and states[0].keys() == states[1].keys() and len(states[0]) == 2
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
