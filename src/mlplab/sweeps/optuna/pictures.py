"""Optuna's views of a study as PNGs in the sweep folder (optuna.visualization.matplotlib): the optimization history,
the parameter importances, the parallel coordinates, the intermediate values (where trials were pruned); the Pareto
front for several objectives."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

log = logging.getLogger(__name__)

SINGLE = {
    "optuna_history.png": "plot_optimization_history",
    "optuna_importances.png": "plot_param_importances",
    "optuna_parallel_coordinates.png": "plot_parallel_coordinate",
    "optuna_intermediate_values.png": "plot_intermediate_values",
}
SEVERAL = {"optuna_pareto_front.png": "plot_pareto_front"}


def draw_pictures(study: optuna.Study, sweep_dir: Path) -> list[Path]:
    """Write the pictures that the study's trials allow; the paths written. A view that fails is logged, not raised."""
    import matplotlib

    matplotlib.use("Agg")  # Optuna draws with pyplot: no display in a sweep
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return []
    written = []
    for name, view in (SINGLE if len(study.directions) == 1 else SEVERAL).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
                axes = getattr(views, view)(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.set_size_inches(9, 5.5)
            figure.savefig(sweep_dir / name, dpi=90, bbox_inches="tight")
            plt.close(figure)
            written.append(sweep_dir / name)
        except Exception as error:  # e.g. importances of a study whose parameters never varied
            log.warning("Optuna view %s not drawn: %s: %s", view, type(error).__name__, error)
    return written
