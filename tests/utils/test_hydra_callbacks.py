import sys

from omegaconf import OmegaConf

from mlplab.train import main
from tests.conftest import make_idx_dataset, tiny_overrides


def test_a_sweep_over_data_sets_keeps_its_jobs_in_one_folder_named_by_task(tmp_path, monkeypatch):
    files = make_idx_dataset(tmp_path / "data", name="MNIST")
    assert make_idx_dataset(tmp_path / "data", name="FashionMNIST") == files
    # no hydra.sweep.dir: the folder comes from task_name, i.e. `${hydra:runtime.choices.data}`
    argv = ["train.py", "-m", "data=mnist,fashion_mnist", f"paths.output_root={tmp_path / 'outputs'}",
            *tiny_overrides(tmp_path / "data", files), "trainer.max_epochs=1", "baselines=false", "logger=none"]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    sweeps = list((tmp_path / "outputs").glob("*/multiruns/*"))
    assert len(sweeps) == 1 and sweeps[0].parts[-3] == "mnist"  # the sweep's base choice names its folder
    assert sorted(p.name for p in sweeps[0].iterdir()) == ["0", "1", "multirun.yaml", "summary.csv", "summary.md", "summary.png"]
    for job, data in (("0", "mnist"), ("1", "fashion_mnist")):
        hydra_cfg = OmegaConf.load(sweeps[0] / job / ".hydra" / "hydra.yaml").hydra
        assert hydra_cfg.runtime.choices.data == data
        assert (sweeps[0] / job / "checkpoints" / "last.ckpt").is_file()
