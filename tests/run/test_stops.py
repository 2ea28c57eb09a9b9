"""A signal stops a run in every phase the same way: exit 143 (SIGTERM) or 130 (Ctrl-C), one log line, and
run_record.json saying `interrupted` with the signal and the phase. Each case is a real `python train.py` on
tiny files that sends the signal to itself from inside the phase."""

from __future__ import annotations

import signal

import pytest

from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import signal_at
from tests.helpers.runs import run_train_process

TERM, INT = signal.SIGTERM, signal.SIGINT
CASES = {  # phase: (signal, the overrides that send it in that phase)
    "start-up": (INT, [signal_at("__init__", INT)]),
    "data": (TERM, ["data._target_=tests.helpers.callbacks.SignallingMNIST", f"+data.signum={int(TERM)}"]),
    "fit": (INT, [signal_at("on_train_batch_end", INT)]),
    "fit, Ctrl-C twice": (INT, [signal_at("on_train_batch_end", INT, times=2)]),  # at once: Lightning's own exit says 1
    # during the last epoch's validation: there is no training batch left to stop at, the test must not start
    "validation": (TERM, [signal_at("on_validation_batch_end", TERM), "trainer.max_epochs=1"]),
    "test": (TERM, [signal_at("on_test_batch_end", TERM)]),
    "test, Ctrl-C": (INT, [signal_at("on_test_batch_end", INT)]),
    "baselines": (
        INT,
        [
            "callbacks.baselines._target_=tests.helpers.callbacks.SignallingBaselines",
            f"+callbacks.baselines.signum={int(INT)}",
        ],
    ),
    "pictures": (
        TERM,
        [
            "callbacks.confusion_matrix._target_=tests.helpers.callbacks.SignallingConfusionMatrix",
            f"+callbacks.confusion_matrix.signum={int(TERM)}",
        ],
    ),
}


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
    result = run_train_process(
        *quick,
        *pictures,
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        *overrides,
        cwd=tmp_path,
        expect_code=128 + signum,  # 143 for SIGTERM, 130 for Ctrl-C
        timeout=300,
    )

    output = result.stdout + result.stderr
    name = signal.Signals(signum).name
    said = [
        line for line in output.splitlines() if f"stopped by {name} during {phase} (exit code {128 + signum})" in line
    ]
    assert len(said) == 1, output[-3000:]
    record = read_run_record(run_dir)
    assert (record["status"], record["signal"], record["phase"]) == ("interrupted", name, phase)
    assert record["objective"] is None and record["finished_at"]
    assert "Traceback" not in output, output[-3000:]
