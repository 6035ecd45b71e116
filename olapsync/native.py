"""Living with connectorx's native code in our process: the failures it reports as Rust
panics (the memory its threads free is `olapsync.memory`'s).

connectorx reports a failure in the middle of a stream (a server error, a value it cannot
convert, a dropped connection) as a Rust panic. Two things then reach the user unless caught:

- pyo3 raises `pyo3_runtime.PanicException`, which derives from BaseException, not
  Exception, so that `except Exception` does not swallow it (pyo3 docs, "Panics");
- Rust's default panic hook writes `thread '...' panicked at ...` and the panic message to
  file descriptor 2 before unwinding, plus a backtrace when RUST_BACKTRACE is set. Setting
  RUST_BACKTRACE=0 drops only the backtrace: the report itself always prints, and the hook
  cannot be replaced from Python.

`quiet_native()` runs one connectorx call with descriptor 2 pointed at a temporary file and
then writes back whatever the call's window captured, minus a panic report, so a failed read
ends as one `SourceError` line. Other threads' output during the call arrives, unchanged,
when it returns.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

_LOCK = threading.RLock()
_capture: IO[bytes] | None = None
_depth = 0
# From the report's first line to the end of what was captured: the message, any backtrace.
_REPORT = re.compile(rb"\n?thread '[^\n]*' (?:\(\d+\) )?panicked at ")


def is_panic(exc: BaseException) -> bool:
    """A Rust panic raised by pyo3 (`pyo3_runtime.PanicException`)."""
    return type(exc).__name__ == "PanicException"


def reader_failure(exc: BaseException) -> bool:
    """An exception from a connectorx call that means the read failed (and should become a
    SourceError): any Exception, or a Rust panic; never KeyboardInterrupt or SystemExit."""
    return isinstance(exc, Exception) or is_panic(exc)


def panic_text(exc: BaseException) -> str:
    """The useful part of a connectorx panic message: PostgreSQL's own message when it sent
    one, else the panic's text without connectorx's wrapper."""
    text = str(exc)
    found = re.search(r'message: "((?:[^"\\]|\\.)*)"', text)
    if found:
        return found.group(1).replace('\\"', '"')
    found = re.search(r'ConversionTo\("((?:[^"\\]|\\.)*)"\)', text)
    if found:
        return f"the reader cannot convert the value {found.group(1)!r}"
    found = re.search(r'cause: Some\("((?:[^"\\]|\\.)*)"\)', text)
    if found:
        return f"the reader cannot decode a value: {found.group(1)}"
    return text.removeprefix("cx writer failed: ")


@contextmanager
def quiet_native() -> Iterator[None]:
    """Keep Rust panic reports written during the block off stderr; pass the rest on."""
    global _capture, _depth
    with _LOCK:
        if _depth:  # nested: the outer block captures already
            yield
            return
        try:
            if _capture is None:
                # One file for the process, reused by every call: opened once, never closed.
                _capture = tempfile.TemporaryFile()  # noqa: SIM115
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no descriptor 2 to redirect: nothing to keep off it
            yield
            return
        fd = _capture.fileno()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.dup2(fd, 2)
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            with suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            _replay(fd)


def _replay(fd: int) -> None:
    size = os.lseek(fd, 0, os.SEEK_CUR)
    if not size:
        return
    text = os.pread(fd, size, 0)
    found = _REPORT.search(text)
    if found:
        text = text[: found.start()]
    if text:
        with suppress(OSError):
            os.write(2, text)
