"""SIGINT and SIGTERM as exceptions, so an interrupted stage records ``status: interrupted`` and the signal."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Interrupted(KeyboardInterrupt):
    """A stop requested by a signal (``signal_name``: "SIGINT" or "SIGTERM")."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def signal_name(exc: BaseException) -> str:
    """The signal behind a KeyboardInterrupt (a plain one is Ctrl-C: SIGINT)."""
    return getattr(exc, "signal_name", "SIGINT")


def _raise(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def raise_on_termination() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` (so ``finally`` blocks run and record
    the stop); the previous handlers are restored after it. Outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
