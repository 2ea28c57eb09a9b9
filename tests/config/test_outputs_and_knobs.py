"""Each data set and experiment writes under outputs/<its task name>/, and `ckpt_path=last` looks there;
the Trainer's common knobs are keys of conf/train.yaml with Lightning's own defaults."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mlplab.checkpoints.io import CheckpointError
from mlplab.checkpoints.same_run import checkpoint_to_resume
from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers

CHOICES = [
    (f"{group}={path.stem}", path.stem)
    for group in ("data", "experiment")
    for path in sorted((CONFIG_DIR / group).glob("*.yaml"))
]
KNOBS = {  # key: a value other than Lightning's default
    "gradient_clip_val": 1.0,
    "gradient_clip_algorithm": "value",
    "accumulate_grad_batches": 4,
    "limit_train_batches": 0.25,
    "limit_val_batches": 3,
    "limit_test_batches": 5,
    "val_check_interval": 0.5,
    "check_val_every_n_epoch": 2,
    "max_steps": 100,
    "overfit_batches": 2,
    "fast_dev_run": 3,
}


def compose_with_hydra(*overrides: str):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize(("choice", "task"), CHOICES)
def test_each_data_set_and_experiment_has_its_own_output_folders(choice, task, tmp_path):
    cfg = compose_with_hydra(choice, f"paths.output_root={tmp_path}")
    assert cfg.task_name == task
    assert Path(cfg.hydra.run.dir).parent == tmp_path / task / "runs"
    assert Path(cfg.hydra.sweep.dir).parent == tmp_path / task / "multiruns"
    # ckpt_path=last looks for this task's runs, and nowhere else
    OmegaConf.update(cfg, "paths.output_dir", str(tmp_path / "new-run"), force_add=True)
    OmegaConf.update(cfg, "ckpt_path", "last")
    with pytest.raises(CheckpointError) as error:
        checkpoint_to_resume(cfg, module=None)
    assert str(tmp_path / task / "runs") in str(error.value)
    last = tmp_path / task / "runs" / "2026-01-01_00-00-00" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint") as error:
        checkpoint_to_resume(cfg, module=None)
    assert str(last) in str(error.value)


def test_the_trainer_knobs_default_to_lightnings_own(compose_config):
    trainer = compose_config().trainer
    defaults = inspect.signature(L.Trainer.__init__).parameters
    for key in KNOBS:
        default = defaults[key].default
        assert trainer[key] == default or (trainer[key] is None and key.startswith("limit_")), key


def test_the_trainer_knobs_are_plain_overrides_that_reach_the_trainer(compose_config):
    # fast_dev_run and overfit_batches set the limits themselves: each gets a Trainer of its own
    alone = ("fast_dev_run", "overfit_batches")
    for knobs in ({k: v for k, v in KNOBS.items() if k not in alone}, *({k: KNOBS[k]} for k in alone)):
        cfg = compose_config("accelerator=cpu", "callbacks=none", *(f"trainer.{k}={v}" for k, v in knobs.items()))
        trainer = instantiate(cfg.trainer, logger=False)
        for key, value in knobs.items():
            assert getattr(trainer, key) == value, key


@pytest.mark.parametrize("accelerator", ["ddp", "ddp_cpu"])
def test_ddp_options_pass_through_without_a_plus(compose_config, accelerator):
    cfg = compose_config(f"accelerator={accelerator}", "trainer.strategy.find_unused_parameters=true")
    assert instantiate(cfg.trainer.strategy)._ddp_kwargs["find_unused_parameters"] is True
