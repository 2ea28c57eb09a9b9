"""Feature transforms: fitted on the training rows only, applied the same way to every split and to new rows,
and kept in the data module's state (checkpoints) so that eval.py and predict.py transform as training did."""

import numpy as np
import pytest
import torch
from sklearn.preprocessing import QuantileTransformer

from mlplab.data.features import QuantileNormal, Standardize
from mlplab.data.housing import HousingDataModule, features_from_statlib, read_statlib
from mlplab.data.sources import Mirror
from tests.helpers.statlib import make_statlib_file


def _skewed_rows(n: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(
        np.column_stack([rng.lognormal(1, 1, n), rng.integers(1, 53, n).astype(float), rng.normal(0, 5, n)])
    )


def test_the_quantile_transform_kept_as_tensors_is_scikit_learns_fitted_one():
    train, new = _skewed_rows(500), _skewed_rows(200, seed=1) * 1.5  # new rows partly beyond the training range
    reference = QuantileTransformer(n_quantiles=100, output_distribution="normal", subsample=None).fit(train.numpy())
    kept = QuantileNormal(n_quantiles=100).fit(train)
    restored = QuantileNormal()
    restored.load_state_dict(kept.state_dict())
    expected = torch.from_numpy(reference.transform(new.numpy())).float()
    assert torch.equal(kept(new), expected) and torch.equal(restored(new), expected)
    transformed = kept(train)[:, [0, 2]]  # the continuous features' training rows now standard normal, skew gone
    assert transformed.median(dim=0).values.abs().max() < 0.05 and ((transformed.std(dim=0) - 1).abs() < 0.1).all()
    skew = ((transformed - transformed.mean(0)) ** 3).mean(0) / transformed.std(0) ** 3
    assert skew.abs().max() < 0.1 and train[:, 0].log().std() > 0.9  # the lognormal one had a skew of ~6


def test_quantiles_never_exceed_the_training_rows():
    assert len(QuantileNormal(n_quantiles=1000).fit(_skewed_rows(50)).references) == 50


def test_standardize_keeps_a_constant_feature_at_zero():
    train = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    assert torch.allclose(Standardize().fit(train)(train), torch.tensor([[-(0.5**0.5), 0.0], [0.5**0.5, 0.0]]))


@pytest.mark.parametrize("transform", ["standard", "quantile"])
def test_housing_features_are_fitted_on_the_training_rows_and_restored_from_the_modules_state(tmp_path, transform):
    file_md5 = make_statlib_file(tmp_path / "mirror", n=400)
    sources = [Mirror(tmp_path / "mirror", "california_housing")]
    dm = HousingDataModule(tmp_path / "data", sources, md5=file_md5, feature_transform=transform)
    dm.prepare_data()
    dm.setup()
    raw = torch.from_numpy(features_from_statlib(read_statlib(dm.data_file))[0])
    prepared = dm.prepare_inputs(raw)
    train_rows = [int((prepared == row).all(dim=1).nonzero()[0]) for row in dm.splits["train"][0]]
    assert len(set(train_rows)) == len(dm.splits["train"][0]) == 280
    # refitted on the training rows alone, the transform gives every row what the data module gave it
    refit = (QuantileNormal() if transform == "quantile" else Standardize()).fit(raw[train_rows])
    assert torch.equal(refit(raw), prepared)
    fresh = HousingDataModule(tmp_path / "data", sources, md5=file_md5, feature_transform=transform)
    fresh.load_state_dict(dm.state_dict())
    assert torch.equal(fresh.prepare_inputs(raw), prepared)
