"""Interrupted runs save a checkpoint, and resuming it ends exactly where an uninterrupted run ends."""

import logging
import re
import shlex
import signal
import sys
import time

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlplab.checkpoints.io import CheckpointError
from mlplab.checkpoints.resume import resume_command, sweep_resume_command
from mlplab.run.record import read_run_record
from mlplab.train import cli, train
from mlplab.utils.overrides import quoted_override
from mlplab.utils.shell import interpreter
from tests.conftest import tiny_overrides
from tests.helpers.callbacks import interrupt
from tests.helpers.runs import STEPS_PER_EPOCH, assert_same_history, digest, metrics_rows


@pytest.fixture(autouse=True)
def _restore_sigint():
    """Lightning ignores Ctrl-C after handling one; give the test process its handler back."""
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _overrides(tiny_mnist, *extra):
    # dropout draws random numbers every step and the scheduler has state: both must resume exactly
    return [
        *tiny_overrides(*tiny_mnist),
        "trainer.max_epochs=2",
        "model.hidden=[64]",
        "model.dropout=0.3",
        "scheduler=cosine",
        "logger=csv",
        *extra,
    ]


def _run(compose_config, tmp_path, name, *overrides):
    cfg = compose_config(*overrides)
    cfg.paths.output_dir = str(tmp_path / name)
    # wall-clock figures (time/epoch_s, time/samples_per_s) differ between any two runs: compare the rest
    return {key: value for key, value in train(cfg).items() if not key.startswith("time/")}


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle"])  # onecycle: its total_steps loads the data early
def test_interrupted_runs_resume_to_exactly_the_metrics_of_an_uninterrupted_one(
    compose_config, tiny_mnist, tmp_path, scheduler
):
    # monitor the *lowest* accuracy: the best checkpoint is then one from before the interruption, in the old folder
    overrides = _overrides(tiny_mnist, "monitor.mode=min", f"scheduler={scheduler}")
    uninterrupted = _run(compose_config, tmp_path, "uninterrupted", *overrides)
    interruptions = {  # name: (epoch, batch after which the signal comes, signal)
        "sigterm_mid_epoch": (1, 5, signal.SIGTERM),  # what SLURM sends before it kills a job (Ctrl-C: the same path)
        "sigterm_at_epoch_end": (0, STEPS_PER_EPOCH - 1, signal.SIGTERM),  # validation runs first; stops a batch later
        "killed": (1, 5, 0),  # nothing saved at the kill: resumes from the last epoch's end
    }
    for name, (epoch, batch, signum) in interruptions.items():
        with pytest.raises(SystemExit) as stopped:
            _run(compose_config, tmp_path, name, *overrides, interrupt(epoch, batch, signum))
        assert stopped.value.code == 128 + (signum or signal.SIGKILL), name  # the shell's: 143 SIGTERM, 130 Ctrl-C
        saved = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)
        # stopped right after that batch, or after the next one when it ended an epoch
        expected_step = (
            epoch * STEPS_PER_EPOCH + batch + 1 + (batch == STEPS_PER_EPOCH - 1) if signum else STEPS_PER_EPOCH
        )
        assert saved["global_step"] == expected_step, name
        if signum:  # the batch it stopped after is logged too: its metrics.csv holds every step the checkpoint trained
            logged = [int(row["step"]) for row in metrics_rows(tmp_path / name) if row["train/loss"]]
            assert logged == list(range(expected_step)), name
        before = {p: p.read_bytes() for p in (tmp_path / name).rglob("*") if p.is_file()}

        resumed = _run(compose_config, tmp_path, f"{name}_resumed", *overrides, f"ckpt_path={tmp_path / name}")
        assert resumed == uninterrupted, (
            name
        )  # every metric: train and val of the last epoch, test of the best checkpoint
        assert {p: p.read_bytes() for p in (tmp_path / name).rglob("*") if p.is_file()} == before, name
        # the whole history: the interrupted run's rows up to its checkpoint, then the resumed run's
        assert_same_history(tmp_path / f"{name}_resumed", tmp_path / "uninterrupted", name)


def test_the_first_epoch_after_a_resume_is_timed_from_its_restart(compose_config, tiny_mnist, tmp_path, caplog):
    # issue 29: "Epoch 2/2: ... (2070.6 s)", the machine's uptime: the epoch's clock was never started on resume
    started = time.perf_counter()
    overrides = [
        *(o for o in _overrides(tiny_mnist) if not o.startswith("trainer.enable_progress_bar")),
        "callbacks.progress_bar.epoch_lines=true",
    ]
    with pytest.raises(SystemExit):
        _run(compose_config, tmp_path, "stopped", *overrides, interrupt(1, 5, signal.SIGTERM))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mlplab.callbacks.progress_bar"):
        _run(compose_config, tmp_path, "resumed", *overrides, f"ckpt_path={tmp_path / 'stopped'}")
    whole_test = time.perf_counter() - started

    (line,) = [r.getMessage() for r in caplog.records if r.name == "mlplab.callbacks.progress_bar"]
    assert line.startswith("Epoch 1/1: ")  # the second epoch, numbered as its checkpoint is (epoch001)
    assert 0 <= float(re.fullmatch(r".*\((\S+) s\)", line).group(1)) < whole_test, line  # a tiny epoch shows 0.0 s
    # the epoch's row (the earlier ones are the stopped run's)
    (timed,) = [row for row in metrics_rows(tmp_path / "resumed") if row["epoch"] == "1" and row["time/epoch_s"]]
    epoch_s = float(timed["time/epoch_s"])
    assert 0 < epoch_s < whole_test
    # in that time the resumed run trained the rest of the epoch: its 500 images but the 6 batches of 32 before the stop
    assert float(timed["time/samples_per_s"]) == pytest.approx((500 - 6 * 32) / epoch_s, rel=1e-4)


def test_a_killed_run_resumes_from_its_last_finished_epoch_even_when_that_epoch_was_not_its_best(
    compose_config, tiny_mnist, tmp_path
):
    # lr 1e-9 leaves val/acc where it was: only epoch 0 is a best (Lightning 2.6 then skips last.ckpt)
    overrides = _overrides(tiny_mnist, "trainer.max_epochs=3", "lr=1e-9")
    with pytest.raises(SystemExit):
        _run(compose_config, tmp_path, "killed", *overrides, interrupt(2, 5, 0))
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, 2 * STEPS_PER_EPOCH)
    assert [p.name for p in (tmp_path / "killed" / "checkpoints").glob("best-*")] == ["best-epoch000.ckpt"]


@pytest.mark.parametrize(("times", "code"), [(1, 130), (2, 1)], ids=["once", "twice"])
def test_ctrl_c_stops_after_the_batch_and_twice_stops_at_once_both_saving(
    compose_config, tiny_mnist, tmp_path, times, code
):
    with pytest.raises(SystemExit) as stopped:
        _run(
            compose_config,
            tmp_path,
            "interrupted",
            *_overrides(tiny_mnist),
            interrupt(1, 3, signal.SIGINT, times=times),
        )
    assert stopped.value.code == code  # 130: the shell's code for Ctrl-C; 1: Lightning's exit after a KeyboardInterrupt
    saved = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (
        1,
        STEPS_PER_EPOCH + 4,
    )  # once: the batch boundary SIGTERM stops at


def test_ckpt_path_last_resumes_the_latest_run_into_a_new_folder_keeps_the_old_one_and_says_why(
    tiny_mnist, tmp_path, monkeypatch, capsys
):
    runs = tmp_path / "outputs" / "mnist" / "runs"
    common = ["train.py", *_overrides(tiny_mnist), f"paths.output_root={tmp_path / 'outputs'}"]
    monkeypatch.setattr(sys, "argv", [*common, f"hydra.run.dir={runs / 'first'}", interrupt(1, 2, signal.SIGTERM)])
    with pytest.raises(SystemExit):
        cli()
    before = digest(runs / "first")
    assert "checkpoints/last.ckpt" in before and "csv/metrics.csv" in before

    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", f"paths.output_root={tmp_path / 'outputs'}", f"hydra.run.dir={runs / 'second'}", "ckpt_path=last"],
    )
    capsys.readouterr()
    cli()
    assert f"ckpt_path=last picked {runs / 'first'}: its checkpoints/last.ckpt" in capsys.readouterr().out
    assert digest(runs / "first") == before  # nothing of the interrupted run was touched
    rows = (runs / "second" / "csv" / "metrics.csv").read_text()
    assert "test/acc" in rows and (runs / "second" / "checkpoints" / "last.ckpt").is_file()
    assert (
        f"Resuming from {runs / 'first' / 'checkpoints' / 'last.ckpt'}" in (runs / "second" / "train.log").read_text()
    )
    # the picked run's overrides came with it, and the new run's own record names the folder, not `last`
    assert f"ckpt_path={runs / 'first'}" in OmegaConf.load(runs / "second" / ".hydra" / "overrides.yaml")


def _issue_13_run(tiny_mnist, tmp_path, *extra):
    """Issue 13's reproduction: `lr=3e-3 data.batch_size=32 scheduler=cosine trainer.max_epochs=2`, not the defaults."""
    tiny = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith(("data.batch_size=", "trainer.max_epochs="))]
    return [
        "train.py",
        *tiny,
        "model.hidden=[16]",
        "logger=csv",
        "callbacks=lean",
        "baselines=false",
        f"paths.output_root={tmp_path / 'outputs'}",
        "lr=3e-3",
        "data.batch_size=32",
        "scheduler=cosine",
        *extra,
    ]


def test_a_run_folder_resumes_with_that_runs_own_config_by_the_printed_command(tiny_mnist, tmp_path, monkeypatch):
    runs = tmp_path / "outputs" / "mnist" / "runs"
    first = runs / "first run é"  # a space and a non-ASCII letter: the printed command must quote both for Hydra
    monkeypatch.setattr(
        sys,
        "argv",
        _issue_13_run(
            tiny_mnist,
            tmp_path,
            "trainer.max_epochs=2",
            quoted_override("hydra.run.dir", str(first)),
            interrupt(1, 5, signal.SIGTERM),
        ),
    )
    with pytest.raises(SystemExit) as stopped:
        cli()
    assert stopped.value.code == 143
    (hint,) = re.findall(r"Resume with: (.+)", (first / "train.log").read_text())
    assert hint == f"{interpreter()} train.py \"ckpt_path='{first}'\""
    before = digest(first)

    words = shlex.split(hint)
    assert words[:2] == [interpreter(), "train.py"]
    monkeypatch.setattr(sys, "argv", words[1:])  # the printed command, run as train.py runs it
    cli()
    (resumed,) = [folder for folder in runs.iterdir() if folder != first]
    cfg = OmegaConf.load(resumed / ".hydra" / "config.yaml")
    assert (cfg.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (3e-3, 32, 2)
    assert cfg.scheduler.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    record = read_run_record(resumed)
    assert (record["status"], record["epochs"]) == ("completed", 2)
    assert f"Resuming from {first / 'checkpoints' / 'last.ckpt'}" in (resumed / "train.log").read_text()
    assert digest(first) == before


def test_a_resume_refuses_what_may_not_change_listing_it_and_allows_more_epochs(tiny_mnist, tmp_path, monkeypatch):
    runs = tmp_path / "outputs" / "mnist" / "runs"
    first = runs / "first"
    monkeypatch.setattr(
        sys,
        "argv",
        [*_issue_13_run(tiny_mnist, tmp_path, "trainer.max_epochs=1", "scheduler=none"), f"hydra.run.dir={first}"],
    )
    cli()
    before = digest(first)

    monkeypatch.setattr(sys, "argv", ["train.py", f"ckpt_path={first}", "lr=1e-2", "model.dropout=0.25"])
    with pytest.raises(
        SystemExit,
        match=r"(?s)was trained with another config.*lr: 0.003 in the run, 0.01 here.*"
        r"model.dropout: 0.0 in the run, 0.25 here",
    ) as refused:
        cli()
    assert f"Resume the run as it was with: {interpreter()} train.py ckpt_path={first}" in str(refused.value)
    assert sorted(runs.iterdir()) == [first]  # refused before Hydra made a folder

    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
            "trainer.max_epochs=2",
            "lr=0.003",
            "logger=none",
        ],
    )  # the same lr, written another way, is no difference
    cli()
    (resumed,) = [folder for folder in runs.iterdir() if folder != first]
    assert (read_run_record(resumed)["status"], read_run_record(resumed)["epochs"]) == ("completed", 2)
    assert digest(first) == before


def test_resuming_into_the_runs_own_folder_is_refused_before_anything_is_written(tiny_mnist, tmp_path, monkeypatch):
    runs = tmp_path / "outputs" / "mnist" / "runs"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *_issue_13_run(tiny_mnist, tmp_path, "trainer.max_epochs=2"),
            f"hydra.run.dir={runs / 'first'}",
            interrupt(1, 2, signal.SIGTERM),
        ],
    )
    with pytest.raises(SystemExit):
        cli()
    before = digest(runs / "first")
    assert read_run_record(runs / "first")["status"] == "interrupted" and ".hydra/overrides.yaml" in before

    monkeypatch.setattr(sys, "argv", ["train.py", f"ckpt_path={runs / 'first'}", f"hydra.run.dir={runs / 'first'}"])
    with pytest.raises(SystemExit, match="is inside this run's own folder .*Nothing was written"):
        cli()
    assert digest(runs / "first") == before  # .hydra/ and run_record.json byte for byte as they were


def test_resume_errors_say_what_is_wrong(compose_config, tiny_mnist, tmp_path):
    cfg = compose_config(*_overrides(tiny_mnist), "ckpt_path=last", f"paths.output_root={tmp_path / 'outputs'}")
    with pytest.raises(
        CheckpointError, match=r"ckpt_path=last: no run under .*outputs/mnist/runs has a checkpoints/last.ckpt"
    ):
        train(cfg)

    _run(compose_config, tmp_path, "first", *_overrides(tiny_mnist), "trainer.max_epochs=1")
    with pytest.raises(
        CheckpointError,
        match=r"holds a different network: network.layers.1.weight is \(64, 784\) there but "
        r"\(32, 784\) here \(model.hidden=\[64\] there, \[32\] here\)",
    ):
        _run(
            compose_config,
            tmp_path,
            "second",
            *_overrides(tiny_mnist),
            "model.hidden=[32]",
            f"ckpt_path={tmp_path / 'first'}",
        )

    # derived values count too: the optimizer's lr follows `lr`, cosine's T_max follows trainer.max_epochs
    with pytest.raises(
        CheckpointError,
        match=r"was trained with another config.*\n  lr: 0.001 in the run, 0.01 here\n  "
        r"optimizer.lr: 0.001 in the run, 0.01 here\n  "
        r"scheduler.scheduler.T_max: 1 in the run, 2 here\nResume the run as it was",
    ):
        _run(compose_config, tmp_path, "second", *_overrides(tiny_mnist), "lr=1e-2", f"ckpt_path={tmp_path / 'first'}")

    with pytest.raises(CheckpointError, match="is inside this run's own folder"):
        _run(compose_config, tmp_path, "first", *_overrides(tiny_mnist), f"ckpt_path={tmp_path / 'first'}")
    with pytest.raises(CheckpointError, match="is a folder without checkpoints/last.ckpt"):
        _run(compose_config, tmp_path, "third", *_overrides(tiny_mnist), f"ckpt_path={tmp_path}")


def _module_for_metrics():
    from functools import partial

    from mlplab.models.module import SupervisedModule
    from mlplab.models.tasks import ClassificationTask

    return SupervisedModule(torch.nn.Linear(4, 3), ClassificationTask(3), optimizer=partial(torch.optim.SGD, lr=0.1))


def test_a_checkpoint_at_any_step_resumes_the_epochs_training_metrics_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr("mlplab.models.module.StageMetrics.flush_every", 4)  # several updates per epoch
    generator = torch.Generator().manual_seed(0)
    # losses of very different sizes, so that how the float sum is chunked shows in its last bits
    steps = [
        (
            torch.rand((), generator=generator) * 10.0 ** torch.randint(-3, 4, (), generator=generator).item(),
            torch.randn(32, 3, generator=generator),
            torch.randint(0, 3, (32,), generator=generator),
        )
        for _ in range(10)
    ]
    uninterrupted = _module_for_metrics()
    for step in steps:
        uninterrupted.train_metrics.keep(*step)
    uninterrupted.train_metrics.update()
    expected = uninterrupted.train_metrics.loss.compute()
    # the test can fail: counting the kept steps at a checkpoint (chunks cut at the checkpoint) changes the sum
    losses = torch.cat([loss.expand(32) for loss, _, _ in steps])
    assert any(losses[: cut * 32].sum() + losses[cut * 32 :].sum() != losses.sum() for cut in range(1, len(steps)))

    for cut in range(1, len(steps)):
        interrupted = _module_for_metrics()
        for step in steps[:cut]:
            interrupted.train_metrics.keep(*step)
        checkpoint = {"state_dict": interrupted.state_dict()}
        interrupted.on_save_checkpoint(checkpoint)
        torch.save(checkpoint, tmp_path / "last.ckpt")
        checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)

        resumed = _module_for_metrics()
        resumed.on_load_checkpoint(checkpoint)
        resumed.load_state_dict(checkpoint["state_dict"])
        for step in steps[cut:]:
            resumed.train_metrics.keep(*step)
        resumed.train_metrics.update()
        assert resumed.train_metrics.loss.compute().item() == expected.item(), f"checkpoint after step {cut}"
        assert resumed.train_metrics.values.compute() == uninterrupted.train_metrics.values.compute()


@pytest.mark.parametrize("make_command", [resume_command, sweep_resume_command])
@pytest.mark.parametrize("name", ["my runs", "réseau", "a b é", "it's $HOME", "plain"])
def test_a_printed_resume_command_gives_back_its_folder_through_the_shell_and_hydra(tmp_path, make_command, name):
    folder = tmp_path / name
    words = shlex.split(make_command(folder))
    assert words[0] == interpreter() and words[1] == "train.py"
    (override,) = OverridesParser.create().parse_overrides([w for w in words if "=" in w])
    assert override.value() == str(folder.resolve())
