"""A signal stops a run in every phase the same way: exit 143 (SIGTERM) or 130 (Ctrl-C), one log line, and
run_record.json saying `interrupted` with the signal and the phase. Each case is a real `python train.py` on
tiny files that sends the signal to itself from inside the phase."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from mlplab.callbacks.baselines import Baselines
from mlplab.callbacks.confusion_matrix import ConfusionMatrix
from mlplab.config.location import PROJECT_ROOT
from mlplab.data.images import MNISTDataModule
from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)


class SignalAt(L.Callback):
    """Sends `signum` to this process the first time hook `hook` runs ("__init__": when the callback is built,
    during start-up)."""

    def __init__(self, hook: str, signum: int, times: int = 1) -> None:
        self.hook, self.signum, self.times, self.sent = hook, signum, times, False
        if hook == "__init__":
            send(signum)

    def _maybe(self, hook: str) -> None:
        if hook == self.hook and not self.sent:
            self.sent = True
            for _ in range(self.times):
                send(self.signum)

    def on_train_batch_end(self, *args) -> None:
        self._maybe("on_train_batch_end")

    def on_validation_batch_end(self, *args) -> None:
        self._maybe("on_validation_batch_end")

    def on_test_batch_end(self, *args) -> None:
        self._maybe("on_test_batch_end")


class SignallingMNIST(MNISTDataModule):
    """MNIST that is sent `signum` while it prepares its files."""

    def __init__(self, signum: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.signum = signum

    def prepare_data(self) -> None:
        send(self.signum)
        super().prepare_data()


class SignallingBaselines(Baselines):
    """Baselines that are sent `signum` as they start fitting."""

    def __init__(self, signum: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.signum = signum

    def fit_and_score(self, datamodule):
        send(self.signum)
        return super().fit_and_score(datamodule)


class SignallingConfusionMatrix(ConfusionMatrix):
    """The confusion-matrix picture, sent `signum` as it starts drawing."""

    def __init__(self, signum: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.signum = signum

    def on_test_end(self, trainer, pl_module) -> None:
        send(self.signum)
        super().on_test_end(trainer, pl_module)


def _callback(hook: str, signum: int, times: int = 1) -> str:
    return (
        f"+callbacks.signal={{_target_:tests.run.test_stops.SignalAt,hook:{hook},signum:{int(signum)},times:{times}}}"
    )


TERM, INT = signal.SIGTERM, signal.SIGINT
CASES = {  # phase: (signal, the overrides that send it in that phase)
    "start-up": (INT, [_callback("__init__", INT)]),
    "data": (TERM, ["data._target_=tests.run.test_stops.SignallingMNIST", f"+data.signum={int(TERM)}"]),
    "fit": (INT, [_callback("on_train_batch_end", INT)]),
    "fit, Ctrl-C twice": (INT, [_callback("on_train_batch_end", INT, times=2)]),  # at once: Lightning's own exit says 1
    # during the last epoch's validation: there is no training batch left to stop at, the test must not start
    "validation": (TERM, [_callback("on_validation_batch_end", TERM), "trainer.max_epochs=1"]),
    "test": (TERM, [_callback("on_test_batch_end", TERM)]),
    "test, Ctrl-C": (INT, [_callback("on_test_batch_end", INT)]),
    "baselines": (
        INT,
        [
            "callbacks.baselines._target_=tests.run.test_stops.SignallingBaselines",
            f"+callbacks.baselines.signum={int(INT)}",
        ],
    ),
    "pictures": (
        TERM,
        [
            "callbacks.confusion_matrix._target_=tests.run.test_stops.SignallingConfusionMatrix",
            f"+callbacks.confusion_matrix.signum={int(TERM)}",
        ],
    ),
}


def run_train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "src")])}
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), *overrides]
    return subprocess.run(
        command,
        check=False,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ~15 s each: the case the issue reported (SIGTERM in the test phase: exit 0, no word) runs in every `make test-fast`
@pytest.mark.parametrize(
    "case", [case if case == "test" else pytest.param(case, marks=pytest.mark.slow) for case in CASES]
)
def test_a_signal_in_any_phase_stops_the_run_with_the_shells_code_and_records_it(case, tiny_mnist, tmp_path):
    signum, overrides = CASES[case]
    phase = case.split(",")[0]
    run_dir = tmp_path / "run"
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    pictures = [f"callbacks.{name}=null" for name in ("weights", "misclassified", "saliency", "model_summary")]
    result = run_train(tmp_path, *quick, *pictures, "logger=csv", f"hydra.run.dir={run_dir}", *overrides)

    output = result.stdout + result.stderr
    assert result.returncode == 128 + signum, output[-3000:]  # 143 for SIGTERM, 130 for Ctrl-C
    name = signal.Signals(signum).name
    said = [
        line for line in output.splitlines() if f"stopped by {name} during {phase} (exit code {128 + signum})" in line
    ]
    assert len(said) == 1, output[-3000:]
    record = read_run_record(run_dir)
    assert (record["status"], record["signal"], record["phase"]) == ("interrupted", name, phase)
    assert record["objective"] is None and record["finished_at"]
    assert "Traceback" not in output, output[-3000:]
