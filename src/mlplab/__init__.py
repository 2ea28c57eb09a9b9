"""mlplab: a Lightning + Hydra experiment framework for fully connected networks."""

import os

__version__ = "0.1.0"

# OpenMP threads that spin while they wait for work take the cores every other process needs: on a busy 2-core
# machine torch's 2 threads ran an MNIST epoch ~10x slower than 1 thread, and no slower than it once they sleep
# instead (BENCHMARKS.md, "Threads"). Set here, before anything of mlplab imports torch (OpenMP reads it when torch
# loads it); a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
