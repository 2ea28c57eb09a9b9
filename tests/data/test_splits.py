"""Splitting the training pool: the fixed split exactly as before folds existed, and k folds for cross-validation."""

import hashlib
import logging
from collections import Counter
from itertools import combinations

import hydra
import numpy as np
import pytest
import torch

from mlplab.config.compose import compose_run_config
from mlplab.config.validation import validate_config
from mlplab.data.housing import HousingDataModule
from mlplab.data.images import FashionMNISTDataModule, MNISTDataModule
from mlplab.data.sources import Mirror
from mlplab.data.splits import PoolSplit, seeded_order
from mlplab.train import train
from mlplab.utils.errors import ConfigError
from tests.conftest import make_idx_dataset, tiny_overrides
from tests.helpers.statlib import make_statlib_file


def _md5(tensor: torch.Tensor) -> str:
    return hashlib.md5(tensor.contiguous().numpy().tobytes()).hexdigest()


def _rows(folds):
    return hashlib.md5(";".join(",".join(map(str, fold.tolist())) for fold in folds).encode()).hexdigest()


def _housing(tmp_path, **kwargs) -> HousingDataModule:
    file_md5 = make_statlib_file(tmp_path / "mirror", n=300)
    dm = HousingDataModule(
        tmp_path / "data", sources=[Mirror(tmp_path / "mirror", "california_housing")], md5=file_md5, **kwargs
    )
    dm.prepare_data()
    dm.setup()
    return dm


def test_k_folds_are_disjoint_cover_the_pool_are_stratified_and_the_same_on_every_machine():
    pool = seeded_order(103, 0)
    labels = torch.from_numpy(np.random.default_rng(1).integers(0, 4, 103))
    splits = [PoolSplit(folds=5, fold=i, seed=7).split(pool, val_size=10, labels=labels) for i in range(5)]
    vals = [val for _, val in splits]
    assert all(not set(a.tolist()) & set(b.tolist()) for a, b in combinations(vals, 2))
    assert sorted(torch.cat(vals).tolist()) == list(range(103))
    assert all(
        sorted(torch.cat([train, val]).tolist()) == list(range(103)) and len(train) == 103 - len(val)
        for train, val in splits
    )
    assert [len(val) for val in vals] == [21, 21, 21, 20, 20]
    counts = np.array([np.bincount(labels[val].numpy(), minlength=4) for val in vals])  # fold x class
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all()
    # numpy's PCG64 permutation: these exact rows on every run, machine and torch version
    assert _rows(vals) == "cee1b428d42bf1326122b5b03cd4b1ba"
    unstratified = [PoolSplit(folds=5, fold=i, seed=7).split(pool, val_size=10)[1] for i in range(5)]
    assert _rows(unstratified) == "dffb380b2b7f3f783ae20f5dbd787ebd"
    assert _rows([PoolSplit(folds=5, fold=i, seed=8).split(pool, 10, labels)[1] for i in range(5)]) != _rows(vals)


def test_without_folds_the_images_split_is_the_one_before_folds_existed(tmp_path):
    files = make_idx_dataset(tmp_path / "data")
    dm = MNISTDataModule(tmp_path / "data", files=files, val_size=100)
    dm.setup()
    # checksums of the splits made by the code before folds (commit cfd5c25) from the same tiny files
    assert {split: (_md5(x), _md5(y)) for split, (x, y) in dm.splits.items()} == {
        "train": ("7d56a2c78645cf9dab0619fb904821ba", "4333699f7c392feecacdd17a099a605d"),
        "val": ("1feb9c49b8ee2a070a9d3a0ca7296cd7", "f03e1f46b38824b0e57ae57e8b26f4c2"),
        "test": ("3fbae750910b24b50f9f68c101374791", "892fba98cfec882e7ff629cc9bb6ad65"),
    }


def test_without_folds_the_housing_split_is_the_one_before_folds_existed(tmp_path):
    dm = _housing(tmp_path)
    assert {split: _md5(y) for split, (_, y) in dm.splits.items()} == {
        "train": "5433b1267e43e17e4faa56fd053c2c50",
        "val": "1980f2382765566ee68c763413fd1fa1",
        "test": "aecf083fbd9656f87f77c0a480618b3c",
    }


def test_image_folds_split_the_official_training_images_by_class_and_leave_the_test_set(tmp_path):
    files = make_idx_dataset(tmp_path / "data", name="FashionMNIST")
    fixed = FashionMNISTDataModule(tmp_path / "data", files=files, val_size=100)
    fixed.setup()
    modules = [FashionMNISTDataModule(tmp_path / "data", files=files, folds=3, fold=i) for i in range(3)]
    for dm in modules:
        dm.setup()
        assert [len(dm.splits[s][0]) for s in ("train", "val")] == [400, 200]  # 600 training images, val_size moot
        assert torch.equal(dm.splits["test"][0], fixed.splits["test"][0])
        pixels = dm.splits["train"][0].float() / 255
        assert (dm.mean, dm.std) == pytest.approx((pixels.mean().item(), pixels.std().item()))  # the fold's own
    images = [{bytes(row.numpy()) for row in dm.splits["val"][0]} for dm in modules]
    every = {bytes(row.numpy()) for row in torch.cat([fixed.splits["train"][0], fixed.splits["val"][0]])}
    assert len(every) == 600 and set().union(*images) == every and sum(map(len, images)) == 600
    counts = np.array([np.bincount(dm.splits["val"][1].numpy(), minlength=10) for dm in modules])
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all()


def test_housing_folds_split_the_rows_that_are_not_test_rows_and_leave_the_test_split(tmp_path):
    fixed = _housing(tmp_path)
    modules = [_housing(tmp_path / str(i), folds=4, fold=i) for i in range(4)]
    # rows by their target (a few clipped values repeat): the folds' validation rows together are the pool, once each
    pool = Counter(torch.cat([fixed.splits["train"][1], fixed.splits["val"][1]]).tolist())
    assert (
        sum(pool.values()) == 240 and sum((Counter(dm.splits["val"][1].tolist()) for dm in modules), Counter()) == pool
    )
    assert [len(dm.splits["val"][1]) for dm in modules] == [60, 60, 60, 60]
    for dm in modules:
        assert torch.equal(dm.splits["test"][1], fixed.splits["test"][1])
        assert torch.allclose(dm.splits["train"][0].mean(0), torch.zeros(8), atol=1e-5)  # standardised on the fold


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.folds=1", "data.fold=0"], "data.folds=1 is invalid: must be an integer >= 2"),
        (["data.folds=2.5", "data.fold=0"], "data.folds=2.5 is invalid: must be an integer"),
        (
            ["data.folds=5", "data.fold=5"],
            (
                "data.fold=5 is invalid: with data.folds=5 it must be an integer in [0, 5) (every fold: -m data.folds=5 "
                "data.fold=0,1,2,3,4)"
            ),
        ),
        (["data.folds=5", "data.fold=-1"], "data.fold=-1 is invalid: with data.folds=5"),
        (["data.folds=12", "data.fold=12"], "(every fold: -m data.folds=12 data.fold='range(0,12)')"),
        (["data.folds=5"], "data.fold=None is invalid: with data.folds=5 it must be an integer in [0, 5)"),
        (["data.fold=0"], "data.fold=0 is invalid: needs data.folds=K (k-fold cross-validation)"),
        (["data=housing", "data.folds=3", "data.fold=3"], "data.fold=3 is invalid: with data.folds=3"),
        (["data=fashion_mnist", "data.fold=1"], "data.fold=1 is invalid: needs data.folds=K"),
    ],
)
def test_bad_fold_settings_are_refused_naming_the_key_and_what_is_valid(compose_config, overrides, message):
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config(*overrides))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("data", "pool"),
    [
        ("mnist", 60000),
        ("housing", 16512),
    ],  # MNIST's 60,000 training images; housing's 20,640 rows less 4,128 test rows
)
def test_more_folds_than_the_pool_can_fill_are_refused_from_the_config(compose_config, data, pool):
    validate_config(compose_config(f"data={data}", f"data.folds={pool // 2}", "data.fold=0"))  # 2 rows each: fine
    for folds in (pool // 2 + 1, pool, pool + 1):  # some folds of one row; every fold one row; some folds empty
        with pytest.raises(ConfigError) as error:
            validate_config(compose_config(f"data={data}", f"data.folds={folds}", "data.fold=0"))
        assert str(error.value) == (
            f"data.folds={folds} is invalid: the training pool has {pool} rows: at most {pool // 2} folds "
            "(each fold validates on at least 2 rows)"
        )


@pytest.mark.parametrize("folds", [600, 301])  # the pool of 600 images: a fold of one row, or of none
def test_more_folds_than_files_of_ones_own_can_fill_are_refused_before_anything_is_written(tiny_mnist, tmp_path, folds):
    cfg = compose_run_config([*tiny_overrides(*tiny_mnist), f"data.folds={folds}", "data.fold=0"], tmp_path / "run")
    validate_config(cfg)  # the files' size is known only once they are read
    with pytest.raises(ConfigError, match=f"data.folds={folds} is invalid: the training pool has 600 rows"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not list(tmp_path.glob("run/**/*.ckpt")) and not list(tmp_path.glob("run/**/metrics.csv"))


def test_bad_fold_settings_are_refused_before_any_data_loads(compose_config, tmp_path):
    cfg = compose_config(f"paths.data_dir={tmp_path / 'nothing'}", "data.sources=[]", "data.folds=3", "data.fold=3")
    with pytest.raises(ConfigError, match="data.fold=3 is invalid"):
        train(cfg)
    assert not (tmp_path / "nothing").exists()


def test_a_fold_sweep_gives_one_job_per_fold_each_validating_and_fitting_baselines_on_its_own_rows(
    tiny_mnist, tmp_path, caplog
):
    # what `python train.py -m data.folds=2 data.fold=0,1` runs: one config per fold, each in its own folder
    jobs = [
        compose_run_config(
            [
                *tiny_overrides(*tiny_mnist),
                "data.folds=2",
                f"data.fold={fold}",
                "trainer.max_epochs=1",
                "logger=none",
                "callbacks=lean",
            ],
            tmp_path / f"job{fold}",
        )
        for fold in (0, 1)
    ]
    validation = []
    for cfg in jobs:
        dm = hydra.utils.instantiate(cfg.data)
        dm.setup()
        validation.append({bytes(row.numpy()) for row in dm.splits["val"][0]})
        with caplog.at_level(logging.INFO, logger="mlplab.callbacks.baselines"):
            metrics = train(cfg)
        assert "val/acc" in metrics and "baseline/logistic_regression/acc" in metrics
    assert len(validation[0]) == len(validation[1]) == 300 and not validation[0] & validation[1]
    # each fold's baseline fitted on its 300 training images (the fixed split has 500), cached under its fold
    assert caplog.text.count("Baseline logistic_regression: fitted on 300 rows") == 2
    caches = sorted(p.name.split("-")[1] for p in (tiny_mnist[0] / "baselines").glob("*.json"))
    assert caches == ["fold0of2", "fold1of2"]
