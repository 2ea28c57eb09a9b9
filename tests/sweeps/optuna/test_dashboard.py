"""`optuna-dashboard <journal>` (README, "Looking at a search") serves a search's study: started on 127.0.0.1 at a
free port, its HTTP API lists the study and every trial with its state."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mlplab.utils.optuna_storage import open_storage

DASHBOARD = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.skipif(DASHBOARD is None, reason="optuna-dashboard is a dev extra: pip install -e '.[dev]'")
def test_the_dashboard_serves_every_trial_of_a_journal_study_with_its_state(tmp_path):
    journal = str(tmp_path / "optuna_journal.log")
    study = optuna.create_study(study_name="seen", storage=open_storage(journal), direction="maximize")
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
        trial.report(0.5, step=0)
        study.tell(trial, 0.9 if state == TrialState.COMPLETE else None, state=state)
    port = free_port()
    server = subprocess.Popen(
        [DASHBOARD, journal, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline and server.poll() is None:
            try:
                studies = get_json(f"http://127.0.0.1:{port}/api/studies")
            except OSError:
                time.sleep(0.2)
        assert studies is not None, (
            f"the dashboard did not answer: {server.stderr.read() if server.poll() is not None else ''}"
        )
        (listed,) = studies["study_summaries"]
        assert listed["study_name"] == "seen"
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{listed['study_id']}")
        assert [(t["number"], t["state"]) for t in detail["trials"]] == [
            (0, "Complete"),
            (1, "Pruned"),
            (2, "Fail"),
            (3, "Complete"),
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)
