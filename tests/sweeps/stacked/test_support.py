"""Every setting of Lightning's Trainer, ModelCheckpoint and EarlyStopping is either honoured by the stacked fit or
sends the job to run alone when set to another value, with a reason naming the key: none is ignored silently."""

from __future__ import annotations

import inspect

import lightning as L
import pytest
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from mlplab.sweeps.stacked import support
from mlplab.sweeps.stacked.grouping import unstackable_reason


@pytest.mark.parametrize(
    ("upstream", "honoured", "at_default"),
    [
        (L.Trainer, support.TRAINER_HONOURED, support.TRAINER_AT_DEFAULT),
        (ModelCheckpoint, support.CHECKPOINT_HONOURED, support.CHECKPOINT_AT_DEFAULT),
        (EarlyStopping, support.EARLY_STOPPING_HONOURED, support.EARLY_STOPPING_AT_DEFAULT),
    ],
)
def test_every_argument_of_the_installed_lightning_is_honoured_or_accepted_only_at_its_default(
    upstream, honoured, at_default
):
    arguments = set(inspect.signature(upstream).parameters)
    assert not set(honoured) & set(at_default)
    assert arguments - set(honoured) - set(at_default) == set(), "classify these in mlplab.sweeps.stacked.support"
    for key, allowed in at_default.items():
        default = inspect.signature(upstream).parameters[key].default
        assert default in allowed or key in ("devices", "num_sanity_val_steps"), (key, default)


@pytest.mark.parametrize(
    "override",
    [
        "trainer.max_epochs=-1",
        "trainer.max_epochs=null",
        "+trainer.min_epochs=15",
        "callbacks.model_checkpoint.save_top_k=-1",
        "callbacks.model_checkpoint.save_top_k=3",
        "callbacks=early_stopping",
        "callbacks.weights=null",
        "trainer.gradient_clip_val=0.5 trainer.gradient_clip_algorithm=value",
    ],
)
def test_settings_the_stacked_fit_implements_stack(compose_config, override):
    assert unstackable_reason(compose_config(*override.split())) is None


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+trainer.max_time=00:00:01:00", "trainer.max_time="),
        ("+trainer.min_steps=10", "trainer.min_steps=10"),
        ("trainer.num_sanity_val_steps=2", "trainer.num_sanity_val_steps=2"),
        ("trainer.deterministic=true", "trainer.deterministic=True"),
        ("trainer.check_val_every_n_epoch=2", "trainer.check_val_every_n_epoch=2"),
        ("+trainer.detect_anomaly=true", "trainer.detect_anomaly=True"),
        ("trainer.max_epochs=-2", "trainer.max_epochs=-2"),
        ("+trainer.not_a_lightning_key=1", "trainer.not_a_lightning_key=1"),
        ("+callbacks.model_checkpoint.every_n_epochs=2", "callbacks.model_checkpoint.every_n_epochs=2"),
        ("callbacks.model_checkpoint.save_last=link", "callbacks.model_checkpoint.save_last=link"),
        ("+callbacks.model_checkpoint.save_weights_only=true", "callbacks.model_checkpoint.save_weights_only=True"),
        ("+callbacks.model_checkpoint.save_on_train_epoch_end=true", "save_on_train_epoch_end=True"),
        (
            "callbacks=early_stopping +callbacks.early_stopping.check_on_train_epoch_end=true",
            "check_on_train_epoch_end",
        ),
        ("+callbacks.mine._target_=lightning.pytorch.callbacks.StochasticWeightAveraging", "callbacks.mine._target_="),
        ("trainer.plugins=[{_target_:lightning.pytorch.plugins.TorchCheckpointIO}]", "trainer.plugins="),
    ],
)
def test_another_value_sends_the_job_alone_naming_the_key(compose_config, override, named):
    reason = unstackable_reason(compose_config(*override.split()))
    assert reason is not None and named in reason, reason
