"""How a stack ends leaves each member what a basic sweep job leaves (issue 26, items 4-6): a member done training
keeps its end through a later stop of its stack; an interrupted member has its CSV rows, train.log and the command
that resumes it; members hold their job locks, so a second identical command trains nothing twice."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

from mlplab.config.location import PROJECT_ROOT
from mlplab.run.record import read_run_record
from tests.helpers.housing_sweeps import housing_data
from tests.helpers.runs import job_folders

ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}


def start(data, sweep, *overrides):
    return subprocess.Popen(
        [sys.executable, "train.py", "-m", *data, *overrides, "hydra/launcher=stacked", f"hydra.sweep.dir={sweep}"],
        cwd=PROJECT_ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_member_that_stopped_early_stays_completed_when_its_stack_is_stopped_and_the_others_resume(tmp_path):
    sweep = tmp_path / "sweep"
    # lr 1e-9 cannot improve: its early stopping stops it after epoch 1; lr 3e-3 improves for many epochs
    process = start(
        housing_data(tmp_path),
        sweep,
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=1e-3",
        "callbacks.weights.every_n_epochs=1",
        "trainer.max_epochs=200",
        "lr=1e-9,3e-3",
    )
    lines = []
    for line in process.stdout:  # the stack logs as it goes: stop it right after member #0 stopped early
        lines.append(line)
        if "Stacked job #0 stops early" in line:
            process.send_signal(signal.SIGTERM)
            break
    output = "".join(lines) + process.communicate(timeout=120)[0]
    assert process.returncode == 143, output[-3000:]

    first, second = (read_run_record(job) for job in job_folders(sweep))
    assert (first["status"], first["epochs"]) == ("completed", 2), first  # its end survived the stop
    assert first["metrics"]["test/rmse"] is not None
    assert [p.name for p in sorted((sweep / "0" / "images" / "weights").iterdir())] == [
        "first_layer_epoch000.png",
        "first_layer_epoch001.png",
    ]
    assert (second["status"], second["signal"]) == ("interrupted", "SIGTERM"), second
    rows = list(csv.DictReader((sweep / "1" / "csv" / "metrics.csv").open()))
    assert any(row.get("train/loss") for row in rows) and any(row.get("val/rmse") for row in rows)
    assert "Resume with: " in (sweep / "1" / "train.log").read_text()
    assert "Resume with: " in output and "Stack epoch 2/200 (" in output
    assert output.count("Tip: For seamless cloud logging") <= 1


def test_two_identical_stacked_commands_at_once_train_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    data = housing_data(tmp_path)
    # long enough that the second command plans while the first still trains
    command = ["optimizer=adam", "trainer.max_epochs=300", "lr=1e-3,3e-3"]
    first = start(data, sweep, *command)
    deadline = time.monotonic() + 120
    while not (sweep / "1" / "run_record.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)  # the stack started its members: the second command comes while they train
    second = start(data, sweep, *command)
    outputs = [first.communicate(timeout=300)[0], second.communicate(timeout=300)[0]]
    assert [first.returncode, second.returncode] == [0, 0], outputs[1][-3000:]
    assert [read_run_record(job)["status"] for job in job_folders(sweep)] == ["completed", "completed"]
    assert sum(output.count("Test metrics") for output in outputs) == 2, outputs  # each job trained and tested once
    assert "another process is training it now" in outputs[1] or "held by another process" in outputs[1]
