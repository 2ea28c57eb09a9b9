"""`hydra/launcher=parallel`: Hydra's joblib launcher whose jobs survive one another's death (mlplab.sweeps.isolated)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


class IsolatedJoblibLauncher(JoblibLauncher):
    """JoblibLauncher (same settings; `n_jobs` jobs at a time), each job slot in a worker process of its own."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from mlplab.sweeps.isolated import launch  # imported when a sweep runs: Hydra imports every plugin at start-up

        return launch(self, job_overrides, initial_job_idx)
