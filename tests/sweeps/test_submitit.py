"""The submitit launchers: `hydra/launcher=submitit_local` runs each job as a submitted process (a real
`python train.py -m` on tiny files, a DDP job included), and the SLURM preset asks for what a DDP job needs."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mlplab.config.location import CONFIG_DIR
from mlplab.run.record import read_run_record
from tests.helpers.runs import job_folders, run_train_process, short


@pytest.mark.slow
def test_a_submitit_local_sweep_runs_each_job_as_a_submitted_process_ddp_included(tiny_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    # job 1 is a 2-process DDP run started from inside a submitit worker (not from train.py's command line)
    run_train_process(
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "torch_threads=1",
        *short(*tiny_mnist),
        "accelerator=cpu,ddp_cpu",
        f"hydra.sweep.dir={sweep}",
    )
    records = [read_run_record(job) for job in job_folders(sweep)]
    assert [r["status"] for r in records] == ["completed", "completed"]
    assert (
        all(r["job"]["id"] for r in records) and records[0]["job"]["id"] != records[1]["job"]["id"]
    )  # submitit job ids
    assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2
    assert (sweep / "1" / "train_rank1.log").is_file() and not (sweep / "0" / "train_rank1.log").exists()
    assert (sweep / "summary.md").is_file()


def test_the_slurm_preset_asks_for_one_task_and_gpu_per_ddp_device(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            [
                "hydra/launcher=slurm",
                "accelerator=ddp",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
            ],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes, launcher.partition) == (4, 4, 2, "gpu")
    assert launcher.timeout_min == 240
    assert cfg.trainer.strategy._target_ == "mlplab.distributed.strategy.HydraDDPStrategy"
