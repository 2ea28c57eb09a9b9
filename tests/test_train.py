"""Real Lightning runs of the whole train.py path on tiny IDX files the tests write."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau, StepLR

from mlplab.config.compose import compose_run_config
from mlplab.eval import evaluate
from mlplab.run.build import build_callbacks, build_datamodule, build_loggers, build_module, build_trainer
from mlplab.train import main, train
from mlplab.utils.errors import ConfigError
from tests.conftest import make_idx_dataset, tiny_overrides
from tests.helpers.callbacks import PROBE, HostSyncs, Probe


def test_fast_dev_run_goes_through_fit_and_test(compose_config, tiny_mnist):
    cfg = compose_config(*tiny_overrides(*tiny_mnist), "debug=fast_dev_run")
    metrics = train(cfg)
    assert {"train/loss", "val/acc", "val/loss", "test/acc", "test/loss"} <= metrics.keys()


def test_overfitting_one_small_batch_reaches_full_train_accuracy(compose_config, tiny_mnist):
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist), "debug=overfit", "trainer.overfit_batches=1", "trainer.max_epochs=60", "lr=3e-3"
    )
    metrics = train(cfg)
    assert metrics["train/acc"] == 1.0
    assert metrics["train/loss"] < 0.05


def test_a_run_writes_its_config_metrics_and_checkpoints(compose_config, tiny_mnist, tmp_path):
    metrics = train(compose_config(*tiny_overrides(*tiny_mnist), "logger=csv"))
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    assert [float(r["val/acc"]) for r in rows if r.get("val/acc")] and any(r.get("test/acc") for r in rows)
    assert {p.name for p in (run / "checkpoints").iterdir()} <= {
        "best-epoch000.ckpt",
        "best-epoch001.ckpt",
        "last.ckpt",
    }
    assert (run / "checkpoints" / "last.ckpt").is_file() and list((run / "checkpoints").glob("best-epoch*.ckpt"))
    assert metrics["test/acc"] > 0.5  # the tiny classes are easy: a 2-epoch run learns them


def test_a_linear_model_with_early_stopping_stops_when_val_acc_stalls(compose_config, tiny_mnist):
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist),
        "model=linear",
        "callbacks=early_stopping",
        "trainer.max_epochs=30",
        "lr=1e-2",
        "logger=csv",
        PROBE,
    )
    metrics = train(cfg)
    probe = Probe.last
    # model=linear: no hidden layer, logistic regression
    assert [type(m) for m in probe.module.network.layers] == [torch.nn.Flatten, torch.nn.Linear]
    assert probe.module.network.sizes == [784, 10] and metrics["test/acc"] > 0.5
    # callbacks=early_stopping: patience 3 on val/acc; it stopped 3 epochs after the best one, long before 30
    rows = csv.DictReader(open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv"))
    accs = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    best = accs.index(max(accs))
    stopping = probe.trainer.early_stopping_callback
    assert (stopping.monitor, stopping.mode, stopping.patience) == ("val/acc", "max", 3)
    assert len(accs) == best + 4 == probe.epochs < 30, accs
    assert metrics["epochs"] == best + 4  # what run_record.json records


def test_same_seed_gives_the_same_metrics_and_another_seed_does_not(compose_config, tiny_mnist):
    runs = [train(compose_config(*tiny_overrides(*tiny_mnist), f"seed={seed}")) for seed in (1, 1, 2)]
    assert runs[0]["test/loss"] == runs[1]["test/loss"]
    assert runs[0]["test/loss"] != runs[2]["test/loss"]


OPTIMIZERS = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adamw": torch.optim.AdamW}
SCHEDULERS = {"cosine": CosineAnnealingLR, "step": StepLR, "onecycle": OneCycleLR, "plateau": ReduceLROnPlateau}


def _one_cycle_lrs(max_lr: float, steps: int) -> list[float]:
    """conf/scheduler/onecycle.yaml's schedule over a run of `steps` steps, step by step."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    schedule = OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=0.25)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


@pytest.mark.parametrize("scheduler", ["cosine", "step", "onecycle", "plateau"])
@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adamw"])
def test_every_optimizer_and_scheduler_trains(compose_config, tiny_mnist, optimizer, scheduler):
    cfg = compose_config(
        *tiny_overrides(*tiny_mnist),
        f"optimizer={optimizer}",
        f"scheduler={scheduler}",
        "trainer.max_epochs=1",
        "logger=none",
        PROBE,
    )
    assert torch.isfinite(torch.tensor(train(cfg)["test/loss"]))
    probe = Probe.last
    # the configured classes, with the config's settings
    assert type(probe.optimizer) is OPTIMIZERS[optimizer] and probe.optimizer.defaults["lr"] == 1e-3
    [config] = probe.scheduler_configs
    assert type(config.scheduler) is SCHEDULERS[scheduler]
    assert config.interval == ("step" if scheduler == "onecycle" else "epoch")
    # the learning rate of each of the 16 steps, and after the epoch's scheduler step
    lr = 1e-3
    expected = {
        "cosine": ([lr] * 16, 0.0),  # T_max = max_epochs = 1: down to eta_min after the one epoch
        "step": ([lr] * 16, lr),  # halved every 2 epochs
        "onecycle": (_one_cycle_lrs(lr, 16), None),  # total_steps: the run's 16 steps
        "plateau": ([lr] * 16, lr),  # halved after 1 epoch without improvement (patience 1): one epoch cannot
    }[scheduler]
    assert probe.lrs == pytest.approx(expected[0], rel=1e-12, abs=1e-15)
    if scheduler == "onecycle":
        assert probe.lrs[0] == pytest.approx(lr / 25) and max(probe.lrs) == pytest.approx(lr, rel=1e-3)
        assert config.scheduler.total_steps == 16
    else:
        assert probe.final_lr == pytest.approx(expected[1], abs=1e-15)
    if scheduler == "plateau":
        assert (config.monitor, config.scheduler.mode, config.scheduler.factor, config.scheduler.patience) == (
            "val/acc",
            "max",
            0.5,
            1,
        )
    # and it learned: the last 4 steps' mean loss below the first 4's
    assert len(probe.losses) == 16 and sum(probe.losses[-4:]) < sum(probe.losses[:4]), probe.losses


KNOBS = [
    "model.hidden=[64,32]",
    "model.activation=gelu",
    "model.dropout=0.2",
    "model.norm=layer",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "seed=1",
    "scheduler=cosine",
    "optimizer=sgd",
    "optimizer.momentum=0.9",
    "optimizer.nesterov=true",
]


@pytest.fixture(scope="module")
def knobs_run(tmp_path_factory):
    """One run with every knob of the issue set: (its config, its metrics, its Probe)."""
    root = tmp_path_factory.mktemp("knobs")
    overrides = [*tiny_overrides(root / "data", make_idx_dataset(root / "data")), *KNOBS, "logger=csv", PROBE]
    cfg = compose_run_config(overrides, root / "run")
    metrics = train(cfg)
    return cfg, metrics, Probe.last


def _layers(probe, kind):
    return [layer for layer in probe.module.network.layers if isinstance(layer, kind)]


def _seeded_network(cfg, seed):
    L.seed_everything(seed, workers=True, verbose=False)
    return build_module(cfg, build_datamodule(cfg)).network.state_dict()


KNOB_CHECKS = {
    "model.hidden=[64,32]": lambda cfg, probe: (
        [layer.out_features for layer in _layers(probe, torch.nn.Linear)] == [64, 32, 10]
    ),
    "model.activation=gelu": lambda cfg, probe: (
        len(_layers(probe, torch.nn.GELU)) == 2 and not _layers(probe, torch.nn.ReLU)
    ),
    "model.dropout=0.2": lambda cfg, probe: [layer.p for layer in _layers(probe, torch.nn.Dropout)] == [0.2, 0.2],
    "model.norm=layer": lambda cfg, probe: (
        [layer.normalized_shape for layer in _layers(probe, torch.nn.LayerNorm)] == [(64,), (32,)]
    ),
    # 500 training images: 31 batches of 16 and one of 4
    "data.batch_size=16": lambda cfg, probe: probe.batch_sizes == [16] * 31 + [4],
    "trainer.max_epochs=1": lambda cfg, probe: (probe.epochs, probe.steps) == (1, 32),
    # the network started from seed 1's weights, not seed 2's
    "seed=1": lambda cfg, probe: (
        all(torch.equal(probe.initial[k], v) for k, v in _seeded_network(cfg, 1).items())
        and not torch.equal(probe.initial["layers.1.weight"], _seeded_network(cfg, 2)["layers.1.weight"])
    ),
    # one cosine epoch: lr 1e-3 for every step of it, then eta_min
    "scheduler=cosine": lambda cfg, probe: (
        [type(s) for s in probe.schedulers] == [CosineAnnealingLR]
        and probe.schedulers[0].T_max == 1
        and probe.lrs == [1e-3] * 32
        and probe.final_lr == 0.0
    ),
    "optimizer=sgd": lambda cfg, probe: type(probe.optimizer) is torch.optim.SGD,
    # the momentum buffers exist only when momentum > 0
    "optimizer.momentum=0.9": lambda cfg, probe: (
        probe.optimizer.param_groups[0]["momentum"] == 0.9
        and all("momentum_buffer" in state for state in probe.optimizer.state.values())
    ),
    "optimizer.nesterov=true": lambda cfg, probe: probe.optimizer.param_groups[0]["nesterov"] is True,
}


@pytest.mark.parametrize("knob", KNOBS)
def test_the_model_and_data_knobs_of_the_issue_are_overrides(knobs_run, knob):
    cfg, _, probe = knobs_run
    assert KNOB_CHECKS[knob](cfg, probe), knob


def test_the_knobs_run_learns_and_reports_what_it_logged(knobs_run):
    cfg, metrics, probe = knobs_run
    run = Path(cfg.paths.output_dir)
    (logged,) = [float(r["test/acc"]) for r in csv.DictReader(open(run / "csv" / "metrics.csv")) if r.get("test/acc")]
    assert metrics["test/acc"] == logged
    assert metrics["test/acc"] > 0.5  # 10 classes: chance is 0.1; one epoch learns the tiny bands
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["model"]["hidden"] == [64, 32]
    assert saved["state_dict"]["network.layers.1.weight"].shape == (64, 784)


def test_eval_of_the_best_checkpoint_reproduces_the_test_metrics(compose_config, tiny_mnist):
    data_dir, files = tiny_mnist
    worse = "+callbacks.worse={_target_:tests.helpers.callbacks.WorseLastEpoch}"
    metrics = train(compose_config(*tiny_overrides(data_dir, files), worse))
    checkpoints = Path(compose_config().paths.output_dir) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert metrics["val/acc_best"] > 0.5 > metrics["val/acc"]  # epoch 0 learned; the zeroed network guesses one class
    # last.ckpt is the last epoch's (2 x 16 steps), though that epoch did not improve val/acc
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 32

    def evaluate_checkpoint(name):
        cfg = compose_config(
            f"ckpt_path={checkpoints / name}", f"paths.data_dir={data_dir}", "accelerator=cpu", config_name="eval"
        )
        return evaluate(cfg)

    best, last = evaluate_checkpoint("best-epoch000.ckpt"), evaluate_checkpoint("last.ckpt")
    # train() tested the best checkpoint: eval of it gives the same numbers, eval of the last (zeroed) weights does not
    assert best["test/acc"] == pytest.approx(metrics["test/acc"]) and metrics["test/acc"] > 0.5
    assert best["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-5)
    assert last["test/loss"] == pytest.approx(math.log(10), rel=1e-6)  # zero logits: uniform over 10 classes
    assert last["test/acc"] < 0.5


def test_a_2x2_sweep_runs_four_jobs_in_their_own_folders(tiny_mnist, tmp_path, monkeypatch):
    argv = [
        "train.py",
        "-m",
        "optimizer=adam,sgd",
        "lr=1e-3,1e-2",
        f"paths.output_root={tmp_path}",
        *tiny_overrides(*tiny_mnist),
        "trainer.max_epochs=1",
        "logger=csv",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    [sweep_dir] = (tmp_path / "mnist" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
        seen.add((OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.runtime.choices.optimizer, cfg.lr))
        assert (job / "csv" / "metrics.csv").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
    assert seen == {("adam", 1e-3), ("adam", 1e-2), ("sgd", 1e-3), ("sgd", 1e-2)}


def test_each_run_sets_its_own_float32_matmul_precision(compose_config, tiny_mnist):
    try:
        train(compose_config(*tiny_overrides(*tiny_mnist), "trainer.max_epochs=1", "matmul_precision=high"))
        assert torch.get_float32_matmul_precision() == "high"
        # the next run of a sweep gets the default back, not the previous job's choice
        train(compose_config(*tiny_overrides(*tiny_mnist), "trainer.max_epochs=1"))
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_steps_wait_for_the_device_only_on_log_steps(compose_config, tmp_path):
    # 100 training batches an epoch, logged (and checked for divergence) every 50: 4 of 200 steps may read
    # values; 2 validation batches an epoch and 4 test batches, none
    data_dir = tmp_path / "data"
    syncs = HostSyncs()
    cfg = compose_config(
        *tiny_overrides(data_dir, make_idx_dataset(data_dir, n_train=3300)),
        "logger=csv",
        "trainer.log_every_n_steps=50",
        "trainer.enable_progress_bar=true",
    )
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, [syncs, *build_callbacks(cfg)], build_loggers(cfg))
    with syncs:
        trainer.fit(module, datamodule=datamodule)
        bar = trainer.progress_bar_callback.get_metrics(trainer, module)
        logged_loss = trainer.callback_metrics["train/loss"].item()
        trainer.test(module, datamodule=datamodule)
    assert trainer.global_step == 200 and trainer.num_val_batches == [2] and trainer.num_test_batches == [4]
    # the log steps, each epoch's last step
    assert sorted(syncs.synced) == [("train", 49), ("train", 99), ("train", 149), ("train", 199)], syncs.synced
    assert bar["train/loss"] == f"{logged_loss:.3g}"  # the bar still shows the training loss: the one logged last


def test_a_one_cycle_schedule_too_short_to_warm_up_is_refused_naming_its_numbers_and_the_way_out(
    compose_config, tiny_mnist
):
    # 500 training images in batches of 128: 4 steps, of which 0.25 warm up: one step (OneCycleLR divides by zero)
    short = [*tiny_overrides(*tiny_mnist), "scheduler=onecycle", "data.batch_size=128", "trainer.max_epochs=1"]
    with pytest.raises(ConfigError, match=r"0\.25 x 4 = 1 step.*scheduler\.scheduler\.pct_start"):
        train(compose_config(*short, "logger=none"))
    # the way out the message names, as written
    metrics = train(compose_config(*short, "scheduler.scheduler.pct_start=0.5", "logger=none"))
    assert math.isfinite(metrics["test/loss"])
