"""The test callbacks and data modules that runs build from a config's `_target_` (`+callbacks.x={_target_:
tests.helpers.callbacks.X,...}`): in the test process, in a `python train.py` subprocess, in its DDP ranks and
sweep workers alike. Kept here, one module that no test module's rename moves, with the overrides that add them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from torch.overrides import TorchFunctionMode

from mlplab.callbacks.baselines import Baselines
from mlplab.callbacks.confusion_matrix import ConfusionMatrix
from mlplab.data.images import MNISTDataModule
from mlplab.utils.errors import DivergedError

# --- watching a run ---------------------------------------------------------------------------------------------


class Probe(L.Callback):
    """Keeps what a run was built with and what it did, for a test to read after train(): the last one made."""

    last: Probe | None = None

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.lrs: list[float] = []  # the learning rate of each training step
        self.losses: list[float] = []  # and its loss
        Probe.last = self

    def on_train_start(self, trainer, pl_module):
        self.initial = {name: value.detach().clone() for name, value in pl_module.network.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch_sizes.append(len(batch[1]))
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module):
        self.trainer, self.module, self.steps, self.epochs = (
            trainer,
            pl_module,
            trainer.global_step,
            trainer.current_epoch,
        )
        self.optimizer = trainer.optimizers[0]
        self.scheduler_configs = trainer.lr_scheduler_configs
        self.schedulers = [config.scheduler for config in self.scheduler_configs]
        self.final_lr = self.optimizer.param_groups[0]["lr"]  # after the last scheduler step

    def on_exception(self, trainer, pl_module, exception):
        self.steps, self.epochs, self.exception = trainer.global_step, trainer.current_epoch, exception


PROBE = "+callbacks.probe={_target_:tests.helpers.callbacks.Probe}"  # the override that adds a Probe to a run


class Capture(L.Callback):
    """The inputs of every training and validation batch as the network gets them."""

    last = None

    def __init__(self) -> None:
        self.train, self.val = [], []
        Capture.last = self

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append(batch[0].clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val.append(batch[0].clone())

    def on_train_end(self, trainer, pl_module):
        self.splits = {s: trainer.datamodule.split_on_device(s, pl_module.device)[0] for s in ("train", "val")}


class HookNames(L.Callback):
    """Notes the module's `_current_fx_name` in its hooks and logs from them (Lightning checks that name)."""

    seen: list[tuple[str, str]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        HookNames.seen.append(("train", pl_module._current_fx_name))
        pl_module.log("probe/train", 2.0, on_step=False, on_epoch=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        HookNames.seen.append(("val", pl_module._current_fx_name))
        pl_module.log("probe/val", 1.0)


# --- changing what a run does -----------------------------------------------------------------------------------


class WorseLastEpoch(L.Callback):
    """Zeroes the network before the last epoch's validation: the best epoch is then an earlier one, not the last."""

    def on_validation_start(self, trainer, pl_module):
        if trainer.current_epoch == trainer.max_epochs - 1 and not trainer.sanity_checking:
            with torch.no_grad():
                for parameter in pl_module.network.parameters():
                    parameter.zero_()


class Letters(MNISTDataModule):
    """28x28 images of 26 classes: fits an MNIST network's input, not its output."""

    class_names = [chr(c) for c in range(ord("a"), ord("z") + 1)]


class FailingJob(L.Callback):
    """Makes the sweep job number `job` (or the run whose lr is `lr`) raise on its second training step."""

    def __init__(self, job: int | None = None, lr: float | None = None, diverge: bool = True) -> None:
        self.job, self.lr, self.diverge = job, lr, diverge

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        chosen = (self.job is not None and HydraConfig.get().job.num == self.job) or pl_module.hparams["lr"] == self.lr
        if chosen and batch_idx == 1:
            raise DivergedError("train/loss is nan at step 1") if self.diverge else RuntimeError("boom")


class ActWhenAsked(L.Callback):
    """In the sweep job whose number is in $ACT_ON_JOB, at the start of its second epoch: `stall` (writes
    <job>/stalled, then sleeps: a job caught mid-sweep, to be killed), `sigterm` (after its first batch) or `fail`."""

    def __init__(self, action: str) -> None:
        self.action = action

    def _chosen(self) -> bool:
        return os.environ.get("ACT_ON_JOB") == str(HydraConfig.get().job.num)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1 and self._chosen():
            if self.action == "stall":
                (Path(HydraConfig.get().runtime.output_dir) / "stalled").touch()
                time.sleep(600)
            if self.action == "fail":
                raise RuntimeError("asked to fail")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.action == "sigterm" and (trainer.current_epoch, batch_idx) == (1, 0) and self._chosen():
            os.kill(os.getpid(), signal.SIGTERM)


# --- signals and kills: a run stopped from inside ----------------------------------------------------------------


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


def signal_at(hook: str, signum: int, times: int = 1) -> str:
    """The override that adds a SignalAt."""
    return f"+callbacks.signal={{_target_:tests.helpers.callbacks.SignalAt,hook:{hook},signum:{int(signum)},times:{times}}}"


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


class SendSignal(L.Callback):
    """After training batch `batch` of `epoch`, sends `signum` to this process: what SLURM (SIGTERM) or Ctrl-C
    (SIGINT) do; signum 0 crashes instead, like a killed job that had no chance to save anything."""

    def __init__(self, epoch: int, batch: int, signum: int, times: int = 1) -> None:
        self.epoch, self.batch, self.signum, self.times = epoch, batch, signum, times

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            if not self.signum:
                raise SystemExit(137)
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def interrupt(epoch: int, batch: int, signum: int, times: int = 1) -> str:
    """The override that adds a SendSignal."""
    return (
        f"+callbacks.interrupt={{_target_:tests.helpers.callbacks.SendSignal,epoch:{epoch},batch:{batch},"
        f"signum:{int(signum)},times:{times}}}"
    )


class SignalJob(L.Callback):
    """Sends `signum` to this process at the third training batch of sweep job `job`."""

    def __init__(self, job: int, signum: int) -> None:
        self.job, self.signum = job, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if HydraConfig.get().job.num == self.job and batch_idx == 2:
            os.kill(os.getpid(), self.signum)


class KillJob(L.Callback):
    """SIGKILLs the process of sweep job `job` at its second training batch: no handler, no clean-up, like the
    out-of-memory killer."""

    def __init__(self, job: int) -> None:
        self.job = job

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if HydraConfig.get().job.num == self.job and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)


class KillRank(L.Callback):
    """SIGKILLs global rank `rank` at its third training batch (in the run whose lr is `lr`, when one is given)."""

    def __init__(self, rank: int = 1, lr: float | None = None) -> None:
        self.rank, self.lr = rank, lr

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank and batch_idx == 2 and self.lr in (None, pl_module.hparams["lr"]):
            os.kill(os.getpid(), signal.SIGKILL)


DEVICES_SEEN = "devices_seen.json"  # RecordDevices writes it into the job's folder


class RecordDevices(L.Callback):
    """Writes the devices the job's process may use and when it trained into `<job>/devices_seen.json`; SIGKILLs the
    process of job `kill` at its first batch (after writing), as the out-of-memory killer would."""

    def __init__(self, kill: int = -1) -> None:
        self.kill, self.start = kill, 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.start = time.time()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if HydraConfig.get().job.num == self.kill:
            self._write(end=time.time())
            os.kill(os.getpid(), signal.SIGKILL)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._write(end=time.time())

    def _write(self, end: float) -> None:
        seen = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(), "start": self.start, "end": end}
        (Path(HydraConfig.get().runtime.output_dir) / DEVICES_SEEN).write_text(json.dumps(seen))


class HostSyncs(TorchFunctionMode, L.Callback):
    """Notes, per step (training, validation, test), the tensor calls that make the host wait for a GPU:
    reading values (`item`, `tolist`, `bool(t)`, ...), copies to the CPU, ops whose output size depends on
    the values. Epoch ends are not watched: reading the epoch's metrics there is expected.

    It watches torch calls, so it works on the CPU too: what a CUDA run would sync on, a CPU run calls the same.
    """

    READS = {
        "item",
        "tolist",
        "numpy",
        "cpu",
        "__bool__",
        "__float__",
        "__int__",
        "__index__",
        "nonzero",
        "unique",
        "masked_select",
        "argwhere",
    }

    def __init__(self) -> None:
        super().__init__()
        self.batch: tuple | None = None  # the step being run: (stage, step); None between steps' epochs
        self.synced: dict[tuple, list[str]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        # (a CPU run moves nothing from another device, so there this finds nothing: the reads above are the test)
        to_cpu = name == "to" and args[0].device.type != "cpu" and "cpu" in map(str, [*args[1:], *kwargs.values()])
        mask = name == "__getitem__" and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool
        if self.batch is not None and (name in self.READS or to_cpu or mask):
            self.synced.setdefault(self.batch, []).append(name)
        return func(*args, **kwargs)

    # first in the callback list: its batch-start hooks run before the others', its epoch-end hooks too
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch = ("train", trainer.global_step)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.batch = ("val", trainer.current_epoch, batch_idx)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.batch = ("test", batch_idx)

    def _epoch_end(self, *args):
        self.batch = None

    on_validation_start = on_train_epoch_end = on_validation_epoch_end = on_test_epoch_end = _epoch_end
