"""W&B logging, always offline: what a run and a sweep leave in W&B, read back with `wandb leet inspect`."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplab.config.location import PROJECT_ROOT
from mlplab.loggers.wandb import WandbLogger, choose_mode, finish_run, has_credentials
from mlplab.run.record import read_run_record
from mlplab.train import main, train
from tests.conftest import tiny_overrides
from tests.helpers.wandb_offline import OfflineRun, offline_runs

FAKE_KEY = "0123456789abcdef" * 2 + "01234567"  # the length of a W&B key; valid nowhere


def without_pictures(overrides: list[str]) -> list[str]:
    """Overrides with no callbacks at all: a quicker run where pictures are not the point."""
    return [o for o in overrides if not o.startswith("callbacks.")] + ["callbacks=none"]


def files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


@pytest.fixture
def no_credentials(monkeypatch, tmp_path) -> Path:
    """An empty home and no W&B variables: a machine where nobody ran `wandb login`."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_MODE", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_credentials_are_a_key_in_the_environment_or_a_netrc_entry_for_the_server(no_credentials, monkeypatch):
    assert not has_credentials()
    netrc = no_credentials / ".netrc"
    netrc.write_text(f"machine example.com login user password {FAKE_KEY}\n")
    assert not has_credentials()
    netrc.write_text(f"machine api.wandb.ai login user password {FAKE_KEY}\n")
    assert has_credentials()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not has_credentials()  # the entry is for another server than the one configured
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert has_credentials()


def test_the_mode_is_WANDB_MODE_else_online_with_credentials_else_offline(no_credentials, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="mlplab.loggers.wandb"):
        assert choose_mode(no_credentials / "run") == "offline"
    assert "logging offline" in caplog.text and f"wandb sync {no_credentials / 'run' / 'wandb'}" in caplog.text
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert choose_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert choose_mode() == "disabled"


def test_a_run_logs_its_config_metrics_and_pictures_to_wandb(compose_config, tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)  # as on a user's machine (WANDB_MODE=offline keeps it unused)
    train(compose_config(*tiny_overrides(*tiny_mnist), "model.hidden=[10]", "lr=1e-4"))
    folder = tmp_path / "run"
    (path,) = offline_runs(folder / "wandb")
    run = OfflineRun(path)
    assert run.state == "finished" and run.job_type == "train" and run.group is None
    # the config: the whole resolved run config, plus the option picked in each config group
    assert run.config["lr"] == 1e-4 and run.config["model"]["hidden"] == [10]
    assert run.config["optimizer"]["_target_"] == "torch.optim.Adam" and run.config["choices"]["optimizer"] == "adam"
    metrics = {
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "test/loss",
        "test/acc",
        "lr",
        "model/params",
        "time/epoch_s",
        "time/samples_per_s",
    }
    pictures = {"weights/first_layer", "test/confusion_matrix", "test/misclassified", "test/saliency"}
    assert metrics | pictures <= run.summary.keys()
    assert run.summary["model/params"] == 784 * 10 + 10 + 10 * 10 + 10
    assert len([row for row in run.history if "val/acc" in row]) == 2  # once per epoch
    assert len([row for row in run.history if "train/loss" in row]) > 2  # per step
    # one weight picture per epoch, the very PNGs saved in the run folder
    logged = run.images("weights/first_layer")
    assert [p.read_bytes() for p in logged] == [
        (folder / "images" / "weights" / f"first_layer_epoch00{e}.png").read_bytes() for e in (0, 1)
    ]
    assert files_containing(folder, FAKE_KEY) == []
    assert run.artifacts == []  # logger.wandb.log_model=false, the default: checkpoints stay in the run folder


def test_log_model_logs_the_best_and_last_checkpoints_as_artifacts(compose_config, tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # where wandb stages artifact files
    worse = "+callbacks.worse={_target_:tests.helpers.callbacks.WorseLastEpoch}"  # best (epoch 0) != last (epoch 1)
    train(compose_config(*tiny_overrides(*tiny_mnist), "callbacks=lean", "logger.wandb.log_model=true", worse))
    checkpoints = tmp_path / "run" / "checkpoints"
    (path,) = offline_runs(tmp_path / "run" / "wandb")
    artifacts = OfflineRun(path).artifacts
    # at the end of training, once each: the best checkpoint (aliases best and latest), then last.ckpt
    assert [(a["type"], json.loads(a["metadata"])["original_filename"], set(a["aliases"])) for a in artifacts] == [
        ("model", "best-epoch000.ckpt", {"best", "latest"}),  # in either order
        ("model", "last.ckpt", {"latest"}),
    ]
    for artifact, name in zip(artifacts, ("best-epoch000.ckpt", "last.ckpt")):
        [entry] = artifact["manifest"]["contents"]  # the checkpoint file itself, byte for byte (md5)
        digest = base64.b64encode(hashlib.md5((checkpoints / name).read_bytes()).digest()).decode()
        assert (entry["path"], entry["digest"]) == ("model.ckpt", digest)


def test_each_sweep_job_is_its_own_wandb_run_and_the_sweep_one_group(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    sweep_dir = tmp_path / "sweep"
    argv = [
        "train.py",
        "-m",
        "optimizer=adam,sgd",
        "lr=1e-3,1e-2",
        f"hydra.sweep.dir={sweep_dir}",
        *without_pictures(tiny_overrides(*tiny_mnist)),
        "trainer.max_epochs=1",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    runs = [OfflineRun(path) for job in range(4) for path in offline_runs(sweep_dir / str(job) / "wandb")]
    assert len(runs) == 4 and len({run.id for run in runs}) == 4  # one run per job, in the job's folder
    assert all(run.exit_code == 0 for run in runs)  # each finished before the next job started
    assert {run.group for run in runs} == {"sweep"} and {run.job_type for run in runs} == {"train"}
    assert sorted(run.name for run in runs) == [
        "optimizer=adam lr=0.001",
        "optimizer=adam lr=0.01",
        "optimizer=sgd lr=0.001",
        "optimizer=sgd lr=0.01",
    ]
    assert files_containing(tmp_path, FAKE_KEY) == []  # not in .hydra/, logs, W&B files


def test_without_credentials_a_run_logs_offline_and_never_prompts(no_credentials, tiny_mnist, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        *without_pictures(tiny_overrides(*tiny_mnist)),
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    # no terminal and a bounded wait: a prompt for a key or a wait for a server fails the test instead of hanging it
    result = subprocess.run(
        command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No W&B credentials" in result.stdout + result.stderr and "wandb sync" in result.stdout + result.stderr
    (path,) = offline_runs(tmp_path / "run" / "wandb")
    assert OfflineRun(path).exit_code == 0


def test_an_online_start_without_a_reachable_server_logs_offline_instead(no_credentials, monkeypatch, tmp_path):
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    # settings, not environment variables: wandb reads those once per process, and other tests started it already
    unreachable = wandb.Settings(base_url="http://127.0.0.1:9", init_timeout=2)  # the discard port: no server there
    logger = WandbLogger(project="mlplab-test", save_dir=str(tmp_path), settings=unreachable)
    try:
        assert logger.experiment.settings.mode == "offline"
    finally:
        finish_run()
    assert len(offline_runs(tmp_path / "wandb")) == 1


def test_finishing_a_failed_run_marks_it_failed_and_frees_the_process_for_the_next_run(tmp_path):
    import wandb

    WandbLogger(project="mlplab-test", save_dir=str(tmp_path)).experiment.log({"x": 1})
    finish_run(failed=True)
    assert wandb.run is None
    (path,) = offline_runs(tmp_path / "wandb")
    assert OfflineRun(path).exit_code == 1


def test_lightnings_wandb_logger_still_adds_what_ours_removes():
    """WandbLogger drops the `anonymous=None` that Lightning puts into `_wandb_init` (wandb warns about it). When this
    fails, Lightning changed what it keeps there: check WandbLogger.__init__ and `experiment`, which rely on it."""
    from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

    theirs = LightningWandbLogger(project="mlplab-test")._wandb_init
    assert "anonymous" in theirs and theirs["anonymous"] is None
    ours = WandbLogger(project="mlplab-test", mode="disabled")._wandb_init
    assert "anonymous" not in ours and ours["mode"] == "disabled"


def test_a_seed_sweep_is_browsable_in_one_wandb_folder_with_its_aggregated_summary_run(
    tiny_mnist, tmp_path, monkeypatch, capsys
):
    sweep_dir = tmp_path / "sweep"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            "-m",
            "lr=1e-3,1e-2",
            "seed=1,2",
            f"hydra.sweep.dir={sweep_dir}",
            *without_pictures(tiny_overrides(*tiny_mnist)),
            "trainer.max_epochs=1",
        ],
    )
    main()

    # every job keeps its run in its own folder, and the sweep folder's wandb/ holds them all and the summary run
    job_runs = {
        path.name: OfflineRun(path) for job in range(4) for path in offline_runs(sweep_dir / str(job) / "wandb")
    }
    assert len(job_runs) == 4
    runs = {path.name: OfflineRun(path) for path in offline_runs(sweep_dir / "wandb")}
    [summary_name] = [name for name, run in runs.items() if run.job_type == "sweep-summary"]
    assert set(runs) - {summary_name} == set(job_runs)
    assert {runs[name].id for name in job_runs} == {run.id for run in job_runs.values()}  # read through the links
    summary = runs[summary_name]
    assert (summary.group, summary.name, summary.exit_code, summary.state) == ("sweep", "sweep-summary", 0, "finished")
    # its best job is the report's, with that job's best value and folder, and its picture is summary.png
    best = summary.summary["best_job"]
    assert f"Best job: #{best} " in (sweep_dir / "summary.md").read_text()
    assert summary.summary["best_value"] == read_run_record(sweep_dir / str(best))["monitor"]["best"]
    assert summary.summary["best_folder"] == str(sweep_dir / str(best))
    plot = summary.path / "files" / summary.summary["sweep/summary_plot"]["path"]  # one image: its file, as a table's
    assert plot.read_bytes() == (sweep_dir / "summary.png").read_bytes()
    dry_run = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", "--dry-run", str(sweep_dir / "wandb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = dry_run.stdout + dry_run.stderr + "\n"
    # one `wandb sync` uploads them all (the summary run may be listed as latest-run/, wandb's link to it)
    assert "Would sync 5 run(s)" in listed and all(f"/run-{run.id}.wandb\n" in listed for run in runs.values())

    # the aggregate over seeds, by hand from the jobs' records: in summary_by_config.csv, the printed table and W&B
    records = [read_run_record(sweep_dir / str(job)) for job in range(4)]
    with (sweep_dir / "summary_by_config.csv").open() as f:
        by_config = list(csv.DictReader(f))
    columns, table = summary.table("sweep/summary_by_config")
    assert [row["lr"] for row in by_config] == ["0.001", "0.01"] and [row[0] for row in table] == ["0.001", "0.01"]
    for row, cells in zip(by_config, table):
        mine = [r for r in records if f"lr={row['lr']}" in r["overrides"]]
        for metric, values in (
            ("best val/acc", [r["monitor"]["best"] for r in mine]),
            ("test/acc", [r["metrics"]["test/acc"] for r in mine]),
        ):
            mean = sum(values) / 2
            std = math.sqrt(sum((v - mean) ** 2 for v in values))  # n - 1 = 1
            assert float(row[f"{metric} mean"]) == pytest.approx(mean, rel=1e-12, abs=1e-15)
            assert float(row[f"{metric} std"]) == pytest.approx(std, rel=1e-9, abs=1e-15) and row[f"{metric} n"] == "2"
            assert cells[columns.index(f"{metric} mean")] == pytest.approx(mean, rel=1e-12, abs=1e-15)
    assert "By configuration (mean ± std (n) over seed)" in capsys.readouterr().out
    _, jobs_table = summary.table("sweep/summary")
    with (sweep_dir / "summary.csv").open() as f:
        assert [[row[c] for c in ("job", "status")] for row in csv.DictReader(f)] == [
            [str(r[0]), r[1]] for r in jobs_table
        ]


def test_the_runs_tags_reach_its_wandb_run_and_its_run_record(compose_config, tiny_mnist, tmp_path):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "trainer.max_epochs=1", "callbacks=lean", "tags=[baseline,v2]")
    main(cfg)  # train.py's entry point: it keeps run_record.json
    (path,) = offline_runs(tmp_path / "run" / "wandb")
    run = OfflineRun(path)
    assert run.run.get("tags") == ["baseline", "v2"]
    assert read_run_record(tmp_path / "run")["tags"] == ["baseline", "v2"]
