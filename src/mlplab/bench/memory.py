"""Peak memory while a path runs, and a heap as clean as can be between paths."""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

import torch


class PeakMemory:
    """Peak memory while a path runs: torch's peak allocation on a GPU, resident set growth on the CPU."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.peak_mb: float | None = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = _resident_kb("VmRSS")
            try:  # "5" resets the peak resident size (VmHWM) to the current one (Linux >= 4.0)
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self._start = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
        elif self._start is not None and (peak := _resident_kb("VmHWM")) is not None:
            self.peak_mb = (peak - self._start) / 1024


def _resident_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def release_memory() -> None:
    """Free what the last path left, so the next one starts from a similar heap."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:  # glibc keeps freed memory in fragmented arenas; the next path's large batches then hit mmap
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
