"""What an entry point (train.py, eval.py) sets up once for its whole process, before any run in it."""

from __future__ import annotations

from mlplab.utils.gpu_probe import skip_nvml_probe_without_driver
from mlplab.utils.quiet import silence_third_party_noise


def prepare_process() -> None:
    # importing Lightning set PYTORCH_NVML_BASED_CUDA_CHECK; on machines without a driver it slows every step
    skip_nvml_probe_without_driver()
    silence_third_party_noise()
