"""Stacks through submitit: the sweep's jobs are grouped in the submitting process and each stack is one submitit
job, whose members end as hydra/launcher=stacked leaves them (a real `python train.py -m` on tiny files)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from mlplab.config.location import CONFIG_DIR
from mlplab.config.resolvers import register_resolvers
from mlplab.run.record import read_run_record
from tests.conftest import tiny_overrides
from tests.helpers.runs import job_folders, run_train_process

STACK_LINE = "stack of 4 jobs (#0, #1, #2, #3) differing in lr, seed"


def grid_sweep(tiny_mnist, folder, launcher):
    quick = [o for o in tiny_overrides(*tiny_mnist) if not o.startswith("callbacks.")]
    result = run_train_process(
        "-m",
        *quick,
        "callbacks=lean",
        "logger=csv",
        "baselines=false",
        "trainer.max_epochs=1",
        "model.hidden=[16]",
        "optimizer=sgd",
        "torch_threads=1",
        "lr=0.01,0.03",
        "seed=1,2",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={folder}",
    )
    return job_folders(folder), result.stdout + result.stderr


@pytest.mark.slow
def test_a_stack_through_submitit_local_is_one_job_whose_members_match_the_stacked_launchers(tiny_mnist, tmp_path):
    submitted, output = grid_sweep(tiny_mnist, tmp_path / "submitit", "stacked_submitit_local")
    stacked, _ = grid_sweep(tiny_mnist, tmp_path / "stacked", "stacked")

    assert STACK_LINE in output  # grouped in the submitting process, as hydra/launcher=stacked groups them
    # submitit's folder for the one stack's job (beside the empty `%j` it makes before the job has an id)
    job_dirs = [p for p in (tmp_path / "submitit" / ".submitit").iterdir() if p.is_dir() and any(p.iterdir())]
    assert len(job_dirs) == 1, f"one submitit job for the one stack, found {job_dirs}"
    logs = sorted(p.name for p in job_dirs[0].iterdir() if p.suffix in (".out", ".err"))
    job_id = job_dirs[0].name
    assert logs == [f"{job_id}_0_log.err", f"{job_id}_0_log.out"]
    job_log = "".join((job_dirs[0] / name).read_text() for name in logs)
    assert f"Submitit job {job_id}: {STACK_LINE}" in job_log  # the submitted job trained the whole stack

    assert [p.name for p in submitted] == [p.name for p in stacked] == ["0", "1", "2", "3"]
    for mine, theirs in zip(submitted, stacked):
        a, b = read_run_record(mine), read_run_record(theirs)
        assert a["status"] == "completed" and a["overrides"] == b["overrides"]
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-5)
        for key in ("test/loss", "test/acc", "val/loss"):
            assert a["metrics"][key] == pytest.approx(b["metrics"][key], rel=1e-5), (mine.name, key)
        assert (mine / ".hydra" / "overrides.yaml").is_file() and (mine / "checkpoints" / "last.ckpt").is_file()
        assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in theirs.iterdir())


def test_stacked_slurm_composes_with_one_gpu_per_stack_and_max_members(tmp_path):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hydra/launcher=stacked_slurm", "hydra.launcher.max_members=8", f"hydra.sweep.dir={tmp_path}"],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "StackedSlurmLauncher" and launcher.max_members == 8
    init, resources = launcher.executor_parameters()
    assert init == {"folder": f"{tmp_path}/.submitit/%j", "slurm_max_num_timeout": 0}
    assert resources["gpus_per_node"] == 1 and resources["tasks_per_node"] == 1 and resources["nodes"] == 1
    assert resources["timeout_min"] == 240 and resources["mem_gb"] == 64 and resources["cpus_per_task"] == 8
    assert resources["slurm_partition"] is None and resources["slurm_array_parallelism"] == 16
    assert resources["name"] == cfg.hydra.job.name and "max_members" not in resources | init
