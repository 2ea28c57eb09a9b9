"""Reading offline W&B runs back without a server, with `wandb leet inspect`.

The JSON that command prints is not documented as stable, so it is parsed here and nowhere else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cached_property
from pathlib import Path
from typing import Any


def offline_runs(wandb_dir: str | Path) -> list[Path]:
    """The offline run folders under a `wandb/` folder (or under any folder above them), oldest first."""
    return sorted(Path(wandb_dir).rglob("offline-run-*"), key=lambda p: p.name)


def _inspect(run_dir: Path, *flags: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"`wandb leet inspect` failed on {run_dir}: {result.stderr.strip()}")
    return result.stdout


class OfflineRun:
    """One offline run as its transaction log records it (read lazily, once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"OfflineRun({str(self.path)!r})"

    @cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every record of the log, in order (`{"type": "history", ...}`, `{"type": "run", ...}`, ...)."""
        return [json.loads(line) for line in _inspect(self.path).splitlines() if line.strip()]

    @cached_property
    def overview(self) -> dict[str, Any]:
        """`--summary`: state, name, tags, config, summary (the latest value of every metric)."""
        return json.loads(_inspect(self.path, "--summary"))

    @property
    def run(self) -> dict[str, Any]:
        return next(r["run"] for r in self.records if r.get("type") == "run")

    @property
    def id(self) -> str:
        return self.run["run_id"]

    @property
    def name(self) -> str:
        return self.run.get("display_name", "")

    @property
    def group(self) -> str | None:
        return self.run.get("run_group")

    @property
    def job_type(self) -> str | None:
        return self.run.get("job_type")

    @property
    def exit_code(self) -> int | None:
        """The exit code `wandb.finish` recorded (0: success); None while the run is unfinished."""
        exits = [r["exit"] for r in self.records if r.get("type") == "exit"]
        return exits[-1].get("exit_code", 0) if exits else None

    @property
    def state(self) -> str:
        return self.overview["state"]

    @property
    def config(self) -> dict[str, Any]:
        return self.overview["config"]

    @property
    def summary(self) -> dict[str, Any]:
        return self.overview["summary"]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The logged rows, each a flat dict of metric -> value."""
        return [r["history"]["item"] for r in self.records if r.get("type") == "history"]

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """The artifacts the run logged, in order: each with its name, type, aliases, metadata and manifest."""
        return [r["artifact"] for r in self.records if r.get("type") == "artifact"]

    def table(self, key: str) -> tuple[list[str], list[list[Any]]]:
        """(columns, rows) of the W&B table last logged under `key`, from the file the run keeps it in."""
        table = json.loads((self.path / "files" / self.summary[key]["path"]).read_text())
        return table["columns"], table["data"]

    def images(self, key: str) -> list[Path]:
        """The image files logged under `key`, in the order they were logged."""
        files = [name for row in self.history for name in row.get(f"{key}.filenames", [])]
        return [self.path / "files" / name for name in files]
