"""Is the network even worth it? scikit-learn baselines on the same split, next to the network's test metrics."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import sklearn
import torch
from filelock import FileLock

from mlplab.data.tensor_datamodule import TensorDataModule
from mlplab.models.tasks import Task
from mlplab.utils.files import write_text

log = logging.getLogger(__name__)

Results = dict[str, dict[str, Any]]  # model name -> {"model": describe(model), "metrics": {...}, "fit_s": seconds}


def describe(model: Any) -> str:
    """A stable description of an estimator and its parameters: the cache refits when it changes."""
    params = json.dumps(model.get_params(deep=True), sort_keys=True, default=repr)
    return f"{type(model).__module__}.{type(model).__qualname__} {params} sklearn={sklearn.__version__}"


def score(model: Any, task: Task, x: np.ndarray, y: torch.Tensor) -> dict[str, float]:
    """The task's own test metrics (the ones the network logs) for the model's predictions."""
    prediction = torch.as_tensor(model.predict(x)).to(y.dtype)
    return {name: float(metric(prediction, y)) for name, metric in task.metrics().items()}


class Baselines(L.Callback):
    """Fits scikit-learn `models` on the training split, scores them on the test split with the task's
    metrics, logs `baseline/<name>/<metric>` next to the network's `test/<metric>`, and prints a table.

    Results are cached in `cache_dir`, keyed by a hash of the exact arrays the models see and by each
    model's parameters, so the jobs of a sweep fit each baseline once.

    Args:
        models: name -> unfitted scikit-learn estimator (from the data config's `baseline_models`).
        enabled: the top-level `baselines=true|false` switch.
        max_train_samples: fit on a seeded subsample of this many training rows (None: all of them).
        seed: seeds that subsample; fixed by default so runs with different seeds share the cache.
        cache_dir: where the results are cached; None fits in every run.
    """

    def __init__(
        self,
        models: Mapping[str, Any] | None = None,
        enabled: bool = True,
        max_train_samples: int | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.models = dict(models or {})
        self.enabled = enabled
        self.max_train_samples = max_train_samples
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.results: Results = {}

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        # fast_dev_run checks the pipeline and switches logging off: fitting baselines would be wasted time
        if not self.enabled or not self.models or trainer.fast_dev_run or not isinstance(datamodule, TensorDataModule):
            return
        self.results = self.fit_and_score(datamodule)
        for name, result in self.results.items():
            for metric, value in result["metrics"].items():
                pl_module.log(f"baseline/{name}/{metric}", value, on_epoch=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.results and trainer.is_global_zero:
            network = {
                k.removeprefix("test/"): float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
            }
            note = (
                ""
                if trainer.limit_test_batches == 1.0
                else (
                    f"\n  (the network was tested on part of the test split: limit_test_batches={trainer.limit_test_batches})"
                )
            )
            log.info(
                "Network vs scikit-learn baselines (same train split, test split):\n%s%s",
                comparison_table(network, self.results),
                note,
            )

    def fit_and_score(self, datamodule: TensorDataModule) -> Results:
        """Each model's test metrics, from the cache when it has them, fitted and scored otherwise."""
        datamodule.setup()
        train_x, train_y = self._arrays(datamodule, "train", self.max_train_samples)
        test_x, test_y = self._arrays(datamodule, "test", None)

        def fit_missing(results: Results) -> bool:
            """Fit and score the models `results` lacks (or holds for other parameters); True if any."""
            missing = [
                name for name, model in self.models.items() if results.get(name, {}).get("model") != describe(model)
            ]
            for name in missing:
                model = self.models[name]
                start = time.perf_counter()
                model.fit(train_x, train_y.numpy())
                fit_s = time.perf_counter() - start
                results[name] = {
                    "model": describe(model),
                    "metrics": score(model, datamodule.task, test_x, test_y),
                    "fit_s": fit_s,
                }
                log.info("Baseline %s: fitted on %d rows in %.1f s", name, len(train_x), fit_s)
            return bool(missing)

        results: Results = {}
        if self.cache_dir is None:
            fit_missing(results)
        else:
            # the exact arrays the models see name the cache: same data set, split and subsample, same file
            arrays = (train_x, train_y.numpy(), test_x, test_y.numpy())
            digest = hashlib.md5(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()[:16]
            name = getattr(datamodule, "name", type(datamodule).__name__)
            fold = (
                f"-{datamodule.pool_split.tag}" if datamodule.pool_split.tag else ""
            )  # the fixed split's names as before
            cache = self.cache_dir / f"{name}{fold}-{digest}.json"
            cache.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(cache) + ".lock"):  # parallel sweep jobs: one fits, the others read its results
                results = _read_cache(cache)
                if fit_missing(results):
                    write_text(cache, json.dumps(results, indent=1))  # metrics stay in the task's order
        return {name: results[name] for name in self.models}

    def _arrays(self, datamodule: TensorDataModule, split: str, limit: int | None) -> tuple[np.ndarray, torch.Tensor]:
        """The split's inputs exactly as the network sees them (normalised), as a float32 array on the CPU."""
        x, y = datamodule.splits[split]
        if limit is not None and limit < len(x):
            generator = torch.Generator().manual_seed(self.seed)
            index = torch.randperm(len(x), generator=generator)[:limit].sort().values
            x, y = x[index], y[index]
        features = datamodule.to_device(x, torch.device("cpu")).reshape(len(x), -1)
        return features.numpy().astype(np.float32, copy=False), y


def comparison_table(network: Mapping[str, float], baselines: Results) -> str:
    """Aligned rows, the network first, one column per metric plus each baseline's fitting time."""
    metrics = list(next(iter(baselines.values()))["metrics"])
    rows = [
        ["model", *metrics, "fit s"],
        ["network", *(f"{network[m]:.4f}" if m in network else "-" for m in metrics), ""],
    ]
    for name, result in baselines.items():
        rows.append([name, *(f"{result['metrics'][m]:.4f}" for m in metrics), f"{result['fit_s']:.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  " + row[0].ljust(widths[0]) + "".join(f"  {cell:>{w}}" for cell, w in zip(row[1:], widths[1:]))
        for row in rows
    )


def _read_cache(path: Path) -> Results:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("Ignoring the unreadable baseline cache %s (%s): fitting again", path, e)
        return {}
