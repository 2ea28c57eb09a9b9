"""Time mlplab against a plain PyTorch loop and the usual torchvision Dataset + DataLoader + Lightning path.

    python -m mlplab.bench                       # CPU (and GPU when there is one), batch sizes 64 and 512
    python -m mlplab.bench --whole-process       # also `python train.py` from command to exit, and a sweep
    python -m mlplab.bench --variant bf16 trainer.precision=bf16-mixed   # also mlplab with a switch, against mlplab
    python -m mlplab.bench --help

The paths train the same network (the one mlplab's config makes: an MLP, 784-300-300-10 by default, same
initialisation) with the same optimizer (mlplab's config's: fused Adam, lr 1e-3 by default) on the same
training images (mlplab's data module's training split: MNIST's 60k minus the 5k it holds out for
validation), for the same number of epochs, one after the other in this one process:

1. `plain`: a PyTorch loop over tensors already in memory (on the device): the floor, no framework.
2. `lightning`: the same tensors and batches (mlplab's TensorBatches) and a module that only computes
   the loss, under a bare `Trainer`: what Lightning's loop alone costs.
3. `mlplab`: `mlplab.train.train` on the composed `conf/train.yaml`, i.e. `python train.py` with its
   default callbacks (checkpoints, learning rate, model summary, progress bar, ...) and logger, plus a timer.
4. `dataloader`: the usual path: torchvision's `MNIST` with `ToTensor` + `Normalize` (serving the same
   training images), a `DataLoader`,
   a minimal LightningModule (loss, `self.log` per step), a bare `Trainer` (no logger, checkpoint or bar).

A variant (`--variant NAME OVERRIDE...`) is the mlplab path again with more overrides (bf16, compile, ...),
run right after it in every round and reported as `mlplab[NAME]`, with its ratio to `mlplab`.

An epoch's time counts training steps only (validation excluded); the reported epoch time is the median
over the epochs (and rounds), shown with the fastest epoch. Ratios are taken round by round (the paths of
one round run back to back) and given as the median over rounds with their range. Time to first step
runs from the path's start (reading the data included) to the end of the first optimizer step. Peak
memory: on a GPU the peak allocated by torch, on the CPU the peak resident set size above the process's
size at the path's start (Linux; DataLoader workers, which are separate processes, not included).

Every path is timed by mlplab's own EpochTimer (mlplab.callbacks.timing), the plain loop by the same clock.

The parts: `setting` (what the paths share, through mlplab's config, data module and network), `epochs`
(the training paths, timed epoch by epoch; add a path there), `ratios`, `whole_process` (whole `train.py`
processes and a sweep), `tables` (Markdown), `machine`, `cli` (the command line and the report). A new
section (say, one more kind of sweep) is a module like `whole_process`: a function returning its figures,
a key of the report in `cli.main`, and its table in `tables.format_table`.
"""

from mlplab.bench.cli import main, parse_args
from mlplab.bench.epochs import PATHS, Measurement, measure, run_order
from mlplab.bench.ratios import ratios
from mlplab.bench.setting import Setting

__all__ = ["PATHS", "Measurement", "Setting", "main", "measure", "parse_args", "ratios", "run_order"]
