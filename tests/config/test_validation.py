"""Bad config values fail before anything is loaded or written, with a message naming the key, the value and what is valid."""

import json
import os
import sys

import pytest
import torch
from hydra.errors import ConfigCompositionException

from mlplab.config.validation import validate_config
from mlplab.train import main, train
from mlplab.utils.errors import ConfigError
from tests.conftest import tiny_overrides

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lr=0"], "lr=0 is invalid: must be a number > 0"),
        (["lr=-0.1"], "lr=-0.1 is invalid: must be a number > 0"),
        (
            ["model.hidden=[64,0]"],
            "model.hidden=[64, 0] is invalid: must be a list of layer widths >= 1, or [] for a linear model",
        ),
        (["model.hidden=[-3]"], "model.hidden=[-3] is invalid"),
        (["model.dropout=1.0"], "model.dropout=1.0 is invalid: must be in [0, 1)"),
        (["model.dropout=-0.1"], "model.dropout=-0.1 is invalid: must be in [0, 1)"),
        (
            ["model.activation=swish"],
            "model.activation='swish' is invalid: valid: relu, gelu, tanh, sigmoid, leaky_relu",
        ),
        (["model.init=orthogonal"], "model.init='orthogonal' is invalid: valid: kaiming, xavier, trunc_normal"),
        (["model.norm=group"], "model.norm='group' is invalid: valid: none, batch, layer"),
        (["data.batch_size=0"], "data.batch_size=0 is invalid: must be an integer >= 1"),
        (["data.eval_batch_size=-1"], "data.eval_batch_size=-1 is invalid: must be an integer >= 1"),
        (["data.val_size=0"], "data.val_size=0 is invalid: must be an integer >= 1"),
        (["data=housing", "data.val_fraction=1.5"], "data.val_fraction=1.5 is invalid: must be a share in (0, 1)"),
        (
            ["data=housing", "data.val_fraction=0", "data.test_fraction=0.2"],
            "data.val_fraction=0 is invalid: must be a share in (0, 1)",
        ),
        (
            ["data=housing", "data.val_fraction=0.5", "data.test_fraction=0.5"],
            "data.val_fraction + data.test_fraction=1.0 is invalid: the held-out shares must sum below 1",
        ),
        (
            ["data=housing", "data.feature_transform=log"],
            "data.feature_transform='log' is invalid: valid: standard, quantile",
        ),
        (["data.val_size=60000"], "data.val_size=60000 is invalid: must be below 60000, the number of training images"),
        (["model.hidden=300"], "model.hidden=300 is invalid: must be a list of layer widths >= 1"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' is invalid: must be an integer >= 1, or -1"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 is invalid"),
        (["trainer.gradient_clip_algorithm=l2"], "trainer.gradient_clip_algorithm='l2' is invalid: valid: norm, value"),
        (["trainer.precision=17"], "trainer.precision=17 is invalid: must be one of 64, 32, 16"),
        (
            ["+trainer.max_epoch=3"],
            "trainer.max_epoch is invalid: lightning.pytorch.Trainer takes no parameter 'max_epoch'",
        ),
        (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] is invalid: must be a list of 2"),
        (
            ["scheduler=step", "scheduler.scheduler.step_size=two"],
            "scheduler.scheduler.step_size='two' is invalid: must be an integer",
        ),
        (["logger.wandb.mode=online2"], "logger.wandb.mode='online2' is invalid: valid: online, offline, disabled"),
        (["callbacks.weights.scale=0"], "callbacks.weights.scale=0 is invalid: must be an integer >= 1"),
        (["callbacks.residuals.bins=0"], "callbacks.residuals.bins=0 is invalid: must be an integer >= 1"),
        (["callbacks.loss_curves.every_n_epochs=0"], "callbacks.loss_curves.every_n_epochs=0 is invalid"),
        (["callbacks.divergence.check_every_n_steps=0"], "callbacks.divergence.check_every_n_steps=0 is invalid"),
        (
            ["callbacks.weights=3"],
            "callbacks.weights=3 is invalid: must be a callback: a node with a _target_, or null",
        ),
        (
            ["baseline_models.logistic_regression.C=strong"],
            "baseline_models.logistic_regression.C='strong' is invalid: must be a number",
        ),
        (
            ["optimizer._target_=torch.optim.Adamx"],
            "optimizer._target_='torch.optim.Adamx' is invalid: no such class or function. Are you sure that 'Adamx' is importable",
        ),
        (
            ["accelerator=cpu", f"trainer.devices={CORES + 1}"],
            f"trainer.devices={CORES + 1} is invalid: cpu has {CORES} device(s) here: use a count from 1 to {CORES}",
        ),
        (["accelerator=cpu", "trainer.devices=0"], "trainer.devices=0 is invalid"),
        (["model.input_dropout=1.0"], "model.input_dropout=1.0 is invalid"),
        (["data.label_smoothing=-0.1"], "data.label_smoothing=-0.1 is invalid"),
        (["data.max_shift=-1"], "data.max_shift=-1 is invalid"),
        (["data.max_shift=28"], "data.max_shift=28 is invalid: must be an integer in [0, 28) pixels"),
        (["data=fashion_mnist", "data.max_shift=30"], "data.max_shift=30 is invalid: must be an integer in [0, 28)"),
        (["matmul_precision=tf32"], "matmul_precision='tf32' is invalid: valid: highest, high, medium"),
        (
            ["accelerator=cpu", f"trainer.devices=[0,{CORES}]"],
            f"trainer.devices=[0, {CORES}] is invalid: cpu has {CORES} device(s)",
        ),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_valid(compose_config, overrides, message):
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config(*overrides))
    assert message in str(error.value)


def test_the_default_configs_and_a_valid_split_pass(compose_config):
    validate_config(compose_config())
    validate_config(
        compose_config(
            "model=linear",
            "data=housing",
            "data.val_fraction=0.1",
            "data.test_fraction=0.2",
            "accelerator=cpu",
            f"trainer.devices={CORES}",
        )
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_gpu_accelerator_without_a_gpu_says_so(compose_config):
    with pytest.raises(
        ConfigError, match="trainer.accelerator='gpu' is invalid: this machine has no gpu device; use accelerator=cpu"
    ):
        validate_config(compose_config("accelerator=gpu"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+optimzer=adam",
            "optimzer is invalid: no part of mlplab reads a key 'optimzer' at the top level; did you mean "
            "optimizer? (a config group is chosen without +: optimizer=adam)",
        ),
        (
            "+tag=[baseline]",
            "tag is invalid: no part of mlplab reads a key 'tag' at the top level; did you mean tags?",
        ),
        (
            "+monitor.metrc=val/loss",
            "monitor.metrc is invalid: no part of mlplab reads a key 'metrc' under monitor; did you mean monitor.metric?",
        ),
        ("scheduler=cosine +scheduler.intervl=step", "did you mean scheduler.interval?"),
        ("+zzz=1", "zzz is invalid: no part of mlplab reads a key 'zzz' at the top level (a config group"),
        ("tags=[1]", "tags=[1] is invalid: must be a list of strings"),
        ("tags=baseline", "tags='baseline' is invalid: must be a list of strings"),
        (
            "trainer=cpu",
            "trainer='cpu' is invalid: must be a Trainer: a node with a _target_; there is no trainer config group: "
            "choose the device with the accelerator group, accelerator=cpu (options: auto, cpu, ddp, ddp_cpu, gpu, mps)",
        ),
    ],
)
def test_a_key_that_nothing_reads_is_refused_naming_the_nearest_known_one(compose_config, override, message):
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config(*override.split()))
    assert message in str(error.value)


def test_tags_are_a_list_of_strings_that_reaches_the_wandb_logger(compose_config):
    assert compose_config().tags == [] and compose_config().logger.wandb.tags == []
    cfg = compose_config("tags=[baseline,v2]", "logger=many")
    validate_config(cfg)
    assert cfg.logger.wandb.tags == ["baseline", "v2"]


def test_an_unknown_group_option_lists_the_valid_ones(compose_config):
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("optimizer=adamx")
    message = str(error.value)
    assert "Could not find 'optimizer/adamx'" in message
    assert all(name in message for name in ("adam", "adamw", "sgd", "rmsprop"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=-1", "lr=-1 is invalid: must be a number > 0"),
        ("model.hidden=300", "model.hidden=300 is invalid: must be a list of layer widths >= 1"),  # was a TypeError
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' is invalid: must be an integer"),  # was Lightning's assert
        ("data.val_size=60000", "data.val_size=60000 is invalid: must be below 60000"),  # was a ValueError once loaded
    ],
)
def test_a_bad_value_on_the_command_line_stops_before_data_or_outputs_are_made(
    tmp_path, monkeypatch, capsys, override, message
):
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    monkeypatch.setattr(sys, "argv", ["train.py", override, f"hydra.run.dir={run_dir}", f"paths.data_dir={data_dir}"])
    with pytest.raises(SystemExit) as stopped:
        main()
    # the process ends with `ConfigError: <message>` alone (Python prints SystemExit's text on stderr)
    assert message in str(stopped.value.code) and str(stopped.value.code).startswith("ConfigError: ")
    # only what Hydra writes before the run starts (the composed config, the log) and the record saying it failed
    assert {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", "run_record.json"}
    assert json.loads((run_dir / "run_record.json").read_text())["status"] == "failed"
    assert not data_dir.exists()


def test_train_validates_before_it_builds_anything(compose_config, tmp_path):
    cfg = compose_config("model.dropout=2", f"paths.data_dir={tmp_path / 'data'}")
    with pytest.raises(ConfigError, match="model.dropout=2"):
        train(cfg)
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_a_validation_split_as_large_as_the_users_own_files_stops_before_any_logger_starts(
    compose_config, tiny_mnist, tmp_path
):
    # the config cannot tell the size of files of the user's own (600 training images): the data is read first
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "logger=wandb", "data.val_size=600")
    with pytest.raises(
        ConfigError, match=r"data.val_size=600 is invalid: it leaves the train split empty \(train 0, val 600"
    ):
        train(cfg)
    assert not (tmp_path / "run" / "wandb").exists() and not (tmp_path / "run" / "checkpoints").exists()
