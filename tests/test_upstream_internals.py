"""Canaries: every private name of Lightning, Hydra, its plugins, joblib/loky and W&B that mlplab reaches, checked
fast, so that an upgrade which renames one fails here with what to change, not somewhere deep in a run.

The pins in pyproject.toml keep these versions; README "Upgrading a dependency" says how to move a pin.
(The stacked launcher's checkpoints also write Lightning's loop-state keys: tests/sweeps/stacked/test_resumable.py
compares them with real single-run checkpoints.)
"""

from __future__ import annotations

import importlib

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import WandbLogger

from mlplab.distributed.launcher import HydraJobLauncher
from mlplab.distributed.strategy import HydraDDPStrategy

PRIVATE_IMPORTS = [
    # (module, name, who uses it)
    ("lightning.pytorch.strategies.launchers", "_SubprocessScriptLauncher", "mlplab.distributed (DDP in Hydra jobs)"),
    (
        "lightning.fabric.strategies.launchers.subprocess_script",
        "_launch_process_observer",
        "mlplab.distributed.launcher",
    ),
    ("lightning.fabric.utilities.distributed", "_set_num_threads_if_needed", "mlplab.distributed.launcher"),
    ("lightning.fabric.utilities.types", "_PATH", "mlplab.checkpoints.io"),
    ("hydra._internal.utils", "_locate", "mlplab.config.types"),
    ("hydra._internal.core_plugins.basic_sweeper", "BasicSweeper", "the resumable basic sweeper"),
    ("hydra.core.utils", "_save_config", "mlplab.sweeps.stacked.members"),
    ("hydra_plugins.hydra_joblib_launcher._core", "execute_job", "mlplab.sweeps.isolated (hydra/launcher=parallel)"),
    ("hydra.core.override_parser.types", "Override._get_value_element_as_str", "mlplab.sweeps.optuna.space"),
]


@pytest.mark.parametrize(("module", "name", "user"), PRIVATE_IMPORTS, ids=[f"{m}.{n}" for m, n, _ in PRIVATE_IMPORTS])
def test_private_names_mlplab_imports_still_exist(module: str, name: str, user: str) -> None:
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    assert found is not None, f"{module}.{name} is gone: {user} uses it; find its new name and change it there"


def test_ddp_strategy_still_installs_mlplab_s_launcher_for_ddp() -> None:
    """Lightning calls the strategy's `_configure_launcher`, which sets `_launcher` (mlplab.distributed.strategy)."""
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=HydraDDPStrategy(), logger=False, enable_checkpointing=False
    )
    launcher = getattr(trainer.strategy, "_launcher", None)
    assert isinstance(launcher, HydraJobLauncher), (
        "Lightning no longer configures the DDP launcher through DDPStrategy._configure_launcher / _launcher: "
        "change mlplab.distributed.strategy.HydraDDPStrategy"
    )
    for attribute in ("procs", "_check_can_spawn_children", "cluster_environment", "num_processes", "num_nodes"):
        assert hasattr(launcher, attribute), (
            f"_SubprocessScriptLauncher.{attribute} is gone: change mlplab.distributed.launcher.HydraJobLauncher"
        )


def test_early_stopping_criteria_still_answer_should_stop_and_why() -> None:
    """mlplab.sweeps.stacked.members.stops_early asks EarlyStopping's own criteria for each member."""
    callback = EarlyStopping(monitor="val/loss", patience=0, mode="min")
    assert hasattr(callback, "_evaluate_stopping_criteria"), (
        "EarlyStopping._evaluate_stopping_criteria is gone: change mlplab.sweeps.stacked.members.stops_early"
    )
    should_stop, _ = callback._evaluate_stopping_criteria(torch.tensor(1.0))  # the first value is the best so far
    assert should_stop is False
    should_stop, reason = callback._evaluate_stopping_criteria(torch.tensor(2.0))  # worse, with patience 0
    assert should_stop is True and isinstance(reason, str)


def test_the_fit_loop_still_has_the_counters_and_loader_restore_mlplab_uses() -> None:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    epoch_loop = trainer.fit_loop.epoch_loop
    assert isinstance(getattr(epoch_loop, "_batches_that_stepped", None), int), (
        "fit_loop.epoch_loop._batches_that_stepped is gone: change mlplab.sweeps.stacked.members.set_logging_step"
    )
    assert callable(getattr(trainer.fit_loop, "_load_combined_loader_states", None)), (
        "fit_loop._load_combined_loader_states is gone: change SupervisedModule.on_train_start (exact mid-epoch "
        "resume with a schedule that needs the step count)"
    )


def test_the_basic_sweeper_still_has_the_methods_the_resumable_sweeper_calls() -> None:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    for method in ("_parse_config", "split_arguments", "validate_batch_is_legal"):
        assert callable(getattr(BasicSweeper, method, None)), (
            f"hydra's BasicSweeper.{method} is gone: change mlplab.sweeps.resume.resumable_basic_sweep"
        )


def test_an_optuna_trial_is_still_rebuilt_in_another_process_from_its_id() -> None:
    """mlplab's Optuna sweeper passes each job `trial._trial_id`; the job's pruning callback rebuilds the trial with
    `optuna.trial.Trial(study, trial_id)` (mlplab.sweeps.optuna.search, mlplab.callbacks.optuna_pruning)."""
    import optuna

    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    asked = study.ask()
    assert isinstance(getattr(asked, "_trial_id", None), int), (
        "optuna's Trial._trial_id is gone: change mlplab.sweeps.optuna.search"
    )
    rebuilt = optuna.trial.Trial(study, asked._trial_id)
    rebuilt.report(0.5, step=0)
    assert rebuilt.number == asked.number and study.trials[0].intermediate_values == {0: 0.5}


def test_loky_executors_still_keep_their_worker_processes_by_pid() -> None:
    """mlplab.sweeps.isolated signals a stopped sweep's running jobs through the executor's `_processes`."""
    from joblib.externals.loky.process_executor import ProcessPoolExecutor

    executor = ProcessPoolExecutor(max_workers=1)
    try:
        assert executor.submit(int, "7").result(timeout=60) == 7
        processes = getattr(executor, "_processes", None)
        assert isinstance(processes, dict) and all(pid == p.pid for pid, p in processes.items()), (
            "loky's ProcessPoolExecutor._processes ({pid: process}) changed: change mlplab.sweeps.isolated.launch"
        )
    finally:
        executor.shutdown(wait=True)


def test_lightning_s_wandb_logger_still_keeps_wandb_init_s_keywords(tmp_path) -> None:
    """mlplab.loggers.wandb.WandbLogger adjusts wandb.init's keywords (mode, anonymous) before the run starts."""
    logger = WandbLogger(save_dir=str(tmp_path), mode="offline", project="canary")
    assert isinstance(getattr(logger, "_wandb_init", None), dict) and logger._wandb_init.get("mode") == "offline", (
        "Lightning's WandbLogger no longer keeps wandb.init's keywords in _wandb_init: change mlplab.loggers.wandb"
    )
    assert hasattr(logger, "_experiment"), "WandbLogger._experiment is gone: change mlplab.loggers.wandb"


def test_the_callback_methods_a_stack_member_drives_with_its_stand_in_trainer_are_still_there() -> None:
    """mlplab.sweeps.stacked.members lets Lightning's own ModelCheckpoint and EarlyStopping code decide for each
    member (mlplab.sweeps.stacked.stand_in): a rename fails here."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    for owner, name in (
        (ModelCheckpoint, "_save_topk_checkpoint"),
        (ModelCheckpoint, "_save_last_checkpoint"),
        (EarlyStopping, "_run_early_stopping_check"),
    ):
        assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name} is gone: change mlplab.sweeps.stacked"
