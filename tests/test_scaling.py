"""Scaling out on tiny files: DDP over 2 CPU processes, parallel and submitit sweeps, Optuna, the SLURM preset.

The multi-process runs start `python train.py` as a subprocess (with a timeout), as a user would.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from mlplab.config.location import CONFIG_DIR, PROJECT_ROOT
from mlplab.data.sources import md5sum
from mlplab.eval import evaluate
from mlplab.run.record import read_run_record
from mlplab.train import main
from tests.conftest import tiny_overrides
from tests.helpers.wandb_offline import offline_runs

TIMEOUT_S = 420  # a hung DDP collective must fail the test, not the CI job


def run_train(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python train.py <args>` from the repository root, with this checkout's sources; fails with its output."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.run(
        [sys.executable, "train.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert process.returncode == 0, (
        f"train.py exited with {process.returncode}:\n{process.stdout[-3000:]}\n{process.stderr[-5000:]}"
    )
    return process


def short(data_dir: Path, files: dict[str, str]) -> list[str]:
    return [*tiny_overrides(data_dir, files), "trainer.max_epochs=1"]


def job_folders(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_a_one_process_evaluation_of_its_checkpoint(
    tiny_mnist, tmp_path, compose_config
):
    data_dir, files = tiny_mnist
    outputs = tmp_path / "outputs"
    # the default run folder (outputs/<task>/runs/<time>): a rank re-running the command would make a second one
    # W&B (offline) and CSV: each must get exactly one run, from rank 0
    run_train(*short(data_dir, files), "accelerator=ddp_cpu", "lr=1e-4", "logger=many", f"paths.output_root={outputs}")

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
    failing = "+callbacks.fail={_target_:tests.sweeps.test_report.FailingJob,lr:0.001}"  # job 0, on both ranks
    # jobs run one after the other in one process: job 1 needs job 0's ranks stopped and its process group closed
    run_train(
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


class KillRank(L.Callback):
    """SIGKILLs global rank `rank` at its third training batch (in the run whose lr is `lr`, when one is given)."""

    def __init__(self, rank: int = 1, lr: float | None = None) -> None:
        self.rank, self.lr = rank, lr

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank and batch_idx == 2 and self.lr in (None, pl_module.hparams["lr"]):
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_ddp_rank_dying_stops_a_single_run_at_once(tiny_mnist, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    kill = "+callbacks.kill={_target_:tests.test_scaling.KillRank,rank:1}"
    args = [*short(*tiny_mnist), "accelerator=ddp_cpu", "trainer.max_epochs=20", kill, f"hydra.run.dir={run}"]
    start = time.monotonic()
    process = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    # no hang in a collective: rank 0's next gradient all-reduce fails at once (gloo) and the run is recorded failed,
    # unless Lightning's watchdog (it polls the ranks every 5 s) saw rank 1 die first and killed the run outright
    assert time.monotonic() - start < 120
    status = read_run_record(run)["status"]
    assert (process.returncode, status) in ((1, "failed"), (-signal.SIGKILL, "running")), process.stderr[-3000:]
    assert not (run / "checkpoints" / "last.ckpt").exists()  # it died in the first of 20 epochs


@pytest.mark.slow
def test_a_ddp_rank_dying_in_a_sweep_fails_its_job_and_the_sweep_goes_on(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    kill = "+callbacks.kill={_target_:tests.test_scaling.KillRank,rank:1,lr:0.001}"  # job 0's rank 1
    run_train("-m", *short(*tiny_mnist), "accelerator=ddp_cpu", "lr=1e-3,1e-2", kill, f"hydra.sweep.dir={sweep}")
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["failed", "completed"], [r["error"] for r in records]
    assert records[1]["metrics"]["test/acc"] > 0.5  # the next job got a fresh process group and trained
    assert [r["status"] for r in csv.DictReader(open(sweep / "summary.csv"))] == ["failed", "completed"]


@pytest.mark.slow
def test_a_joblib_sweep_runs_jobs_in_parallel_processes_that_share_one_data_cache(tiny_mnist, tmp_path):
    data_dir, files = tiny_mnist
    cache = tmp_path / "cache"  # empty: both jobs start by fetching the same files into it
    mirror = f"data.sources=[{{_target_:mlplab.data.sources.Mirror,root:{data_dir},folder:MNIST/raw}}]"
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        "hydra/launcher=parallel",
        "torch_threads=1",
        *short(cache, files),
        mirror,
        "lr=1e-3,1e-2",
        f"hydra.sweep.dir={sweep}",
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert len({r["pid"] for r in records}) == 2  # two worker processes (in-process jobs would share one pid)
    assert all(r["torch_threads"] == 1 for r in records)
    assert "2 at a time, each slot in a process of its own" in result.stdout + result.stderr
    raw = cache / "MNIST" / "raw"
    assert {name: md5sum(raw / name) for name in files} == files
    assert not list(raw.glob(".fetch-*"))  # no scratch folder left by either job


@pytest.mark.slow
def test_a_submitit_local_sweep_runs_each_job_as_a_submitted_process_ddp_included(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    # job 1 is a 2-process DDP run started from inside a submitit worker (not from train.py's command line)
    run_train(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "torch_threads=1",
        *short(*tiny_mnist),
        "accelerator=cpu,ddp_cpu",
        f"hydra.sweep.dir={sweep}",
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert (
        all(r["job"]["id"] for r in records) and records[0]["job"]["id"] != records[1]["job"]["id"]
    )  # submitit job ids
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2
    assert (sweep / "1" / "train_rank1.log").is_file() and not (sweep / "0" / "train_rank1.log").exists()
    assert (sweep / "summary.md").is_file()


def test_an_optuna_search_of_three_trials_survives_a_failing_trial(tiny_mnist, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    failing = "+callbacks.fail={_target_:tests.sweeps.test_report.FailingJob,job:1}"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            "-m",
            "hparams_search=mnist_optuna",
            "hydra.sweeper.n_trials=3",
            *short(*tiny_mnist),
            failing,
            f"hydra.sweep.dir={sweep}",
        ],
    )
    main()

    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed", "diverged", "completed"]
    assert (
        records[1]["objective"] is None
    )  # the record is standard JSON; Optuna got -inf, the worst value (it refuses NaN)
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == max(r["objective"] for r in records if r["objective"] is not None)
    for job, record in zip(job_folders(sweep), records):
        params = dict(o.split("=", 1) for o in record["overrides"] if "=" in o)
        assert 1e-4 <= float(params["lr"]) <= 1e-1 and params["optimizer"] in {"adam", "adamw", "sgd"}
        assert 0.0 <= float(params["model.dropout"]) <= 0.5 and 1e-6 <= float(params["optimizer.weight_decay"]) <= 1e-2
        if record["status"] == "completed":
            hidden = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["model"][
                "hidden"
            ]
            assert hidden == [int(params["search.hidden1"]), int(params["search.hidden2"])]
    assert {r["metrics"].get("val/acc") == r["objective"] for r in records if r["status"] == "completed"} == {True}


def test_an_optuna_study_in_sql_storage_resumes_where_it_stopped(tiny_mnist, tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for sweep, trials in ((tmp_path / "first", 2), (tmp_path / "second", 3)):  # n_trials: the study's total
        monkeypatch.setattr(
            sys,
            "argv",
            [
                "train.py",
                "-m",
                "hparams_search=mnist_optuna",
                f"hydra.sweeper.n_trials={trials}",
                f"hydra.sweeper.storage={storage}",
                *short(*tiny_mnist),
                f"hydra.sweep.dir={sweep}",
            ],
        )
        main()

    study = optuna.load_study(study_name="mnist_mlp", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3  # the second sweep added one trial to the first two
    objectives = [
        read_run_record(job)["objective"] for sweep in ("first", "second") for job in job_folders(tmp_path / sweep)
    ]
    assert [t.value for t in study.trials] == objectives
    assert OmegaConf.load(tmp_path / "second" / "optimization_results.yaml").best_value == max(objectives)


def test_the_slurm_preset_asks_for_one_task_and_gpu_per_ddp_device(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            [
                "hydra/launcher=slurm",
                "accelerator=ddp",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
            ],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes, launcher.partition) == (4, 4, 2, "gpu")
    assert launcher.timeout_min == 240
    assert cfg.trainer.strategy._target_ == "mlplab.distributed.strategy.HydraDDPStrategy"
