"""Measure a bench stage's wall and CPU time and record it in ``<out>/timings.jsonl``
(:mod:`robustness.schema.timings`: the line format, the reader and the totals).

CPU time is this process's :func:`time.process_time` (user + system, every thread) over the stage, plus the
user + system time of the child processes that ended and were waited for during it
(``resource.getrusage(RUSAGE_CHILDREN)``). The local engine's worker pool is joined when its attacks end, so its
workers are counted in the ``attacks`` stage; a child still running when a stage ends is not counted (it is
counted in the stage during which it is waited for). Ray's workers are not children of the bench process: with
``--engine ray`` the recorded CPU time leaves them out (the line says ``"engine": "ray"``).
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from robustness.provenance import utc_now
from robustness.schema.timings import TIMINGS_VERSION, append_timing
from robustness.signals import signal_name

__all__ = ["new_invocation", "timed"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def new_invocation() -> str:
    """An id for the lines of one bench invocation (random: invocations in other sessions never share one)."""
    return uuid.uuid4().hex[:12]


@contextlib.contextmanager
def timed(out: str | Path, suite_name: str, stage: str, *, log: Callable[[str], Any] | None = None,
          invocation: str | None = None, engine: str | None = None, part: str | None = None,
          command: str | None = None) -> Iterator[None]:
    """Run the block as the stage ``stage`` of suite ``suite_name`` and append its timing line to
    ``<out>/timings.jsonl`` when it ends: status ``complete``, ``failed`` (an exception, re-raised) or
    ``interrupted`` (a KeyboardInterrupt -- SIGINT/SIGTERM, :mod:`robustness.signals` -- re-raised). ``log``
    gets one line with the times; ``invocation`` (default: a new id), ``engine``, ``part`` (``"i/k"``) and
    ``command`` go into the line as they are. A line that cannot be written after a failed stage is logged, and
    the stage's own exception goes on."""
    started_at, wall, cpu, children = utc_now(), time.perf_counter(), time.process_time(), _children_cpu_s()
    status, stopped_by = "complete", None
    try:
        yield
    except KeyboardInterrupt as exc:
        status, stopped_by = "interrupted", signal_name(exc)
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        line = {"schema_version": TIMINGS_VERSION, "suite": suite_name, "stage": stage,
                "invocation": invocation or new_invocation(), "started_at": started_at,
                "wall_time_s": time.perf_counter() - wall,
                "cpu_time_s": max(0.0, time.process_time() - cpu + _children_cpu_s() - children),
                "status": status, "signal": stopped_by, "engine": engine, "part": part, "cpu_count": os.cpu_count(),
                "command": command}
        try:
            append_timing(out, line)
        except OSError as exc:
            if status == "complete":
                raise
            if log is not None:
                log(f"[bench] could not record the {stage} stage's timing ({exc})")
        if log is not None:
            log(f"[bench] {stage}: {status}, wall {line['wall_time_s']:.1f} s, CPU {line['cpu_time_s']:.1f} s")
