"""What makes a member's checkpoint resume as a single run: Lightning's loop counters, the member's slice of the
stacked optimizer's state, its scheduler's state, as a single run's checkpoint holds them at the same point.

The counters follow what Lightning 2.6 (pinned) writes at the end of an epoch and after a training batch (where
ResumableCheckpoint saves on a stop signal); tests/sweeps/stacked/test_resumable.py compares them with a single run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _progress(total: int, current: int, *, completed_lag: int = 0, fields: Sequence[str] = ()) -> dict[str, Any]:
    """A Lightning progress record: every field `total` / `current`, `completed` lagging by `completed_lag`."""

    def counts(value: int) -> dict[str, int]:
        row = {"ready": value, "completed": value - completed_lag}
        row.update({name: value for name in fields})
        return row

    return {"total": counts(total), "current": counts(current)}


def loops_state(
    epoch: int,
    steps_in_epoch: int,
    steps_per_epoch: int,
    val_batches: int,
    scheduler_interval: str | None,
    epoch_done: bool,
) -> dict[str, Any]:
    """Lightning's `loops` entry after `steps_in_epoch` training steps of epoch `epoch` (0-based), each epoch
    `steps_per_epoch` steps; `epoch_done`: the epoch's validation ran too (the end-of-epoch checkpoint)."""
    step = epoch * steps_per_epoch + steps_in_epoch
    lag = 0 if epoch_done else 1  # a checkpoint taken in a batch's end hook: that batch is not completed yet
    batch_fields = ("started", "processed")
    if scheduler_interval == "step":
        scheduler = _progress(step, steps_in_epoch)
    elif scheduler_interval == "epoch":
        scheduler = _progress(epoch + 1, 1) if epoch_done else _progress(epoch, 0)
    else:
        scheduler = _progress(0, 0)
    ran_validation = epoch_done or epoch > 0
    val_progress = _progress(
        val_batches if ran_validation else 0, val_batches if ran_validation else 0, fields=batch_fields
    )
    if not epoch_done:  # a new epoch's batches started: the validation totals were reset, its last counts remain
        val_progress["total"] = {key: 0 for key in val_progress["total"]}
    epochs = _progress(epoch + 1, epoch + 1, fields=("started",))
    for row in epochs.values():
        row["completed"] = epoch
        row["processed"] = epoch + (1 if epoch_done else 0)

    def unused_loop(last_batch_flag: bool = True) -> dict[str, Any]:
        progress = _progress(0, 0, fields=batch_fields)
        return {"state_dict": {}, "batch_progress": progress | ({"is_last_batch": False} if last_batch_flag else {})}

    return {
        "fit_loop": {
            "state_dict": {},  # the data loader's state: mlplab.sweeps.stacked.members adds the member's own
            "epoch_loop.state_dict": {"_batches_that_stepped": step - lag},
            "epoch_loop.batch_progress": _progress(step, steps_in_epoch, completed_lag=lag, fields=batch_fields)
            | {"is_last_batch": epoch_done},
            "epoch_loop.scheduler_progress": scheduler,
            "epoch_loop.automatic_optimization.state_dict": {},
            "epoch_loop.automatic_optimization.optim_progress": {
                "optimizer": {
                    "step": _progress(step, steps_in_epoch),
                    "zero_grad": _progress(step, steps_in_epoch, fields=("started",)),
                }
            },
            "epoch_loop.manual_optimization.state_dict": {},
            "epoch_loop.manual_optimization.optim_step_progress": _progress(0, 0),
            "epoch_loop.val_loop.state_dict": {},
            "epoch_loop.val_loop.batch_progress": val_progress | {"is_last_batch": ran_validation},
            "epoch_progress": epochs,
        },
        "validate_loop": unused_loop(),
        "test_loop": unused_loop(),
        "predict_loop": unused_loop(last_batch_flag=False),
    }


def member_optimizer_state(state: dict[int, dict[str, Any]], count: int, param_group: dict[str, Any]) -> dict[str, Any]:
    """A member's optimizer state_dict as its single run's optimizer would have it: `state` (its moments, momentum
    buffers and step counts by its own parameter index, mlplab.sweeps.stacked.optimizer), its `count` parameters in
    one param group `param_group` (its shadow optimizer's: its own lr and scheduled settings), without the params."""
    group = {key: value for key, value in param_group.items() if key != "params"}
    return {"state": state, "param_groups": [{**group, "params": list(range(count))}]}
