"""Time mlplab against a plain PyTorch loop and the usual torchvision Dataset + DataLoader + Lightning path.

    python -m mlplab.bench                       # CPU (and GPU when there is one), batch sizes 64 and 512
    python -m mlplab.bench --whole-process       # also `python train.py` from command to exit, and a sweep
    python -m mlplab.bench --variant bf16 trainer.precision=bf16-mixed   # also mlplab with a switch, against mlplab
    python -m mlplab.bench --help

The paths train the same network (mlplab's MLP, 784-300-300-10 by default, same initialisation) with
the same optimizer (the one mlplab's config makes: fused Adam, lr 1e-3 by default) on the same training
images (MNIST's 60k minus the same 5k held out for validation), for the same number of epochs, one after
the other in this one process:

1. `plain`: a PyTorch loop over tensors already in memory (on the device): the floor, no framework.
2. `lightning`: the same tensors and batches (mlplab's TensorBatches) and a module that only computes
   the loss, under a bare `Trainer`: what Lightning's loop alone costs.
3. `mlplab`: `mlplab.train.train` on the composed `conf/train.yaml`, i.e. `python train.py` with its
   default callbacks (checkpoints, learning rate, model summary, progress bar) and logger, plus a timer.
4. `dataloader`: the usual path: torchvision's `MNIST` with `ToTensor` + `Normalize`, a `DataLoader`,
   a minimal LightningModule (loss, `self.log` per step), a bare `Trainer` (no logger, checkpoint or bar).

A variant (`--variant NAME OVERRIDE...`) is the mlplab path again with more overrides (bf16, compile, ...),
run right after it in every round and reported as `mlplab[NAME]`, with its ratio to `mlplab`.

An epoch's time counts training steps only (validation excluded); the reported epoch time is the median
over the epochs (and rounds), shown with the fastest epoch. Ratios are taken round by round (the paths of
one round run back to back) and given as the median over rounds with their range. Time to first step
runs from the path's start (reading the data included) to the end of the first optimizer step. Peak
memory: on a GPU the peak allocated by torch, on the CPU the peak resident set size above the process's
size at the path's start (Linux; DataLoader workers, which are separate processes, not included).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from mlplab.callbacks.timing import synchronize
from mlplab.config.compose import compose_run_config
from mlplab.config.location import PROJECT_ROOT
from mlplab.data.batches import TensorBatches
from mlplab.models.mlp import MLP
from mlplab.utils.gpu_probe import skip_nvml_probe_without_driver

PATHS = ("plain", "lightning", "mlplab", "dataloader")  # dataloader last: it leaves the heap fragmented
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
SWEEP = ("optimizer=adam,sgd", "lr=1e-3,1e-2")  # the README's 4-job sweep


@dataclass(frozen=True)
class Setting:
    """What every path shares in one measurement."""

    data_dir: Path
    device: str
    batch_size: int
    epochs: int
    hidden: tuple[int, ...] = (300, 300)
    optimizer: str = "adam"
    lr: float = 1e-3
    val_size: int = 5000
    split_seed: int = 0
    seed: int = 0
    workers: int = 0
    logger: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass
class Measurement:
    """One path's figures for one (device, batch size)."""

    path: str
    device: str
    batch_size: int
    train_samples: int
    rounds_s: list[list[float]] = field(default_factory=list)  # each round's epoch times
    first_step_s: list[float] = field(default_factory=list)
    peak_memory_mb: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        epoch_times = [t for times in self.rounds_s for t in times]
        epoch_s = statistics.median(epoch_times)
        return {
            "path": self.path,
            "device": self.device,
            "batch_size": self.batch_size,
            "train_samples": self.train_samples,
            "epoch_s": epoch_s,
            "fastest_epoch_s": min(epoch_times),
            "samples_per_s": self.train_samples / epoch_s,
            "first_step_s": statistics.median(self.first_step_s),
            "peak_memory_mb": max(self.peak_memory_mb) if self.peak_memory_mb else None,
            "epoch_times_s": epoch_times,
            "rounds_s": self.rounds_s,
        }


class EpochTimer(L.Callback):
    """Records when the first training step ends and how long each epoch's training steps take.

    `record`: a JSON file written at the end of fit (for runs built from a config).
    """

    def __init__(self, record: str | None = None) -> None:
        self.record = record
        self.first_step_at: float | None = None  # time.perf_counter() of this process
        self.epoch_times_s: list[float] = []
        self.samples_per_epoch: list[int] = []
        self._epoch_start: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self._epoch_start = time.perf_counter()
        self.samples_per_epoch.append(0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.samples_per_epoch[-1] += len(batch[1])
        if self.first_step_at is None:
            synchronize(pl_module.device)
            self.first_step_at = time.perf_counter()

    # the training steps end where validation starts, or at the epoch's end when there is none
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._end_epoch(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_epoch(pl_module)

    def _end_epoch(self, pl_module: L.LightningModule) -> None:
        if self._epoch_start is not None:
            synchronize(pl_module.device)
            self.epoch_times_s.append(time.perf_counter() - self._epoch_start)
            self._epoch_start = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.record:
            fields = ("first_step_at", "epoch_times_s", "samples_per_epoch")
            Path(self.record).write_text(json.dumps({name: getattr(self, name) for name in fields}))


class PeakMemory:
    """Peak memory while a path runs: torch's peak allocation on a GPU, resident set growth on the CPU."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.peak_mb: float | None = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = _resident_kb("VmRSS")
            try:  # "5" resets the peak resident size (VmHWM) to the current one (Linux >= 4.0)
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self._start = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
        elif self._start is not None and (peak := _resident_kb("VmHWM")) is not None:
            self.peak_mb = (peak - self._start) / 1024


def _resident_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@functools.cache
def optimizer_factory(setting: Setting) -> OptimizerFactory:
    """The optimizer mlplab's config makes (e.g. fused Adam), so that every path steps the same way."""
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        return instantiate(compose_run_config(mlplab_overrides(setting), Path(tmp)).optimizer)


def _network(setting: Setting) -> nn.Module:
    torch.manual_seed(setting.seed)
    return MLP(28 * 28, 10, hidden=setting.hidden)


def _train_indices(num_images: int, setting: Setting) -> torch.Tensor:
    """The training images mlplab uses: all but the `val_size` held out by the same seeded permutation."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(setting.split_seed))
    return order[setting.val_size :]


def _mnist(setting: Setting, transform: Callable | None = None) -> Any:
    from torchvision.datasets import MNIST

    # reads <data_dir>/MNIST/raw, the same files mlplab verified; never downloads
    return MNIST(str(setting.data_dir), train=True, download=False, transform=transform)


def _tensors(setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images as normalised float rows and their labels, on the device."""
    images = _mnist(setting)
    train = _train_indices(len(images.data), setting)
    x = images.data[train].reshape(len(train), -1).to(setting.device).float().div_(255).sub_(MNIST_MEAN).div_(MNIST_STD)
    return x, images.targets[train].to(setting.device)


def run_plain(setting: Setting) -> tuple[float, list[float], int]:
    """A plain loop: tensors normalised once on the device, index batches, forward, backward, step."""
    device = torch.device(setting.device)
    start = time.perf_counter()
    x, y = _tensors(setting)
    model = _network(setting).to(device)
    optimizer = optimizer_factory(setting)(model.parameters())
    first_step_s, epoch_times = None, []
    for epoch in range(setting.epochs):
        synchronize(device)
        epoch_start = time.perf_counter()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(setting.seed + epoch)).to(device)
        for batch in order.split(setting.batch_size):
            loss = F.cross_entropy(model(x.index_select(0, batch)), y.index_select(0, batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if first_step_s is None:
                synchronize(device)
                first_step_s = time.perf_counter() - start
        synchronize(device)
        epoch_times.append(time.perf_counter() - epoch_start)
    return first_step_s, epoch_times, len(x)


class UsualModule(L.LightningModule):
    """The LightningModule users usually write first: the loss, logged every step (when `log`)."""

    def __init__(self, network: nn.Module, optimizer: OptimizerFactory, log: bool = True) -> None:
        super().__init__()
        self.network = network
        self.optimizer = optimizer
        self.log_loss = log

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.network(x), y)
        if self.log_loss:
            self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer(self.parameters())


def _bare_trainer(setting: Setting, timer: EpochTimer) -> L.Trainer:
    return L.Trainer(
        accelerator="gpu" if torch.device(setting.device).type == "cuda" else "cpu", devices=1,
        max_epochs=setting.epochs, callbacks=[timer], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )


def run_lightning(setting: Setting) -> tuple[float, list[float], int]:
    """Lightning's own floor: the plain loop's tensors and batches (TensorBatches), a module that only
    computes the loss, a bare Trainer. What it adds to `plain` is Lightning's per-step cost."""
    start = time.perf_counter()
    x, y = _tensors(setting)
    timer = EpochTimer()
    module = UsualModule(_network(setting), optimizer_factory(setting), log=False)
    batches = TensorBatches(x, y, setting.batch_size, shuffle=True, seed=setting.seed)
    _bare_trainer(setting, timer).fit(module, train_dataloaders=batches)
    return timer.first_step_at - start, timer.epoch_times_s, timer.samples_per_epoch[0]


def run_dataloader(setting: Setting) -> tuple[float, list[float], int]:
    """torchvision MNIST + ToTensor/Normalize + DataLoader, trained by a bare Lightning Trainer."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    start = time.perf_counter()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    images = _mnist(setting, transform)
    train = Subset(images, _train_indices(len(images.data), setting).tolist())
    on_gpu = torch.device(setting.device).type == "cuda"
    loader = DataLoader(train, batch_size=setting.batch_size, shuffle=True, num_workers=setting.workers,
                        pin_memory=on_gpu, persistent_workers=setting.workers > 0)
    timer = EpochTimer()
    _bare_trainer(setting, timer).fit(UsualModule(_network(setting), optimizer_factory(setting)), train_dataloaders=loader)
    return timer.first_step_at - start, timer.epoch_times_s, timer.samples_per_epoch[0]


def mlplab_overrides(setting: Setting) -> list[str]:
    """The `python train.py` overrides that make mlplab's run match the setting."""
    return [
        f"paths.data_dir={setting.data_dir}",
        f"accelerator={'gpu' if torch.device(setting.device).type == 'cuda' else 'cpu'}",
        f"data.batch_size={setting.batch_size}",
        f"data.val_size={setting.val_size}",
        f"data.split_seed={setting.split_seed}",
        f"trainer.max_epochs={setting.epochs}",
        f"model.hidden=[{','.join(map(str, setting.hidden))}]",
        f"optimizer={setting.optimizer}",
        f"lr={setting.lr}",
        f"seed={setting.seed}",
        *([f"logger={setting.logger}"] if setting.logger else []),
        *setting.overrides,
    ]


def run_mlplab(setting: Setting) -> tuple[float, list[float], int]:
    """`mlplab.train.train` on the composed config (fit, then test), with an EpochTimer callback added."""
    from mlplab.train import train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        record = Path(tmp) / "timer.json"
        timer = f"+callbacks.bench_timer={{_target_:mlplab.bench.EpochTimer,record:'{record}'}}"
        train(compose_run_config([*mlplab_overrides(setting), timer], Path(tmp) / "run"))
        timed = json.loads(record.read_text())
    return timed["first_step_at"] - start, timed["epoch_times_s"], timed["samples_per_epoch"][0]


def prepare_data(setting: Setting) -> None:
    """Get and verify the data files the way mlplab does (downloads on a fresh machine), before any clock starts."""
    from mlplab.utils.instantiate import build_datamodule

    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        build_datamodule(compose_run_config(mlplab_overrides(setting), Path(tmp))).prepare_data()


RUNNERS: dict[str, Callable[[Setting], tuple[float, list[float], int]]] = {
    "plain": run_plain,
    "lightning": run_lightning,
    "dataloader": run_dataloader,
    "mlplab": run_mlplab,
}


def run_order(setting: Setting, paths: Sequence[str], variants: Mapping[str, Sequence[str]]) -> Iterator[tuple[str, Setting]]:
    """(path, its setting) in running order: each variant right after the mlplab path."""
    for path in paths:
        yield path, setting
        if path == "mlplab":
            for name, overrides in variants.items():
                yield f"mlplab[{name}]", dataclasses.replace(setting, overrides=(*setting.overrides, *overrides))


def measure(settings: Sequence[Setting], paths: Sequence[str] = PATHS, rounds: int = 1,
            variants: Mapping[str, Sequence[str]] | None = None,
            progress: Callable[[str], None] = print) -> list[Measurement]:
    """Run every path (and mlplab variant) on every setting, `rounds` times over (rounds interleave, which
    evens out load)."""
    variants = variants or {}
    if variants and "mlplab" not in paths:
        raise ValueError(f"variants {sorted(variants)} are compared with the mlplab path: add it to paths={list(paths)}")
    results: dict[tuple[str, str, int], Measurement] = {}
    for setting in settings:
        _warm_up(setting)
    for round_number in range(rounds):
        for setting in settings:
            for path, run_setting in run_order(setting, paths, variants):
                progress(f"[bench] round {round_number + 1}/{rounds}: {path} on {setting.device}, batch {setting.batch_size}")
                optimizer_factory(run_setting)  # composed before the clock starts
                runner = run_mlplab if path.startswith("mlplab[") else RUNNERS[path]
                with PeakMemory(setting.device) as memory:
                    first_step_s, epoch_times, samples = runner(run_setting)
                key = (setting.device, path, setting.batch_size)
                result = results.setdefault(key, Measurement(path, setting.device, setting.batch_size, samples))
                result.rounds_s.append(epoch_times)
                result.first_step_s.append(first_step_s)
                if memory.peak_mb is not None:
                    result.peak_memory_mb.append(memory.peak_mb)
                _release_memory()
    return list(results.values())


def _release_memory() -> None:
    """Free what the last path left, so the next one starts from a similar heap."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:  # glibc keeps freed memory in fragmented arenas; the next path's large batches then hit mmap
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _warm_up(setting: Setting, steps: int = 20) -> None:
    """A few untimed steps, so that one-time costs (kernels, allocator) fall on no path in particular."""
    model = _network(setting).to(setting.device)
    optimizer = optimizer_factory(setting)(model.parameters())
    x = torch.randn(setting.batch_size, 28 * 28, device=setting.device)
    y = torch.randint(0, 10, (setting.batch_size,), device=setting.device)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    synchronize(setting.device)


def ratios(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """mlplab / plain (the framework's cost), dataloader / mlplab (the speed-up over the usual path), and
    the time Lightning alone and mlplab add to each step of the plain loop.

    Rounds are paired: a ratio is taken within each round (the paths ran minutes apart at most) and the
    median over rounds is reported with its range, so that a machine that is slower in one round than in
    another moves every path of that round alike. The ratio of the fastest epochs is given too.
    """
    rows = []
    for device, batch_size in dict.fromkeys((s["device"], s["batch_size"]) for s in summaries):
        runs = {s["path"]: s for s in summaries if (s["device"], s["batch_size"]) == (device, batch_size)}
        row: dict[str, Any] = {"device": device, "batch_size": batch_size}
        for slower, faster in (("mlplab", "plain"), ("dataloader", "mlplab"), ("lightning", "plain")):
            if {slower, faster} <= runs.keys():
                per_round = _per_round(runs[slower], runs[faster], lambda a, b: a / b)
                row[f"{slower}_over_{faster}"] = statistics.median(per_round)
                row[f"{slower}_over_{faster}_range"] = [min(per_round), max(per_round)]
                row[f"{slower}_over_{faster}_fastest"] = runs[slower]["fastest_epoch_s"] / runs[faster]["fastest_epoch_s"]
        if "plain" in runs:
            steps = math.ceil(runs["plain"]["train_samples"] / batch_size)
            for path in ("lightning", "mlplab"):
                if path in runs:
                    per_round = _per_round(runs[path], runs["plain"], lambda a, b: (a - b) / steps * 1e3)
                    row[f"{path}_step_overhead_ms"] = statistics.median(per_round)
        variants = [path for path in runs if path.startswith("mlplab[")]
        if variants and "mlplab" in runs:
            row["variants"] = {}
            for path in variants:
                per_round = _per_round(runs[path], runs["mlplab"], lambda a, b: a / b)
                row["variants"][path] = {
                    "over_mlplab": statistics.median(per_round),
                    "over_mlplab_range": [min(per_round), max(per_round)],
                    "over_mlplab_fastest": runs[path]["fastest_epoch_s"] / runs["mlplab"]["fastest_epoch_s"],
                }
        rows.append(row)
    return rows


def _per_round(a: dict[str, Any], b: dict[str, Any], compare: Callable[[float, float], float]) -> list[float]:
    """`compare` of two paths' median epochs, round by round."""
    return [compare(statistics.median(x), statistics.median(y)) for x, y in zip(a["rounds_s"], b["rounds_s"])]


def _train_command() -> list[str]:
    script = PROJECT_ROOT / "train.py"
    return [sys.executable, str(script)] if script.is_file() else [sys.executable, "-m", "mlplab.train"]


def _timed_run(args: Sequence[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([*_train_command(), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def whole_process(data_dir: Path, device: str, val_size: int = 5000, logger: str | None = None,
                  overrides: Sequence[str] = (), progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Wall time of `python train.py trainer.max_epochs=1`, and of the 4-job sweep against 4 separate runs."""
    common = [
        f"paths.data_dir={data_dir}",
        f"data.val_size={val_size}",
        f"accelerator={'gpu' if torch.device(device).type == 'cuda' else 'cpu'}",
        "trainer.max_epochs=1",
        *([f"logger={logger}"] if logger else []),
        *overrides,
    ]
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        progress("[bench] whole process: one run")
        single_s = _timed_run([*common, f"hydra.run.dir={tmp}/single"])
        progress("[bench] whole process: the 4-job sweep")
        sweep_s = _timed_run(["-m", *SWEEP, *common, f"hydra.sweep.dir={tmp}/sweep"])
        separate_s = 0.0
        for i, (optimizer, lr) in enumerate((o, lr) for o in ("adam", "sgd") for lr in ("1e-3", "1e-2")):
            progress(f"[bench] whole process: separate run {i + 1}/4")
            separate_s += _timed_run([f"optimizer={optimizer}", f"lr={lr}", *common, f"hydra.run.dir={tmp}/separate{i}"])
    return {
        "device": device,
        "command": "python train.py trainer.max_epochs=1",
        "sweep": " ".join(["-m", *SWEEP]),
        "single_run_s": single_s,
        "sweep_s": sweep_s,
        "separate_runs_s": separate_s,
        "sweep_over_separate": sweep_s / separate_s,
    }


def machine() -> dict[str, Any]:
    import lightning

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


RATIO_COLUMNS = {
    "mlplab_over_plain": "mlplab / plain",
    "mlplab_over_plain_fastest": "fastest epochs",
    "lightning_over_plain": "lightning / plain",
    "dataloader_over_mlplab": "dataloader / mlplab",
    "dataloader_over_mlplab_fastest": "fastest epochs",
    "lightning_step_overhead_ms": "lightning − plain, per step (ms)",
    "mlplab_step_overhead_ms": "mlplab − plain, per step (ms)",
}


def _ratio_cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return ""
    if "_over_" not in key:
        return f"{row[key]:.2f}"
    return _ratio_text(row[key], row.get(f"{key}_range"))


def _ratio_text(ratio: float, low_high: Sequence[float] | None = None) -> str:
    """`1.20x`, or `1.20x (1.10–1.30)` with the range over rounds."""
    if not low_high or low_high[0] == low_high[1]:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x ({low_high[0]:.2f}–{low_high[1]:.2f})"


def _variant_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for r in report["ratios"]:
        for path, ratio in r.get("variants", {}).items():
            cells = [_ratio_text(ratio["over_mlplab"], ratio["over_mlplab_range"]), _ratio_text(ratio["over_mlplab_fastest"])]
            rows.append(f"| {r['device']} | {r['batch_size']} | {path} | " + " | ".join(cells) + " |")
    return rows


def format_table(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what BENCHMARKS.md shows)."""
    tables = []
    if report["results"]:
        rows = ["| device | batch | path | epoch (s) | fastest epoch (s) | samples/s | first step (s) | peak memory (MB) |",
                "|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in report["results"]:
            memory = "" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.0f}"
            rows.append(f"| {r['device']} | {r['batch_size']} | {r['path']} | {r['epoch_s']:.2f} | {r['fastest_epoch_s']:.2f} | "
                        f"{r['samples_per_s']:,.0f} | {r['first_step_s']:.2f} | {memory} |")
        tables.append(rows)
    if report["ratios"]:
        rows = ["| device | batch | " + " | ".join(RATIO_COLUMNS.values()) + " |",
                "|---|---:" + "|---:" * len(RATIO_COLUMNS) + "|"]
        for r in report["ratios"]:
            rows.append(f"| {r['device']} | {r['batch_size']} | " + " | ".join(_ratio_cell(r, key) for key in RATIO_COLUMNS) + " |")
        tables.append(rows)
    if variant_rows := _variant_rows(report):
        tables.append(["| device | batch | variant | variant / mlplab | fastest epochs |", "|---|---:|---|---:|---:|",
                       *variant_rows])
    for w in report["whole_process"]:
        tables.append([
            "| whole process | wall (s) |",
            "|---|---:|",
            f"| `{w['command']}` ({w['device']}) | {w['single_run_s']:.1f} |",
            f"| `{w['sweep']}`, 1 epoch per job | {w['sweep_s']:.1f} |",
            f"| the same 4 jobs as separate runs | {w['separate_runs_s']:.1f} |",
            f"| sweep / separate runs | {w['sweep_over_separate']:.2f} |",
        ])
    return "\n\n".join("\n".join(rows) for rows in tables)


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(path)  # a reader never sees half a report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlplab.bench", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--devices", nargs="+", default=default_devices, help="torch devices, e.g. cpu cuda")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per path and round")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all paths this many times (interleaved)")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--hidden", type=int, nargs="*", default=[300, 300], help="hidden layer widths")
    parser.add_argument("--optimizer", default="adam", help="mlplab's optimizer config, used by every path")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-size", type=int, default=5000, help="images held out of training (as mlplab does)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the dataloader path")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads; unset: torch's choice")
    parser.add_argument("--logger", default=None, help="mlplab's logger config (csv, none, wandb...); unset: the config's default")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data", help="holds MNIST/raw")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Hydra override for the mlplab runs (repeatable), e.g. trainer.precision=bf16-mixed")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "OVERRIDE"),
                        help="also time the mlplab path with these overrides, reported as mlplab[NAME] (repeatable), "
                             "e.g. --variant bf16 trainer.precision=bf16-mixed")
    parser.add_argument("--whole-process", action="store_true", help="also time whole train.py processes (slower)")
    parser.add_argument("--skip-epochs", action="store_true", help="skip the per-epoch paths (with --whole-process)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the report; unset: outputs/bench/<time>.json")
    args = parser.parse_args(argv)
    args.variants = {}
    for name, *overrides in args.variant:
        if not overrides or "=" in name or not all("=" in o for o in overrides):
            parser.error(f"--variant {name} {' '.join(overrides)}: give a name, then KEY=VALUE overrides, "
                         "e.g. --variant bf16 trainer.precision=bf16-mixed")
        if name in args.variants:
            parser.error(f"--variant {name} is given twice: each variant needs a name of its own")
        args.variants[name] = overrides
    if args.variants and "mlplab" not in args.paths:
        parser.error(f"--variant is compared with the mlplab path: add mlplab to --paths {' '.join(args.paths)}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    skip_nvml_probe_without_driver()  # what train.py does: every path measured without the per-step NVML load
    # a benchmark never uploads anything; W&B runs, if the logger is W&B, stay offline and quiet
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    if args.threads:
        torch.set_num_threads(args.threads)
    # the whole-process runs read the data the same way: make relative paths absolute
    data_dir = args.data_dir.resolve()
    settings = [
        Setting(data_dir, device, batch_size, args.epochs, tuple(args.hidden), args.optimizer, args.lr, args.val_size,
                workers=args.workers, logger=args.logger, overrides=tuple(args.override))
        for device in args.devices for batch_size in args.batch_sizes
    ]
    prepare_data(settings[0])
    load_start = _load()
    summaries = [] if args.skip_epochs else [m.summary() for m in measure(settings, args.paths, args.rounds, args.variants)]
    whole = []
    if args.whole_process:
        for device in args.devices:
            whole.append(whole_process(data_dir, device, args.val_size, args.logger, args.override))
    report = {
        "machine": machine(),
        "load_average_start": load_start,
        "load_average_end": _load(),
        "settings": {key: value for key, value in vars(args).items() if key not in ("json", "variant")},
        "results": summaries,
        "ratios": ratios(summaries),
        "whole_process": whole,
    }
    report["settings"]["data_dir"] = str(data_dir)
    json_path = args.json or PROJECT_ROOT / "outputs" / "bench" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
    _write_json(json_path, report)
    print(format_table(report))
    print(f"\nload average (1, 5, 15 min) at start {load_start}, at end {report['load_average_end']}; "
          f"{report['machine']['cpu_count']} CPUs, torch threads {report['machine']['torch_threads']}")
    print(f"report: {json_path}")
    return report


if __name__ == "__main__":
    main()
