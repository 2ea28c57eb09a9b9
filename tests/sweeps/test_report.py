"""Run records and the sweep report: real multiruns of train.py on tiny files, one job made to fail."""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mlplab.run.record import RECORD_NAME, RunRecorder, read_run_record
from mlplab.sweeps.report.jobs import best_job, read_jobs, swept_keys
from mlplab.sweeps.report.wandb import log_to_wandb
from mlplab.sweeps.report.write import write_report
from mlplab.utils.errors import ConfigError
from mlplab.utils.files import write_json
from tests.conftest import tiny_overrides
from tests.helpers.runs import run_main_in_process, run_train_process
from tests.helpers.wandb_offline import OfflineRun, offline_runs


def test_a_2x2_sweep_with_a_failing_job_reports_every_job_and_the_others_finish(
    tiny_mnist, tmp_path, monkeypatch, capsys
):
    sweep_dir = tmp_path / "sweep"
    failing = "+callbacks.fail={_target_:tests.helpers.callbacks.FailingJob,job:2}"  # (sgd, 1e-3); job 3 comes after it
    run_main_in_process(
        monkeypatch,
        "-m",
        "optimizer=adam,sgd",
        "lr=1e-3,1e-2",
        f"hydra.sweep.dir={sweep_dir}",
        *tiny_overrides(*tiny_mnist),
        "trainer.max_epochs=1",
        failing,
    )

    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [(r["job"], r["optimizer"], r["lr"], r["status"]) for r in rows] == [
        ("0", "adam", "0.001", "completed"),
        ("1", "adam", "0.01", "completed"),
        ("2", "sgd", "0.001", "diverged"),
        ("3", "sgd", "0.01", "completed"),
    ]
    assert "DivergedError: train/loss is nan at step 1" in rows[2]["error"]
    for row in (rows[0], rows[1], rows[3]):
        assert 0.0 <= float(row["test/acc"]) <= 1.0 and float(row["best val/acc"]) > 0 and row["epochs"] == "1"
        assert float(row["wall_time_s"]) > 0
    assert rows[2]["test/acc"] == ""
    failed = read_run_record(sweep_dir / "2")
    assert failed["objective"] is None  # the sweeper got the worst value (-inf when maximising); JSON has no -inf
    assert "optimizer=sgd" in failed["overrides"] and failed["job"]["num"] == 2

    best = max((r for r in rows if r["status"] == "completed"), key=lambda r: float(r["best val/acc"]))
    report = (sweep_dir / "summary.md").read_text()
    assert "| job | status | optimizer | lr | best val/acc |" in report and "4 jobs: 3 completed, 1 diverged" in report
    assert f"Best job: #{best['job']}" in report and str(sweep_dir / best["folder"]) in report
    assert (sweep_dir / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out  # the table and the best job's folder are printed at the end of the sweep
    assert f"Best job: #{best['job']}" in printed and "| 2 | diverged | sgd | 0.001 |" in printed


def test_a_bad_value_fails_its_job_only_and_a_single_run_reraises(tiny_mnist, tmp_path, monkeypatch):
    sweep_dir = tmp_path / "sweep"
    run_main_in_process(
        monkeypatch,
        "-m",
        "lr=-1,1e-2",
        f"hydra.sweep.dir={sweep_dir}",
        *tiny_overrides(*tiny_mnist),
        "trainer.max_epochs=1",
    )
    rows = list(csv.DictReader(open(sweep_dir / "summary.csv")))
    assert [r["status"] for r in rows] == ["failed", "completed"]
    assert rows[0]["error"] == "ConfigError: lr=-1 is invalid: must be a number > 0"

    run_dir = tmp_path / "single"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra re-raises instead of printing and exiting
    with pytest.raises(ConfigError):
        run_main_in_process(monkeypatch, "lr=-1", f"hydra.run.dir={run_dir}", *tiny_overrides(*tiny_mnist))
    assert read_run_record(run_dir)["status"] == "failed"


def test_a_single_run_records_its_metrics_epochs_and_overrides(tiny_mnist, tmp_path, monkeypatch):
    run_dir = tmp_path / "single"
    run_main_in_process(monkeypatch, f"hydra.run.dir={run_dir}", *tiny_overrides(*tiny_mnist), "lr=2e-3")
    record = read_run_record(run_dir)
    assert record["status"] == "completed" and record["epochs"] == 2 and record["error"] is None
    assert "lr=2e-3" in record["overrides"]
    assert record["objective"] == record["metrics"]["val/acc"]
    assert record["monitor"] == {"metric": "val/acc", "mode": "max", "best": record["metrics"]["val/acc_best"]}
    assert record["monitor"]["best"] >= record["metrics"]["val/acc"]  # the best epoch, not the last one
    assert 0 < record["wall_time_s"] and record["finished_at"] >= record["started_at"]


def test_a_nan_loss_without_the_divergence_check_is_recorded_diverged(tiny_mnist, tmp_path, monkeypatch):
    # no DivergedError: the check is switched off, so the run goes to its end with NaN weights
    run_dir = tmp_path / "single"
    run_main_in_process(
        monkeypatch,
        f"hydra.run.dir={run_dir}",
        *tiny_overrides(*tiny_mnist),
        "trainer.max_epochs=1",
        "optimizer=sgd",
        "lr=1e4",
        "model.hidden=[32]",
        "callbacks.divergence=null",
        "logger=csv",
    )
    record = _strict_json(run_dir / RECORD_NAME)
    assert (record["status"], record["error"], record["objective"]) == ("diverged", "a loss is NaN or infinite", None)
    assert record["metrics"]["train/loss"] is None and record["epochs"] == 1  # NaN, written as JSON's null
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    assert any(math.isnan(float(r["train/loss"])) for r in rows if r.get("train/loss"))  # it did train to NaN


def _job(
    folder: Path,
    num: int,
    status: str,
    best: float | None,
    overrides: list[str],
    mode: str = "max",
    test: float | None = None,
) -> None:
    test = best if test is None else test
    write_json(
        folder / str(num) / RECORD_NAME,
        {
            "status": status,
            "overrides": overrides,
            "job": {"num": num},
            "monitor": {"metric": "val/loss", "mode": mode, "best": best},
            "metrics": {"test/loss": test} if test is not None else {},
            "epochs": 1,
            "wall_time_s": 1.0,
            "error": None,
            "started_at": "2026-01-01T00:00:00+00:00",
        },
    )


def test_jobs_without_a_final_record_count_as_failed_and_min_mode_picks_the_lowest(tmp_path):
    _job(tmp_path, 0, "completed", 0.5, ["lr=0.1", "seed=1"], mode="min")
    _job(tmp_path, 1, "completed", 0.2, ["lr=0.01", "seed=1"], mode="min")
    _job(tmp_path, 2, "running", None, ["lr=0.001", "seed=1"], mode="min")  # killed mid-run
    (tmp_path / "3" / ".hydra").mkdir(parents=True)  # never reached train.py's main
    OmegaConf.save(OmegaConf.create(["lr=1.0", "seed=1"]), tmp_path / "3" / ".hydra" / "overrides.yaml")

    jobs = read_jobs(tmp_path)
    assert [(job["num"], job["status"]) for job in jobs] == [
        (0, "completed"),
        (1, "completed"),
        (2, "failed"),
        ("3", "failed"),
    ]
    assert "killed" in jobs[2]["error"] and "no run_record.json" in jobs[3]["error"]
    assert swept_keys(jobs) == ["lr"]
    assert best_job(jobs)["num"] == 1
    report = write_report(tmp_path)
    assert report["best"]["num"] == 1 and report["plot"] is not None
    assert "2 completed, 2 failed" in (tmp_path / "summary.md").read_text()


def test_the_table_goes_to_a_wandb_summary_run_in_the_sweeps_group(tmp_path):
    _job(tmp_path, 0, "completed", 0.5, ["lr=0.1"])
    _job(tmp_path, 1, "failed", None, ["lr=10"])
    report = write_report(tmp_path)
    config = OmegaConf.create({"logger": {"wandb": {"project": "mlplab-test", "group": "sweep-42"}}})
    log_to_wandb(config, tmp_path, report)  # WANDB_MODE=offline (conftest)
    [run] = [OfflineRun(path) for path in offline_runs(tmp_path / "wandb")]  # the sweep folder's wandb/
    assert (run.group, run.job_type, run.name) == ("sweep-42", "sweep-summary", "sweep-42-summary")
    assert run.exit_code == 0 and run.summary["best_job"] == 0 and run.summary["best_value"] == 0.5
    columns, rows = run.table("sweep/summary")
    assert columns == report["columns"]
    assert [(row[0], row[1], row[columns.index("test/loss")]) for row in rows] == [
        (0, "completed", 0.5),
        (1, "failed", None),
    ]


def test_the_wandb_mode_of_the_summary_run_is_decided_as_the_jobs_is(tmp_path, monkeypatch):
    _job(tmp_path, 0, "completed", 0.5, ["lr=0.1"])
    report = write_report(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    log_to_wandb(
        OmegaConf.create({"logger": {"wandb": {"project": "mlplab-test", "mode": "disabled"}}}), tmp_path, report
    )
    assert offline_runs(tmp_path / "wandb") == []  # logger.wandb.mode wins over WANDB_MODE, as in WandbLogger


def _strict_json(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path} is not standard JSON: it holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_run_records_are_standard_json_and_a_failed_write_keeps_the_old_record(compose_config, tiny_mnist, monkeypatch):
    cfg = compose_config(*tiny_overrides(*tiny_mnist))
    recorder = RunRecorder(cfg)
    path = recorder.path
    running = path.read_text()
    monkeypatch.setattr(
        "os.fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full"))
    )  # fails after writing the data
    with pytest.raises(OSError, match="disk full"):
        recorder.completed({"train/loss": math.nan, "val/acc": 0.5, "epochs": 1})
    assert path.read_text() == running and [p.name for p in path.parent.iterdir()] == [RECORD_NAME]  # no temporary left
    monkeypatch.undo()

    # killed mid-write: a child process may write 200 bytes, and the kernel kills it (SIGXFSZ) as it writes more
    pid = os.fork()
    if pid == 0:  # the child
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it (a write then fails instead): a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (200, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            recorder.completed({"val/acc": 0.5, "epochs": 1})
        finally:
            os._exit(0)  # not reached when the write was killed
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXFSZ
    assert path.read_text() == running  # the previous record, whole
    [partial] = [p for p in path.parent.iterdir() if p.name != RECORD_NAME]  # what the kill cut short
    assert partial.stat().st_size == 200 and '"status": "completed"' in partial.read_text()
    partial.unlink()

    assert recorder.completed({"train/loss": math.nan, "val/loss": math.inf, "val/acc": 0.5, "epochs": 1}) == -math.inf
    record = _strict_json(path)
    assert (record["status"], record["objective"]) == ("diverged", None)
    assert record["metrics"] == {"train/loss": None, "val/loss": None, "val/acc": 0.5}

    assert recorder.failed(RuntimeError("boom")) == -math.inf  # what a sweeper gets: a number Optuna accepts
    record = _strict_json(path)
    assert (record["status"], record["objective"], record["error"]) == ("failed", None, "RuntimeError: boom")


def test_max_epochs_0_is_refused_before_anything_runs(compose_config, tiny_mnist, tmp_path):
    from mlplab.train import train

    overrides = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("trainer.max_epochs")]
    for key, override in (("max_epochs", "trainer.max_epochs=0"), ("max_steps", "trainer.max_steps=0")):
        with pytest.raises(ConfigError, match=f"trainer.{key}=0 is invalid: must be an integer >= 1"):
            train(compose_config(*overrides, override))
    assert not (tmp_path / "run" / "checkpoints").exists()


def _by_hand(values: list[float]) -> tuple[float, float | None, int]:
    """(mean, sample standard deviation, count), written out."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std, n


def test_repeats_over_seeds_and_folds_are_aggregated_per_configuration(tmp_path):
    jobs = [  # (lr, seed, fold, status, best, test)
        ("0.1", 1, 0, "completed", 0.50, 0.55),
        ("0.1", 2, 0, "completed", 0.40, 0.47),
        ("0.1", 3, 0, "completed", 0.45, 0.46),
        ("0.01", 1, 0, "completed", 0.30, 0.31),
        ("0.01", 2, 0, "failed", None, None),
        ("0.01", 3, 0, "completed", 0.20, 0.26),
    ]
    for num, (lr, seed, fold, status, best, test) in enumerate(jobs):
        _job(tmp_path, num, status, best, [f"lr={lr}", f"seed={seed}", f"data.fold={fold}"], mode="min", test=test)
    report = write_report(tmp_path)
    columns, _ = report["by_config"]
    assert columns[:3] == ["lr", "jobs", "completed"]  # data.fold is a repeat key too, but was not varied
    with (tmp_path / "summary_by_config.csv").open() as f:
        written = list(csv.DictReader(f))
    for lr, row in zip(("0.1", "0.01"), written):
        mine = [job for job in jobs if job[0] == lr]
        assert (row["lr"], row["jobs"], row["completed"]) == (lr, "3", str(sum(job[3] == "completed" for job in mine)))
        for metric, index in (("best val/loss", 4), ("test/loss", 5)):
            mean, std, n = _by_hand([job[index] for job in mine if job[3] == "completed"])
            assert float(row[f"{metric} mean"]) == pytest.approx(mean, rel=1e-12)
            assert float(row[f"{metric} std"]) == pytest.approx(std, rel=1e-12) and int(row[f"{metric} n"]) == n
    text = (tmp_path / "summary.md").read_text()
    mean, std, n = _by_hand([0.31, 0.26])
    assert (
        "## By configuration (mean ± std (n) over seed)" in text
        and f"| 0.01 | 3 | 2 | 0.25 ± 0.071 (2) | {mean:.4g} ± {std:.2g} (2) |" in text
    )
    assert report["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # which keys are repeats is the report's setting: with only data.fold, seed is part of the configuration
    assert write_report(tmp_path, repeat_keys=("data.fold",))["by_config"] is None


def test_a_sweep_stopped_by_sigterm_reports_what_ran_and_lists_the_jobs_not_started(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    stop = f"+callbacks.stop={{_target_:tests.helpers.callbacks.SignalJob,job:1,signum:{int(signal.SIGTERM)}}}"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    run_train_process(
        "-m",
        "lr=1e-3,2e-3,3e-3",
        *quick,
        "callbacks=none",
        "logger=csv",
        "trainer.max_epochs=1",
        stop,
        f"hydra.sweep.dir={sweep}",
        expect_code=143,
        timeout=300,
    )
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["lr"], r["status"]) for r in rows] == [
        ("0", "0.001", "completed"),
        ("1", "0.002", "interrupted"),
        ("2", "0.003", "not started"),
    ]
    assert rows[1]["error"] == "stopped by SIGTERM during fit (exit code 143)" and rows[2]["folder"] == ""
    text = (sweep / "summary.md").read_text()
    assert "3 jobs: 1 completed, 1 interrupted, 1 not started" in text and "| 2 | not started | 0.003 |" in text
    assert not (sweep / "2").exists()


def test_the_repeat_keys_are_a_setting_of_the_report_in_the_hydra_config(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from mlplab.config.location import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        default = compose("train", return_hydra_config=True).hydra.callbacks.sweep_report
        chosen = compose("train", ["hydra.callbacks.sweep_report.repeat_keys=[data.fold]"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert instantiate(default).repeat_keys == ("seed", "data.fold")
    assert instantiate(chosen.hydra.callbacks.sweep_report).repeat_keys == ("data.fold",)


def test_a_tags_column_appears_only_when_a_job_has_tags(tmp_path):
    for num, lr in enumerate(("0.1", "0.01")):
        _job(tmp_path / "plain", num, "completed", 0.5, [f"lr={lr}"])
        _job(tmp_path / "tagged", num, "completed", 0.5, [f"lr={lr}", "tags=[baseline,v2]"])
        record = read_run_record(tmp_path / "tagged" / str(num))
        write_json(tmp_path / "tagged" / str(num) / RECORD_NAME, {**record, "tags": ["baseline", "v2"]})

    assert "tags" not in write_report(tmp_path / "plain")["columns"]
    report = write_report(tmp_path / "tagged")
    assert report["columns"][:4] == ["job", "status", "lr", "tags"]
    assert [row["tags"] for row in report["rows"]] == ["baseline v2", "baseline v2"]
    assert "| baseline v2 |" in (tmp_path / "tagged" / "summary.md").read_text()


def test_a_job_another_process_trains_is_reported_running_elsewhere_never_failed_or_best(tmp_path):
    from mlplab.utils.locks import LOCK_NAME

    _job(tmp_path, 0, "completed", 0.5, ["lr=0.1"])
    _job(tmp_path, 1, "running", None, ["lr=0.01"])  # a parallel rerun trains it now
    _job(tmp_path, 2, "interrupted", 0.9, ["lr=0.001"])  # a parallel rerun resumes it now: 0.9 is stale
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "files = [open(p, 'a') for p in sys.argv[1:]]\n"
            "[fcntl.flock(f, fcntl.LOCK_EX) for f in files]\n"
            "print('held', flush=True)\n"
            "time.sleep(120)",
            str(tmp_path / "1" / LOCK_NAME),
            str(tmp_path / "2" / LOCK_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        report = write_report(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert [(row["job"], row["status"], row["best val/loss"]) for row in report["rows"]] == [
        (0, "completed", 0.5),
        (1, "running elsewhere", None),
        (2, "running elsewhere", None),
    ]
    assert report["best"]["num"] == 0
    assert "3 jobs: 1 completed, 2 running elsewhere" in (tmp_path / "summary.md").read_text()

    # the report is written from the records as they are when it is written: the holder has gone
    rows = write_report(tmp_path)["rows"]
    assert [row["status"] for row in rows] == ["completed", "failed", "interrupted"]
    assert rows[1]["error"].startswith("killed")


def test_a_report_killed_while_writing_leaves_no_temporary_file_after_the_next_report(tmp_path):
    _job(tmp_path, 0, "completed", 0.5, ["lr=0.1"])
    _job(tmp_path, 1, "completed", 0.4, ["lr=0.01"])
    pid = os.fork()
    if pid == 0:  # the child: killed by the kernel (SIGXFSZ) as it writes its 101st byte of a file
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            write_report(tmp_path)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXFSZ
    [left] = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # what the kill cut short
    assert left.startswith(".summary.csv.")

    (tmp_path / f".summary.md.{os.getpid()}-live.tmp").write_text("a report this process writes now")
    write_report(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        f".summary.md.{os.getpid()}-live.tmp",  # its writer is alive: not touched
        "summary.csv",
        "summary.md",
        "summary.png",
    ]


def _drawn(monkeypatch) -> list:
    """The figures the report saves, kept for the test to read back (they are still written too)."""
    from mlplab.sweeps.report import plot, write

    figures = []
    plot_save = plot.save

    def save(figure, path):
        figures.append(figure)
        plot_save(figure, path)

    monkeypatch.setattr(write, "save", save)
    monkeypatch.setattr(plot, "save", save)
    return figures


def test_a_search_is_drawn_as_its_objective_per_trial_with_the_best_so_far(tmp_path, monkeypatch):
    figures = _drawn(monkeypatch)
    bests = [0.9, 0.7, 0.8, 0.5, 0.6, 0.55, 0.52, 0.4]  # val/loss, min: the best so far falls at trials 1, 3, 7
    for num, best in enumerate(bests):  # drawn values, each trial its own, as a sampler gives them
        lr, dropout = 10 ** (-4 + 0.37 * num), 0.05 * num + 0.013
        _job(tmp_path, num, "completed", best, [f"lr={lr:.6g}", f"model.dropout={dropout:.4g}"], mode="min")
    write_report(tmp_path)
    (figure,) = figures
    ax = figure.axes[0]
    trials, best_so_far = ax.get_lines()[:2]
    assert list(trials.get_xdata()) == list(range(8)) and list(trials.get_ydata()) == bests
    assert list(best_so_far.get_ydata()) == [0.9, 0.7, 0.7, 0.5, 0.5, 0.5, 0.5, 0.4]
    with (tmp_path / "summary.csv").open() as f:
        assert [float(row["best val/loss"]) for row in csv.DictReader(f)] == bests  # the numbers it draws
    assert len(ax.get_legend().get_texts()) == 2  # trial, best so far: not one entry per trial's parameters


def test_folds_of_one_configuration_are_drawn_one_point_each_around_their_mean(tmp_path, monkeypatch):
    figures = _drawn(monkeypatch)
    tests = [0.81, 0.86, 0.84, 0.9, 0.79]
    for fold, test in enumerate(tests):
        _job(tmp_path, fold, "completed", test, ["data.folds=5", f"data.fold={fold}"], test=test)
    write_report(tmp_path, repeat_keys=("data.fold",))
    (figure,) = figures
    ax = figure.axes[0]
    points = ax.get_lines()[0]
    assert list(points.get_xdata()) == [0, 1, 2, 3, 4] and list(points.get_ydata()) == tests
    mean_line = ax.get_lines()[1]
    assert mean_line.get_ydata()[0] == pytest.approx(sum(tests) / 5)
    low, high = ax.get_ylim()
    assert low > 0.5 and high < 1.0  # the axis shows the folds' spread, not a bar from 0
