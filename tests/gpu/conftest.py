"""`make test-gpu`: every GPU path run for real on the GPUs present, skipped (with the reason) without one.

The session ends by writing outputs/gpu_check/report.md: one Markdown table of what passed, with the figures the
tests noted (`figures` fixture), ready to paste into BENCHMARKS.md's GPU section.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch

from mlplab.config.location import PROJECT_ROOT

NO_GPU = "no CUDA GPU here (torch.cuda.is_available() is False): run `make test-gpu` on a machine with one"
REPORT = PROJECT_ROOT / "outputs" / "gpu_check" / "report.md"

_rows: list[tuple[str, str, float, str]] = []  # (test, outcome, seconds, figures)
_figures: dict[str, list[str]] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """`figures(name, value)`: a figure for the report's row of this test."""

    def note(name: str, value: object) -> None:
        _figures.setdefault(request.node.nodeid, []).append(f"{name} {value}")

    return note


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _rows.append((item.nodeid, report.outcome, report.duration, "; ".join(_figures.get(item.nodeid, []))))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _rows or not torch.cuda.is_available():
        return
    devices = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    lines = [
        f"GPU check of {time.strftime('%Y-%m-%d %H:%M')} on {devices} (torch {torch.__version__})",
        "",
        "| check | result | seconds | figures |",
        "|---|---|---:|---|",
        *(
            f"| {test.split('::', 1)[-1]} | {result} | {seconds:.1f} | {notes} |"
            for test, result, seconds, notes in _rows
        ),
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"\nGPU check report (for BENCHMARKS.md): {REPORT}")
