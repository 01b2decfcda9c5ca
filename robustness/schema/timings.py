"""Stage timings of a bench output: the line format of ``<out>/timings.jsonl``, appending, reading, totals.

``robustness bench`` appends one JSON object per stage it ran (:func:`robustness.suite.timings.timed`) when the
stage ends -- normally, by an error, or stopped by SIGINT/SIGTERM -- so a study run as many invocations across
sessions, each possibly stopped and resumed, keeps the wall and CPU time of every stage of every invocation.
A line is flushed and fsynced; a stop in the middle of writing one leaves a torn last line, which
:func:`read_timings` skips and :func:`append_timing` cuts before it appends. A packed output
(:mod:`robustness.schema.packing`) holds ``timings.jsonl.gz``, read the same way.

Fields of a line (``schema_version`` 1):

- ``schema_version``: 1.
- ``suite``: the suite's name (``[suite] name``); ``stage``: one of :data:`STAGES` (``train`` is recorded on every
  invocation that reaches it, also when every model is already trained, and then takes about no time).
- ``invocation``: an id shared by the lines of one bench invocation (a stage such as ``calibrate`` may run
  twice in one invocation: once more after the select rule chose a setting).
- ``started_at``: when the stage began, UTC ISO 8601 to the second.
- ``wall_time_s``: elapsed wall time of the stage, seconds.
- ``cpu_time_s``: CPU seconds (user + system) of the bench process (every thread) plus those of the child
  processes that ended and were waited for during the stage -- the local engine's worker pool is joined when
  its attacks end, so its workers count. Ray workers are not children of the bench process and are not counted:
  with ``engine`` ``"ray"`` the attack stage's CPU time is the driver's only.
- ``status``: ``"complete"``, ``"interrupted"`` (SIGINT/SIGTERM; ``signal`` says which) or ``"failed"`` (an error).
- ``signal``: the stopping signal's name for an interrupted stage, else None.
- ``engine``: ``"local"`` or ``"ray"``; ``part``: ``"i/k"`` for one part of a suite's attacks, else None.
- ``cpu_count``: the host's CPU count (``os.cpu_count()``); ``command``: the command line, None if not known.
"""

from __future__ import annotations

import json
import math
import reprlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.schema.packed import read_stored
from robustness.schema.records import append_json_line, truncate_torn_tail, whole_lines

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STAGES", "STATUSES", "TIMINGS_FILE", "TIMINGS_VERSION", "append_timing", "read_timings",
           "stage_totals", "validate_timing"]

#: The file, at the top of a bench output (and of its packed copy, gzipped).
TIMINGS_FILE = "timings.jsonl"
TIMINGS_VERSION = 1
#: The stages bench records, in the order it runs them (the order of :func:`stage_totals`' rows).
STAGES = ("train", "calibrate", "preregister", "attacks", "transfers", "triggers", "clean", "quality",
          "revalidate", "report")
STATUSES = ("complete", "interrupted", "failed")
#: Every field of a line and the types it may hold.
FIELDS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,), "suite": (str,), "stage": (str,), "invocation": (str,), "started_at": (str,),
    "wall_time_s": (int, float), "cpu_time_s": (int, float), "status": (str,), "signal": (str, type(None)),
    "engine": (str, type(None)), "part": (str, type(None)), "cpu_count": (int, type(None)),
    "command": (str, type(None)),
}
#: The columns of :func:`stage_totals`.
TOTAL_COLUMNS = ["suite", "stage", "invocations", "wall_time_s", "cpu_time_s", "interrupted", "failed"]


def validate_timing(line: Any) -> dict[str, Any]:
    """``line`` if it is a valid timing line (see the module docstring), else ``ValueError`` saying what is wrong."""
    if not isinstance(line, dict):
        raise ValueError(f"a JSON {type(line).__name__}, not an object")
    if line.get("schema_version") != TIMINGS_VERSION:
        raise ValueError(f"unknown schema_version {line.get('schema_version')!r} (this version reads "
                         f"{TIMINGS_VERSION})")
    missing = [name for name in FIELDS if name not in line]
    if missing:
        raise ValueError(f"missing fields: {', '.join(missing)}")
    for name, types in FIELDS.items():
        value = line[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise ValueError(f"{name} is {reprlib.repr(value)}, not {' or '.join(t.__name__ for t in types)}")
    for name in ("wall_time_s", "cpu_time_s"):
        if not math.isfinite(line[name]) or line[name] < 0:
            raise ValueError(f"{name} is {line[name]!r}, not a finite number >= 0")
    if line["status"] not in STATUSES:
        raise ValueError(f"status is {line['status']!r}, not one of {', '.join(STATUSES)}")
    return line


def append_timing(out: str | Path, line: dict[str, Any]) -> Path:
    """Append ``line`` (validated) to ``<out>/timings.jsonl`` as one line, flushed and fsynced, after cutting a
    torn last line left by a stop mid-write; returns the file."""
    validate_timing(line)
    path = Path(out) / TIMINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    truncate_torn_tail(path)
    append_json_line(path, line)
    return path


def read_timings(out: str | Path) -> pd.DataFrame:
    """Every whole line of ``<out>/timings.jsonl`` (or of a packed output's ``timings.jsonl.gz``), one row each
    with the fields as columns, in the order written; a torn last line is skipped. ``ValueError`` (one line,
    naming the file) when there is no such file or a line is malformed."""
    import pandas as pd

    if not Path(out).is_dir():
        raise ValueError(f"{out} is not a folder; pass a bench output (its --out) or a packed one")
    path = Path(out) / TIMINGS_FILE
    data = read_stored(path)
    if data is None:
        raise ValueError(f"{out} holds no {TIMINGS_FILE}: only robustness bench writes it (from this version on); "
                         "pass a bench output or a packed one")
    lines = []
    for number, raw in whole_lines(data):
        try:
            lines.append(validate_timing(json.loads(raw.decode("utf-8"))))
        except ValueError as exc:  # includes JSON and UTF-8 decoding errors
            raise ValueError(f"{path}, line {number}: not a valid timing line: {' '.join(str(exc).split())}"
                             ) from None
    return pd.DataFrame(lines, columns=list(FIELDS))


def stage_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, stage) of :func:`read_timings`' ``frame``: ``invocations`` (distinct bench invocations
    that ran the stage), ``wall_time_s`` and ``cpu_time_s`` summed over every line, and how many lines were
    ``interrupted`` and ``failed``. Suites in order of first appearance, stages in :data:`STAGES` order (others
    after them, alphabetically)."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=TOTAL_COLUMNS)
    grouped = frame.groupby(["suite", "stage"], sort=False)
    totals = grouped.agg(invocations=("invocation", "nunique"), wall_time_s=("wall_time_s", "sum"),
                         cpu_time_s=("cpu_time_s", "sum"),
                         interrupted=("status", lambda s: int((s == "interrupted").sum())),
                         failed=("status", lambda s: int((s == "failed").sum()))).reset_index()
    suites = {name: i for i, name in enumerate(dict.fromkeys(frame["suite"]))}
    order = totals.apply(lambda row: (suites[row["suite"]], STAGES.index(row["stage"]) if row["stage"] in STAGES
                                      else len(STAGES), row["stage"]), axis=1)
    totals = totals.iloc[sorted(range(len(totals)), key=lambda i: order.iloc[i])].reset_index(drop=True)
    return totals[TOTAL_COLUMNS]
