"""Every GPU path of mlplab, run for real on the GPUs present (`make test-gpu`; skipped without a GPU, so CI runs none).

On one GPU the whole module takes a few minutes: tiny data for the paths, then the GPU rows of the benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlplab.config.compose import compose_run_config
from mlplab.config.location import PROJECT_ROOT
from mlplab.eval import evaluate
from mlplab.predict import predict
from mlplab.run.build import build_callbacks, build_datamodule, build_loggers, build_module, build_trainer
from mlplab.run.record import read_run_record
from mlplab.train import train
from tests.conftest import make_idx_dataset, tiny_overrides
from tests.gpu.conftest import NO_GPU
from tests.helpers.callbacks import HostSyncs, Probe
from tests.helpers.runs import job_folders, run_train_process

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]

GPUS = torch.cuda.device_count()


def on_gpu(tiny_mnist, *extra: str) -> list[str]:
    """Tiny MNIST overrides, on one GPU."""
    return [*(o for o in tiny_overrides(*tiny_mnist) if o != "accelerator=cpu"), "accelerator=gpu", *extra]


@pytest.mark.parametrize(
    "switches",
    [[], ["matmul_precision=high"], ["trainer.precision=bf16-mixed"], ["trainer.precision=16-mixed"], ["compile=true"]],
    ids=["fp32", "tf32", "bf16-mixed", "16-mixed", "compile"],
)
def test_a_run_trains_and_tests_on_the_gpu(compose_config, tiny_mnist, switches, figures):
    cfg = compose_config(
        *on_gpu(tiny_mnist, "trainer.max_epochs=3", "+callbacks.probe={_target_:tests.helpers.callbacks.Probe}"),
        *switches,
    )
    metrics = train(cfg)
    assert Probe.last.module.device.type == "cuda"
    assert metrics["test/acc"] > 0.6, metrics
    figures("test/acc", f"{metrics['test/acc']:.3f}")


def test_a_gpu_checkpoint_evaluates_and_predicts_on_the_gpu_and_on_the_cpu(compose_config, tiny_mnist, tmp_path):
    cfg = compose_config(*on_gpu(tiny_mnist))
    trained = train(cfg)
    run = Path(cfg.paths.output_dir)
    for accelerator in ("gpu", "cpu"):
        eval_cfg = compose_run_config(
            [f"ckpt_path={run}", f"accelerator={accelerator}", f"paths.data_dir={cfg.paths.data_dir}"],
            tmp_path / f"eval_{accelerator}",
            "eval",
        )
        metrics = evaluate(eval_cfg)
        assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6), accelerator
        assert metrics["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-4), accelerator
    from PIL import Image

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("test")
    images = datamodule.splits["test"][0].reshape(-1, 28, 28)[:8].numpy()
    (tmp_path / "digits").mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / "digits" / f"{i}.png")
    output = predict(
        compose_run_config(
            [f"ckpt_path={run}", f"inputs={tmp_path / 'digits'}", f"paths.data_dir={cfg.paths.data_dir}"],
            tmp_path / "predict",
            "predict",
        )
    )
    assert len(output.read_text().splitlines()) == 1 + len(images)


def test_steps_wait_for_the_gpu_only_on_log_steps(compose_config, tmp_path, figures):
    data_dir = tmp_path / "data"
    overrides = [
        o for o in tiny_overrides(data_dir, make_idx_dataset(data_dir, n_train=3300)) if o != "accelerator=cpu"
    ]
    cfg = compose_config(*overrides, "accelerator=gpu", "logger=csv", "trainer.log_every_n_steps=50")
    syncs = HostSyncs()
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, [syncs, *build_callbacks(cfg)], build_loggers(cfg))
    with syncs:
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule)
    assert sorted(syncs.synced) == [("train", 49), ("train", 99), ("train", 149), ("train", 199)], syncs.synced
    figures("steps that read a value", f"{len(syncs.synced)} of {trainer.global_step}")


def test_ddp_on_every_gpu_present(tiny_mnist, tmp_path, figures):
    run_dir = tmp_path / "ddp"
    quick = [o for o in tiny_overrides(*tiny_mnist) if o != "accelerator=cpu"]
    run_train_process(*quick, "accelerator=ddp", f"trainer.devices={GPUS}", f"hydra.run.dir={run_dir}")
    record = read_run_record(run_dir)
    assert record["status"] == "completed" and record["metrics"]["test/acc"] > 0.5
    figures("GPUs", GPUS)


@pytest.mark.skipif(GPUS < 2, reason="a 2-process DDP needs 2 GPUs")
def test_ddp_on_two_gpus_inside_a_sweep(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    quick = [o for o in tiny_overrides(*tiny_mnist) if o != "accelerator=cpu"]
    run_train_process("-m", *quick, "accelerator=ddp", "trainer.devices=2", "lr=1e-3,3e-3", f"hydra.sweep.dir={sweep}")
    assert [read_run_record(job)["status"] for job in job_folders(sweep)] == ["completed", "completed"]


def test_a_stacked_sweep_on_the_gpu_gives_the_basic_launchers_results(tiny_mnist, tmp_path):
    quick = [o for o in on_gpu(tiny_mnist) if not o.startswith("callbacks.")]
    common = [*quick, "callbacks=lean", "baselines=false", "logger=csv", "lr=1e-3,3e-3", "seed=1,2"]
    run_train_process("-m", *common, f"hydra.sweep.dir={tmp_path / 'basic'}")
    run_train_process("-m", *common, "hydra/launcher=stacked", f"hydra.sweep.dir={tmp_path / 'stacked'}")
    for one, many in zip(job_folders(tmp_path / "basic"), job_folders(tmp_path / "stacked")):
        a, b = read_run_record(one), read_run_record(many)
        assert b["status"] == "completed" and b["overrides"] == a["overrides"]
        for key in ("test/loss", "test/acc"):  # the GPU's kernels differ between one and many members: looser
            assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-2, abs=1e-3), (one.name, key)


def test_the_parallel_launcher_gives_each_job_its_own_gpu(tiny_mnist, tmp_path, figures):
    sweep = tmp_path / "sweep"
    quick = [o for o in on_gpu(tiny_mnist) if not o.startswith("callbacks.")]
    jobs = 2 * GPUS
    seeds = ",".join(str(seed) for seed in range(1, jobs + 1))
    run_train_process(
        "-m", "hydra/launcher=parallel", *quick, "callbacks=none", f"seed={seeds}", f"hydra.sweep.dir={sweep}"
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert all(r["status"] == "completed" for r in records)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    expected = visible.split(",") if visible else [str(i) for i in range(GPUS)]
    assert {r["devices"] for r in records} == set(expected)  # every GPU used, each job on one
    figures("jobs", f"{jobs} on {GPUS} GPU(s)")


def test_the_benchmark_s_gpu_rows(tmp_path, figures):
    """`make bench`'s GPU rows on real MNIST (fetched like `make train` does): one run's epoch, mlplab against a plain
    loop, and a 16-member stacked sweep against the basic launcher."""
    report_file = tmp_path / "bench.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "mlplab.bench", "--devices", "cuda", "--batch-sizes", "64", "512", "--epochs", "2",
        "--paths", "plain", "mlplab", "--stacked-sweep", "--json", str(report_file),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert report["results"] and report["stacked_sweep"]
    table = result.stdout.split("\nload average")[0]
    (PROJECT_ROOT / "outputs" / "gpu_check").mkdir(parents=True, exist_ok=True)
    (PROJECT_ROOT / "outputs" / "gpu_check" / "bench.md").write_text(table + "\n")
    figures("bench tables", "outputs/gpu_check/bench.md")
