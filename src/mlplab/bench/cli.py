"""`python -m mlplab.bench`: the command line, and the report put together from the sections that ran."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mlplab.bench.epochs import PATHS, measure
from mlplab.bench.machine import load_average, machine
from mlplab.bench.ratios import ratios
from mlplab.bench.searches import search_pruning
from mlplab.bench.setting import Setting, datamodule
from mlplab.bench.stacked_sweep import stacked_sweep
from mlplab.bench.tables import format_table
from mlplab.bench.tuning_grid import tuning_grid
from mlplab.bench.whole_process import whole_process
from mlplab.config.location import PROJECT_ROOT
from mlplab.run.process import skip_nvml_probe_without_driver
from mlplab.utils.files import write_json


def prepare_data(setting: Setting) -> None:
    """Get and verify the data files the way mlplab does (downloads on a fresh machine), before any clock starts."""
    datamodule(setting).prepare_data()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mlplab.bench",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Time mlplab against a plain PyTorch loop and the usual torchvision Dataset + DataLoader + "
        "Lightning path (see BENCHMARKS.md).",
    )
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
    parser.add_argument(
        "--logger", default=None, help="mlplab's logger config (csv, none, wandb...); unset: the config's default"
    )
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data", help="holds MNIST/raw")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override for the mlplab runs (repeatable), e.g. trainer.precision=bf16-mixed",
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDE"),
        help="also time the mlplab path with these overrides, reported as mlplab[NAME] (repeatable), "
        "e.g. --variant bf16 trainer.precision=bf16-mixed",
    )
    parser.add_argument("--whole-process", action="store_true", help="also time whole train.py processes (slower)")
    parser.add_argument(
        "--stacked-sweep",
        action="store_true",
        help="also time a 4 lr x 4 seed sweep (2 epochs, batch 64) with hydra/launcher=stacked against the basic "
        "launcher, whole processes, in --rounds paired rounds",
    )
    parser.add_argument(
        "--tuning-grid",
        action="store_true",
        help="also time, on each of --devices, the grid that tuned experiment=mnist_mlp (2 epochs, 1 seed) with "
        "hydra/launcher=stacked against the parallel launcher (on the CPU 2 workers of 1 thread each; one job per "
        "GPU), whole processes, in --rounds paired rounds",
    )
    parser.add_argument(
        "--search-pruning",
        action="store_true",
        help="also time the shipped MNIST search (hparams_search=mnist_optuna, --search-trials trials) with its "
        "pruner against hydra.sweeper.pruner=null, whole processes, in --rounds paired rounds",
    )
    parser.add_argument("--search-trials", type=int, default=24, help="trials of each --search-pruning search")
    parser.add_argument(
        "--skip-epochs",
        action="store_true",
        help="skip the per-epoch paths (with --whole-process, --stacked-sweep, --tuning-grid or --search-pruning)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="where to write the report; unset: outputs/bench/<time>.json"
    )
    args = parser.parse_args(argv)
    args.variants = {}
    for name, *overrides in args.variant:
        if not overrides or "=" in name or not all("=" in o for o in overrides):
            parser.error(
                f"--variant {name} {' '.join(overrides)}: give a name, then KEY=VALUE overrides, "
                "e.g. --variant bf16 trainer.precision=bf16-mixed"
            )
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
        Setting(
            data_dir,
            device,
            batch_size,
            args.epochs,
            tuple(args.hidden),
            args.optimizer,
            args.lr,
            args.val_size,
            workers=args.workers,
            logger=args.logger,
            overrides=tuple(args.override),
        )
        for device in args.devices
        for batch_size in args.batch_sizes
    ]
    prepare_data(settings[0])
    load_start = load_average()
    # the sections, each a key of the report (and its tables in mlplab.bench.tables)
    summaries = (
        [] if args.skip_epochs else [m.summary() for m in measure(settings, args.paths, args.rounds, args.variants)]
    )
    whole = []
    if args.whole_process:
        for device in args.devices:
            whole.append(whole_process(data_dir, device, args.val_size, args.logger, args.override))
    stacked = [
        stacked_sweep(
            data_dir, device, rounds=args.rounds, val_size=args.val_size, logger=args.logger, overrides=args.override
        )
        for device in (args.devices if args.stacked_sweep else [])
    ]
    grids = [
        tuning_grid(data_dir, device, rounds=args.rounds, val_size=args.val_size, overrides=args.override)
        for device in (args.devices if args.tuning_grid else [])
    ]
    searches = [
        search_pruning(
            data_dir,
            device,
            trials=args.search_trials,
            rounds=args.rounds,
            val_size=args.val_size,
            overrides=args.override,
        )
        for device in (args.devices if args.search_pruning else [])
    ]
    report = {
        "machine": machine(),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "settings": {key: value for key, value in vars(args).items() if key not in ("json", "variant")},
        "results": summaries,
        "ratios": ratios(summaries),
        "whole_process": whole,
        "stacked_sweep": stacked,
        "tuning_grid": grids,
        "search_pruning": searches,
    }
    report["settings"]["data_dir"] = str(data_dir)
    json_path = args.json or PROJECT_ROOT / "outputs" / "bench" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
    write_json(json_path, report)  # a reader never sees half a report
    print(format_table(report))
    print(
        f"\nload average (1, 5, 15 min) at start {load_start}, at end {report['load_average_end']}; "
        f"{report['machine']['cpu_count']} CPUs, torch threads {report['machine']['torch_threads']}"
    )
    print(f"report: {json_path}")
    return report
