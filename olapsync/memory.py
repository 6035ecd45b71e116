"""Handing memory that freed batches leave behind back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


def release_freed_memory() -> None:
    """Hand memory freed by earlier batches back to the OS (glibc only; else a no-op).

    connectorx builds batches with the system allocator from several threads; glibc keeps
    what they free in per-thread arenas, which peak RSS then counts. Trimming between
    batches is cheap and keeps memory bounded by the batches in flight (the figures are in
    docs/performance-notes.md).
    """
    if _TRIM is not None:
        _TRIM(0)
