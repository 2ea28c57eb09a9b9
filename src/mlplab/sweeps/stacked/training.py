"""The stacked fit: every member's epochs in one batched network, each member with its own data order, lr and
schedule, metrics, checkpoints and divergence check, as its single run's Lightning loop would give them."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from mlplab.callbacks.optuna_pruning import PRUNED_AT
from mlplab.data.batches import EpochOrder
from mlplab.models.module import StageMetrics
from mlplab.sweeps.stacked.member_data import MemberLosses, augment_members
from mlplab.sweeps.stacked.members import Member, keep_weights_picture, save_checkpoints, stops_early
from mlplab.sweeps.stacked.network import StackedMLP
from mlplab.sweeps.stacked.optimizer import MemberSchedule, StackedOptimizer
from mlplab.sweeps.stacked.resumable import loops_state, member_optimizer_state
from mlplab.utils import stops

log = logging.getLogger(__name__)


def stack_device(accelerator: str) -> torch.device:
    """The device Lightning would pick for `trainer.accelerator` (cpu, gpu/cuda, auto)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def member_generator(member: Member, device: torch.device) -> torch.Generator:
    """The generator of the member's random draws (its shifts, then its dropout masks) in the stack: on the CPU, its
    single run's generator where its fit starts; on a GPU, its single run's seeded CUDA generator (whose fused
    dropout draws differently)."""
    generator = torch.Generator(device=device)
    if device.type == "cpu" and member.rng_state is not None:
        generator.set_state(member.rng_state)
    else:
        generator.manual_seed(int(member.cfg.seed))
    return generator


def max_epochs_of(trainer: Any) -> int | None:
    """The epochs a single run's Trainer trains: `trainer.max_epochs`, 1000 when null (Lightning's default without
    max_steps), None for -1 (no limit: until it stops early or diverges)."""
    max_epochs = trainer.get("max_epochs")
    if max_epochs is None:
        return 1000
    return None if int(max_epochs) == -1 else int(max_epochs)


def _epoch_values(metrics: StageMetrics) -> dict[str, float]:
    """The stage's epoch metrics as the module logs them (`train/loss_epoch`, `val/loss`, `val/acc`, ...); resets."""
    metrics.update()
    values = {metrics.loss_name: float(metrics.loss.compute())}
    values.update({name: float(value) for name, value in metrics.values.compute().items()})
    metrics.reset()
    return values


class StackTrainer:
    """Trains `members` (equal configs up to support.PER_MEMBER's keys) as one StackedMLP, each for its own
    `trainer.max_epochs`: the stack trains until its longest member ends."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = list(members)
        cfg = self.members[0].cfg
        self.device = stack_device(str(cfg.trainer.accelerator))
        self.datamodule = self.members[0].datamodule
        self.datamodule.setup()
        self.x, self.y = self.datamodule.split_on_device("train", self.device)
        self.x_val, self.y_val = self.datamodule.split_on_device("val", self.device)
        self.batch_size = int(self.datamodule.batch_size)
        self.eval_batch_size = int(self.datamodule.eval_batch_size)
        # each member's own epochs (None: no limit); a member that trained them ends, the others go on
        self.member_epochs = [max_epochs_of(m.cfg.trainer) for m in self.members]
        self.max_epochs = None if None in self.member_epochs else max(self.member_epochs)
        self.min_epochs = int(cfg.trainer.get("min_epochs") or 0)
        self.log_every = int(cfg.trainer.log_every_n_steps or 0)
        divergence = (cfg.get("callbacks") or {}).get("divergence")
        # no divergence callback: a NaN member trains on, and its record says diverged from its metrics (as a single run)
        self.check_every = int(divergence.check_every_n_steps) if divergence else 0
        self.clip_value = cfg.trainer.get("gradient_clip_val")  # grouping lets only clipping by value through
        # each member's random draws (its shifts, then its dropout masks): drawn from only while it is computed
        self.generators = [member_generator(m, self.device) for m in self.members]
        self._compute(list(range(len(self.members))))
        steps_per_epoch = self.steps_per_epoch = -(-len(self.x) // self.batch_size)
        self.val_batches = -(-len(self.x_val) // self.eval_batch_size)
        # the single run's parameter order (layers.k.weight, layers.k.bias, ...) in the stacked parameters
        layers = len(self.network.weights)
        self.param_order = [i for k in range(layers) for i in (k, layers + k)]
        self.schedules = [
            MemberSchedule(
                m.module.optimizer_factory,
                # Lightning's estimated_stepping_batches over the member's own epochs: infinite without an epoch
                # limit (OneCycleLR then fails, as in the single run)
                partial(m.module.lr_scheduler, total_steps=steps_per_epoch * (epochs or math.inf))
                if m.module.scheduler_config
                else None,
            )
            for m, epochs in zip(self.members, self.member_epochs)
        ]
        self.orders = [EpochOrder(len(self.x), shuffle=True, seed=int(m.datamodule.seed)) for m in self.members]
        self.step = 0
        self.epoch = 0
        self.epochs_done = 0
        self.epoch_steps = 0  # training steps done in the current epoch

    @property
    def frozen(self) -> list[bool]:
        return [m.frozen for m in self.members]

    def _compute(self, active: list[int]) -> None:
        """The stack of members `active` (indices into `members`) from their MLPs' weights: the stacked network, its
        optimizer, each member's loss and augmentation; slot j of each is member `active[j]`."""
        members = [self.members[i] for i in active]
        self.active = active
        self.network = StackedMLP([m.module.network for m in members]).to(self.device)
        self.network.generators = [self.generators[i] for i in active]
        self.loss = MemberLosses([m.module.task for m in members])  # each member's own loss on its batch: (N,)
        self.datamodules = [m.datamodule for m in members]  # each member's own augmentation (data.max_shift)
        self.optimizer = StackedOptimizer(
            self.network.parameters(), members[0].module.optimizer_factory, regions=self.network.member_regions()
        )

    def _compute_only_training(self) -> None:
        """Drop the members that stopped training from the stack: on a CPU a batched step costs about what its
        members' single steps cost, so a frozen member would cost a step's time until the stack ends. The stack is
        rebuilt from the members still training, each with its weights, generator and optimizer state as they are
        (its numbers do not change); a dropped member's MLP keeps its final weights."""
        training = [i for i in self.active if not self.members[i].frozen]
        if training == self.active:
            return
        for slot, i in enumerate(self.active):  # the rebuilt stack starts from each member's MLP
            self.members[i].module.network.load_state_dict(self.network.member_state(slot))
        network, optimizer, active = self.network, self.optimizer, self.active
        self._compute(training)
        self.network.narrow_matmuls = network.narrow_matmuls
        self.optimizer.take_state(optimizer, [active.index(i) for i in training])

    def member_weights(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights as its MLP's state_dict: the stack's while it is computed, else its MLP's (its last)."""
        if i in self.active:
            return self.network.member_state(self.active.index(i))
        return {name: value.detach().clone() for name, value in self.members[i].module.network.state_dict().items()}

    def fit(self) -> None:
        """All epochs. A stop signal is acted on at the end of a training batch: every member still training saves
        `last.ckpt` there (resumable as a single run) and the stop is raised; one during validation waits for the
        epoch's checkpoints. A second signal stops at once, each member keeping its last epoch's `last.ckpt`."""
        epochs = range(self.max_epochs) if self.max_epochs is not None else itertools.count()
        try:
            with stops.in_phase("fit"), stops.deferred():
                for epoch in epochs:
                    self.epoch = epoch
                    self._train_epoch()
                    self.epochs_done = epoch + 1
                    stops.raise_pending()
                    if all(self.frozen):
                        break
        finally:  # a stop too: the members done training finish as such (mlplab.sweeps.stacked.launch)
            self._summarise()

    def _summarise(self) -> None:
        """Each member's weights and summary metrics (epochs, its best) where its training ended."""
        for i, member in enumerate(self.members):
            member.module.network.load_state_dict(self.member_weights(i))  # tested as is without a best
            # epochs trained, as train.py records a single run's (trainer.current_epoch at its end)
            ended = member.ended_epoch
            member.metrics["epochs"] = float(self.epochs_done if ended is None else ended + 1)
            monitor = member.checkpoint.monitor if member.checkpoint else None
            if monitor and member.best_score is not None:
                member.metrics[f"{monitor}_best"] = member.best_score
            if member.pruned_at_epoch is not None:  # recorded `pruned`, as a pruned single run (mlplab.run.results)
                member.metrics[PRUNED_AT] = float(member.pruned_at_epoch)

    def _train_epoch(self) -> None:
        started = time.perf_counter()
        self._compute_only_training()  # from the epoch after a member froze: its final state is saved by then
        active = self.active
        n_members = len(active)
        self.network.train()
        for order in self.orders:
            order.set_epoch(self.epoch)
        for member in self.members:
            member.module.train_metrics.reset()
        index = torch.stack([self.orders[i].indices(self.device) for i in active])  # (computed members, samples)
        batches = torch.split(index, self.batch_size, dim=1)
        kept: list[tuple[int, torch.Tensor]] = []  # (step, losses) since the last divergence check
        self.epoch_steps = 0
        for b, batch in enumerate(batches):
            flat = batch.reshape(-1)
            size = batch.shape[1]
            x = self.x.index_select(0, flat).view(n_members, size, *self.x.shape[1:])
            # each member's shifts from its own generator before its dropout masks: its single run's order
            x = augment_members(x, self.datamodules, self.network.generators)
            y = self.y.index_select(0, flat).view(n_members, size, *self.y.shape[1:])
            output = self.network(x)
            losses = self.loss(output, y)
            self.optimizer.zero_grad()
            losses.sum().backward()  # each member's gradient is its own loss's
            if self.clip_value:
                nn.utils.clip_grad_value_(self.network.parameters(), float(self.clip_value))
            lrs = [s.lr for s in self.schedules]
            frozen = self.frozen
            self.optimizer.step([self.schedules[i].settings() for i in active], [frozen[i] for i in active])
            for slot, i in enumerate(active):
                if not frozen[i]:
                    self.members[i].module.train_metrics.keep(losses[slot], output[slot], y[slot])
            if self.log_every and (self.step + 1) % self.log_every == 0:
                values = losses.detach().tolist()
                for slot, i in enumerate(active):
                    if not frozen[i]:
                        self.members[i].rows.append((self.step, {"train/loss": values[slot], "lr": lrs[i]}))
            kept.append((self.step, losses.detach()))
            self.step += 1
            self.epoch_steps += 1
            if self.check_every and ((b + 1) % self.check_every == 0 or b + 1 == len(batches)):
                self._check_divergence(kept, lrs)
                kept = []
            for i, schedule in enumerate(self.schedules):
                if not frozen[i]:
                    # Lightning counts a step scheduler's `frequency` in the epoch's batches (batch_idx + 1)
                    schedule.step("step", self.epoch_steps)
            if stops.pending() and b + 1 < len(batches):  # after the last batch: validation and checkpoints first
                self._save_last(epoch_done=False)
                stops.raise_pending()
        train_s = time.perf_counter() - started
        self._end_epoch(train_s)
        log.info("%s", self._epoch_line(time.perf_counter() - started))

    def _epoch_line(self, seconds: float) -> str:
        """One line per stacked epoch: each member's monitored metric, or why it no longer trains."""
        parts = []
        for member in self.members:
            monitor = member.checkpoint.monitor if member.checkpoint else None
            if member.diverged:
                parts.append(f"#{member.num} diverged")
            elif member.stopped_epoch is not None and member.stopped_epoch < self.epoch:
                parts.append(f"#{member.num} {'pruned' if member.pruned_at_epoch is not None else 'stopped'}")
            elif member.finished_epoch is not None and member.finished_epoch < self.epoch:
                parts.append(f"#{member.num} finished ({member.finished_epoch + 1} epochs)")
            elif monitor and monitor in member.metrics:
                parts.append(f"#{member.num} {monitor}={member.metrics[monitor]:.4g}")
            else:
                parts.append(f"#{member.num} train/loss={member.metrics.get('train/loss_epoch', math.nan):.4g}")
        of = f"/{self.max_epochs}" if self.max_epochs is not None else ""
        computed = f"{len(self.active)}/{len(self.members)} members computed"
        return f"Stack epoch {self.epoch + 1}{of} ({seconds:.1f} s, {computed}): {', '.join(parts)}"

    def training_state(self, i: int, epoch_done: bool) -> dict[str, Any]:
        """Member i's optimizer, scheduler and loop state, as its single run's checkpoint would hold them now."""
        schedule = self.schedules[i]
        interval = schedule.config.get("interval", "epoch") if schedule.config else None
        loops = loops_state(self.epoch, self.epoch_steps, self.steps_per_epoch, self.val_batches, interval, epoch_done)
        loops["fit_loop"]["state_dict"] = {"combined_loader": [{"epoch": self.epoch, "served": self.epoch_steps}]}
        optimizer_state = member_optimizer_state(
            self.optimizer.member_state(self.active.index(i), self.param_order),
            len(self.param_order),
            schedule.shadow.param_groups[0],
        )
        return {
            "loops": loops,
            "optimizer_states": [optimizer_state],
            "lr_schedulers": [schedule.config["scheduler"].state_dict()] if schedule.config else [],
        }

    def _save_last(self, epoch_done: bool) -> None:
        """Every member still training saves `last.ckpt` at this point (a stop signal came)."""
        for i, member in enumerate(self.members):
            if not member.frozen:
                state = self.training_state(i, epoch_done)
                save_checkpoints(member, self.member_weights(i), self.epoch, last_only=True, training=state)

    def _check_divergence(self, kept: list[tuple[int, torch.Tensor]], lrs: list[float]) -> None:
        losses = torch.stack([losses for _, losses in kept])  # (steps, computed members)
        bad = ~torch.isfinite(losses)
        for slot in bad.any(dim=0).nonzero().flatten().tolist():
            i = self.active[slot]
            member = self.members[i]
            if member.diverged:
                continue
            first = int(bad[:, slot].int().argmax())
            step, loss = kept[first][0], float(losses[first, slot])
            # the single run's DivergenceCheck message, for this member
            member.diverged = (
                f"Training diverged: the training loss became {loss} at step {step} (epoch {self.epoch}). "
                f"The likely cause is a learning rate too large for this model (lr={lrs[i]:g} at the time): try a "
                f"smaller lr (e.g. lr={lrs[i] / 10:g}), a scheduler with warm-up, or gradient clipping "
                "(trainer.gradient_clip_val=1.0)."
            )
            member.global_step = self.step
            log.warning("Stacked job #%d diverged at step %d; the other members go on", member.num, step)

    @torch.no_grad()
    def _validate(self) -> None:
        self.network.eval()
        n_members = len(self.active)
        frozen = self.frozen
        # the validation batches TensorBatches serves: near-equal parts, in order
        parts = torch.tensor_split(
            torch.arange(len(self.x_val), device=self.device), -(-len(self.x_val) // self.eval_batch_size)
        )
        with stops.in_phase("validation"):
            for part in parts:
                x = self.x_val.index_select(0, part)
                y = self.y_val.index_select(0, part)
                output = self.network(x.unsqueeze(0).expand(n_members, *x.shape))
                losses = self.loss(output, y.unsqueeze(0).expand(n_members, *y.shape))
                for slot, i in enumerate(self.active):
                    if not frozen[i]:
                        self.members[i].module.val_metrics.keep(losses[slot], output[slot], y)

    def _end_epoch(self, train_s: float) -> None:
        self._validate()
        samples = len(self.x)
        for i, member in enumerate(self.members):
            if member.frozen:
                continue
            values = _epoch_values(member.module.train_metrics)
            values.update(_epoch_values(member.module.val_metrics))
            # time/*: the stack's training time, which every member shared
            timing = {"time/epoch_s": train_s, "time/samples_per_s": samples / train_s}
            member.metrics = {**values, **timing}
            member.global_step = self.step
            member.rows.append((self.step - 1, {**member.metrics, "epoch": self.epoch}))  # Lightning adds `epoch`
            # early stopping counts this epoch before the checkpoints are saved, as in a single run (Lightning runs
            # checkpoint callbacks last): last.ckpt holds its patience so far
            stops_early(member, self.epoch, self.min_epochs)  # sets member.stopped_epoch: frozen from the next epoch on
            # Lightning steps an epoch's schedulers when its last batch is done (a single run's end-of-epoch checkpoint
            # holds that step), a ReduceLROnPlateau only once the epoch ended, after the checkpoints
            schedule = self.schedules[i]
            if not schedule.on_plateau:
                schedule.step("epoch", self.epoch + 1)
            state = self.training_state(i, epoch_done=True)
            weights = self.member_weights(i)
            save_checkpoints(member, weights, self.epoch, training=state)
            if schedule.on_plateau:
                schedule.step("epoch", self.epoch + 1, metrics=member.metrics)
            # its single run's pictures are drawn after validation, at the epoch end: its early stopping decided
            trainer = member.trainer
            trained_all = self.epoch + 1 == self.member_epochs[i]
            last = trained_all or bool(trainer and trainer.should_stop)
            keep_weights_picture(member, weights, self.epoch, last)
            if trained_all:  # its single run's fit ends here: frozen from the next epoch on, finished as completed
                member.finished_epoch = self.epoch
