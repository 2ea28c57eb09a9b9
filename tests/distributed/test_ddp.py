"""DDP over 2 CPU processes (`accelerator=ddp_cpu`) on tiny files: a single run and a sweep's jobs each train once,
in their own folder, logged by rank 0 alone; a rank that dies stops its run at once and fails only its own sweep job.

Each is a real `python train.py` subprocess (with a timeout: a hung collective must fail the test, not the CI job).
"""

from __future__ import annotations

import csv
import math
import signal
import time

import pytest
import torch

from mlplab.eval import evaluate
from mlplab.run.record import read_run_record
from tests.helpers.runs import job_folders, run_train_process, short
from tests.helpers.wandb_offline import offline_runs


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_a_one_process_evaluation_of_its_checkpoint(
    tiny_mnist, tmp_path, compose_config
):
    data_dir, files = tiny_mnist
    outputs = tmp_path / "outputs"
    # the default run folder (outputs/<task>/runs/<time>): a rank re-running the command would make a second one
    # W&B (offline) and CSV: each must get exactly one run, from rank 0
    run_train_process(
        *short(data_dir, files), "accelerator=ddp_cpu", "lr=1e-4", "logger=many", f"paths.output_root={outputs}"
    )

    runs = [p for p in outputs.glob("*/runs/*")]
    assert len(runs) == 1, f"one output folder per run, found {runs}"
    run = runs[0]
    assert (run / "train_rank1.log").is_file()  # the second process ran, in this run's folder
    assert len(list(outputs.rglob(".hydra"))) == 1 and len(list(outputs.rglob("metrics.csv"))) == 1
    assert len(offline_runs(outputs)) == 1
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    assert (
        len([r for r in rows if r["val/acc"]]) == 1 and len([r for r in rows if r["test/acc"]]) == 1
    )  # rank 0 logs alone

    record = read_run_record(run)
    assert record["status"] == "completed"
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == math.ceil((600 - 100) / 2 / 32)  # each rank trained on its own half

    best = next((run / "checkpoints").glob("best-*.ckpt"))
    single = evaluate(
        compose_config(f"ckpt_path={best}", f"paths.data_dir={data_dir}", "accelerator=cpu", config_name="eval")
    )
    ddp = record["metrics"]
    assert 0.3 < ddp["test/acc"] < 1.0  # not a trivial value that any split would reproduce
    assert ddp["test/acc"] == pytest.approx(single["test/acc"], abs=1e-7)
    assert ddp["test/loss"] == pytest.approx(single["test/loss"], rel=1e-5)


@pytest.mark.slow
def test_ddp_inside_a_sweep_runs_each_job_once_in_its_own_folder_and_survives_a_failing_job(tiny_mnist, tmp_path):
    outputs = tmp_path / "outputs"
    sweep = outputs / "sweep"
    failing = "+callbacks.fail={_target_:tests.helpers.callbacks.FailingJob,lr:0.001}"  # job 0, on both ranks
    # jobs run one after the other in one process: job 1 needs job 0's ranks stopped and its process group closed
    run_train_process(
        "-m",
        *short(*tiny_mnist),
        "accelerator=ddp_cpu",
        "lr=1e-3,1e-2",
        failing,
        f"paths.output_root={outputs}",
        f"hydra.sweep.dir={sweep}",
    )
    assert [p.name for p in outputs.iterdir()] == ["sweep"]  # no rank re-ran the sweep into a folder of its own
    jobs = job_folders(sweep)
    assert [p.name for p in jobs] == ["0", "1"]
    records = [read_run_record(job) for job in jobs]
    assert [r["status"] for r in records] == ["diverged", "completed"]
    assert "lr=0.001" in records[0]["overrides"] and "lr=0.01" in records[1]["overrides"]  # Hydra normalises values
    assert all((job / "train_rank1.log").is_file() and not (job / "0").exists() for job in jobs)
    assert records[1]["metrics"]["test/acc"] > 0.5
    assert [r["status"] for r in csv.DictReader(open(sweep / "summary.csv"))] == ["diverged", "completed"]


@pytest.mark.slow
def test_a_ddp_rank_dying_stops_a_single_run_at_once(tiny_mnist, tmp_path):
    run = tmp_path / "run"
    kill = "+callbacks.kill={_target_:tests.helpers.callbacks.KillRank,rank:1}"
    args = [*short(*tiny_mnist), "accelerator=ddp_cpu", "trainer.max_epochs=20", kill, f"hydra.run.dir={run}"]
    start = time.monotonic()
    process = run_train_process(*args, expect_code=None)
    # no hang in a collective: rank 0's next gradient all-reduce fails at once (gloo) and the run is recorded failed,
    # unless Lightning's watchdog (it polls the ranks every 5 s) saw rank 1 die first and killed the run outright
    assert time.monotonic() - start < 120
    status = read_run_record(run)["status"]
    assert (process.returncode, status) in ((1, "failed"), (-signal.SIGKILL, "running")), process.stderr[-3000:]
    assert not (run / "checkpoints" / "last.ckpt").exists()  # it died in the first of 20 epochs


@pytest.mark.slow
def test_a_ddp_rank_dying_in_a_sweep_fails_its_job_and_the_sweep_goes_on(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    kill = "+callbacks.kill={_target_:tests.helpers.callbacks.KillRank,rank:1,lr:0.001}"  # job 0's rank 1
    run_train_process(
        "-m", *short(*tiny_mnist), "accelerator=ddp_cpu", "lr=1e-3,1e-2", kill, f"hydra.sweep.dir={sweep}"
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["failed", "completed"], [r["error"] for r in records]
    assert records[1]["metrics"]["test/acc"] > 0.5  # the next job got a fresh process group and trained
    assert [r["status"] for r in csv.DictReader(open(sweep / "summary.csv"))] == ["failed", "completed"]
