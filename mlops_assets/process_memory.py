"""Handing memory a run worker freed back to the operating system between its steps."""

from __future__ import annotations

import ctypes

import pyarrow as pa


def release_freed_memory() -> None:
    """Return what Arrow's memory pool and the C heap keep after big frames were freed.

    A run's steps share one process, and evidently's report step runs outside the `duckdb` pool,
    beside the next batch's scoring or a retraining: it should not carry the scoring steps' freed
    memory while it does (at full scale ~600 MB resident without this, ~380 MB with it).
    """
    pa.default_memory_pool().release_unused()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own symbols: libc's, no lookup
    if trim is not None:  # glibc only
        trim(0)
