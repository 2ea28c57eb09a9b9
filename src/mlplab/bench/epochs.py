"""The training paths, timed epoch by epoch: each trains mlplab's network on mlplab's training split.

To add a path: write `run_<name>(setting, prepared) -> Timed` and register it in `PATHS`.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from mlplab.bench.memory import PeakMemory, release_memory
from mlplab.bench.setting import (
    OptimizerFactory,
    Setting,
    datamodule,
    mlplab_overrides,
    network,
    optimizer_factory,
    run_config,
)
from mlplab.callbacks.timing import EpochTimer, synchronize
from mlplab.config.compose import compose_run_config
from mlplab.data.batches import TensorBatches
from mlplab.utils.files import write_json


class Timed(NamedTuple):
    """What one path measured in one round."""

    first_step_s: float  # from the path's start (reading the data included) to the end of the first step
    epoch_times_s: list[float]  # the training part of each epoch
    train_samples: int  # per epoch


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


def run_plain(setting: Setting, prepared: None = None) -> Timed:
    """A plain loop: mlplab's training tensors (normalised once on the device), index batches, forward,
    backward, step."""
    device = torch.device(setting.device)
    start = time.perf_counter()
    data = datamodule(setting)
    x, y = data.split_on_device("train", device)
    model = network(setting, data).to(device)
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
    return Timed(first_step_s, epoch_times, len(x))


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


def _fit_bare(setting: Setting, module: L.LightningModule, batches: Any, start: float) -> Timed:
    """Fit under a bare Trainer (no logger, checkpoint, bar or summary), timed by mlplab's EpochTimer."""
    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator=setting.accelerator,
        devices=1,
        max_epochs=setting.epochs,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=batches)
    return Timed(timer.first_step_at - start, timer.epoch_times_s, timer.samples_per_epoch[0])


def run_lightning(setting: Setting, prepared: None = None) -> Timed:
    """Lightning's own floor: the plain loop's tensors and batches (TensorBatches), a module that only
    computes the loss, a bare Trainer. What it adds to `plain` is Lightning's per-step cost."""
    start = time.perf_counter()
    data = datamodule(setting)
    x, y = data.split_on_device("train", setting.device)
    module = UsualModule(network(setting, data), optimizer_factory(setting), log=False)
    return _fit_bare(setting, module, TensorBatches(x, y, setting.batch_size, shuffle=True, seed=setting.seed), start)


def training_images(setting: Setting) -> tuple[tuple[torch.Tensor, torch.Tensor], float, float]:
    """mlplab's training split as stored (uint8 pixels, labels) and its normalisation (mean, std)."""
    data = datamodule(setting)
    data.setup()
    return data.splits["train"], data.mean, data.std


def run_dataloader(setting: Setting, prepared: tuple[tuple[torch.Tensor, torch.Tensor], float, float]) -> Timed:
    """torchvision MNIST + ToTensor/Normalize + DataLoader, trained by a bare Lightning Trainer."""
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from torchvision.datasets import MNIST

    (train_x, train_y), mean, std = prepared
    start = time.perf_counter()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    # reads <data_dir>/MNIST/raw, the files mlplab verified (never downloads), as the usual path does; then
    # serves mlplab's training split through torchvision's own per-image path (PIL image, transform)
    images = MNIST(str(setting.data_dir), train=True, download=False, transform=transform)
    images.data, images.targets = train_x.reshape(len(train_x), *images.data.shape[1:]), train_y
    on_gpu = torch.device(setting.device).type == "cuda"
    loader = DataLoader(
        images,
        batch_size=setting.batch_size,
        shuffle=True,
        num_workers=setting.workers,
        pin_memory=on_gpu,
        persistent_workers=setting.workers > 0,
    )
    data = datamodule(setting)
    return _fit_bare(setting, UsualModule(network(setting, data), optimizer_factory(setting)), loader, start)


class RecordedEpochTimer(EpochTimer):
    """mlplab's EpochTimer that also writes what it measured to `record` (JSON) at the end of fit."""

    def __init__(self, record: str) -> None:
        super().__init__()
        self.record = record

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        write_json(
            self.record, {name: getattr(self, name) for name in ("first_step_at", "epoch_times_s", "samples_per_epoch")}
        )


def run_mlplab(setting: Setting, prepared: None = None) -> Timed:
    """`mlplab.train.train` on the composed config (fit, then test), with a recording EpochTimer added."""
    from mlplab.train import train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlplab-bench-") as tmp:
        record = Path(tmp) / "timer.json"
        timer = (
            f"+callbacks.bench_timer={{_target_:{RecordedEpochTimer.__module__}.RecordedEpochTimer,record:'{record}'}}"
        )
        train(compose_run_config([*mlplab_overrides(setting), timer], Path(tmp) / "run"))
        timed = json.loads(record.read_text())
    return Timed(timed["first_step_at"] - start, timed["epoch_times_s"], timed["samples_per_epoch"][0])


def _nothing(setting: Setting) -> None:
    return None


@dataclass(frozen=True)
class TrainingPath:
    """One way of training that the benchmark times."""

    run: Callable[[Setting, Any], Timed]  # trains and times; gets what `prepare` returned
    prepare: Callable[[Setting], Any] = _nothing  # untimed, and left out of the memory figure


PATHS: dict[str, TrainingPath] = {  # in running order: dataloader last, it leaves the heap fragmented
    "plain": TrainingPath(run_plain),
    "lightning": TrainingPath(run_lightning),
    "mlplab": TrainingPath(run_mlplab),
    "dataloader": TrainingPath(run_dataloader, prepare=training_images),
}


def run_order(
    setting: Setting, paths: Sequence[str], variants: Mapping[str, Sequence[str]]
) -> Iterator[tuple[str, Setting]]:
    """(path, its setting) in running order: each variant right after the mlplab path."""
    for path in paths:
        yield path, setting
        if path == "mlplab":
            for name, overrides in variants.items():
                yield f"mlplab[{name}]", dataclasses.replace(setting, overrides=(*setting.overrides, *overrides))


def measure(
    settings: Sequence[Setting],
    paths: Sequence[str] = tuple(PATHS),
    rounds: int = 1,
    variants: Mapping[str, Sequence[str]] | None = None,
    progress: Callable[[str], None] = print,
) -> list[Measurement]:
    """Run every path (and mlplab variant) on every setting, `rounds` times over (rounds interleave, which
    evens out load)."""
    variants = variants or {}
    if variants and "mlplab" not in paths:
        raise ValueError(
            f"variants {sorted(variants)} are compared with the mlplab path: add it to paths={list(paths)}"
        )
    results: dict[tuple[str, str, int], Measurement] = {}
    for setting in settings:
        _warm_up(setting)
    for round_number in range(rounds):
        for setting in settings:
            for path, run_setting in run_order(setting, paths, variants):
                progress(
                    f"[bench] round {round_number + 1}/{rounds}: {path} on {setting.device}, batch {setting.batch_size}"
                )
                training = PATHS[path.partition("[")[0]]  # a variant mlplab[NAME] runs the mlplab path
                run_config(run_setting)  # composed before the clock starts
                prepared = training.prepare(run_setting)
                with PeakMemory(setting.device) as memory:
                    timed = training.run(run_setting, prepared)
                del prepared
                key = (setting.device, path, setting.batch_size)
                result = results.setdefault(
                    key, Measurement(path, setting.device, setting.batch_size, timed.train_samples)
                )
                result.rounds_s.append(timed.epoch_times_s)
                result.first_step_s.append(timed.first_step_s)
                if memory.peak_mb is not None:
                    result.peak_memory_mb.append(memory.peak_mb)
                release_memory()
    return list(results.values())


def _warm_up(setting: Setting, steps: int = 20) -> None:
    """A few untimed steps, so that one-time costs (kernels, allocator) fall on no path in particular."""
    data = datamodule(setting)
    model = network(setting, data).to(setting.device)
    optimizer = optimizer_factory(setting)(model.parameters())
    x = torch.randn(setting.batch_size, data.input_size, device=setting.device)
    y = torch.randint(0, data.task.output_size, (setting.batch_size,), device=setting.device)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    synchronize(setting.device)
