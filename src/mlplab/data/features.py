"""How tabular features become the network's inputs: a transform fitted on the training rows only, applied
to every split and to new rows (predict.py), and kept as tensors in checkpoints (the data module's state)."""

from __future__ import annotations

import torch


class Standardize:
    """Each feature minus its training mean, over its training standard deviation."""

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, train: torch.Tensor) -> Standardize:
        self.mean = train.double().mean(dim=0)
        std = train.double().std(dim=0)
        self.std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays 0, not NaN
        return self

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        return ((raw.double() - self.mean) / self.std).float()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"feature_mean": self.mean, "feature_std": self.std} if self.fitted else {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean, self.std = state["feature_mean"].double(), state["feature_std"].double()


class QuantileNormal:
    """scikit-learn's `QuantileTransformer(output_distribution="normal")` fitted on the training rows: each
    feature through its own empirical distribution to a standard normal one. Skewed features (incomes,
    populations) and outliers then weigh like the rest; Gorishniy et al. (2021) use it for their tabular MLPs.

    Args:
        n_quantiles: how finely each feature's distribution is kept (at most the number of training rows).
    """

    def __init__(self, n_quantiles: int = 1000) -> None:
        self.n_quantiles = n_quantiles
        self.quantiles: torch.Tensor | None = None  # (n_quantiles, features): the training rows' quantiles
        self.references: torch.Tensor | None = None  # (n_quantiles,): the probability of each

    def fit(self, train: torch.Tensor) -> QuantileNormal:
        from sklearn.preprocessing import QuantileTransformer

        n_quantiles = min(self.n_quantiles, len(train))
        # subsample=None: every training row, so the fit needs no random state
        fitted = QuantileTransformer(n_quantiles=n_quantiles, output_distribution="normal", subsample=None)
        fitted.fit(train.double().numpy())
        self.quantiles, self.references = torch.from_numpy(fitted.quantiles_), torch.from_numpy(fitted.references_)
        return self

    @property
    def fitted(self) -> bool:
        return self.quantiles is not None

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        from sklearn.preprocessing import QuantileTransformer

        # scikit-learn's own transform from the kept quantiles: setting its two documented fitted attributes
        # (quantiles_, references_) is all it reads (scikit-learn >= 1.4 as pinned; tests/data/test_features.py
        # compares with the fitted transformer, and fails the day that changes)
        transformer = QuantileTransformer(n_quantiles=len(self.references), output_distribution="normal")
        transformer.quantiles_, transformer.references_ = self.quantiles.numpy(), self.references.numpy()
        transformer.n_features_in_ = self.quantiles.shape[1]
        return torch.from_numpy(transformer.transform(raw.double().numpy())).float()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"feature_quantiles": self.quantiles, "feature_references": self.references} if self.fitted else {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.quantiles, self.references = state["feature_quantiles"].double(), state["feature_references"].double()


FEATURE_TRANSFORMS = {"standard": Standardize, "quantile": QuantileNormal}
