"""The verdict options a bench output's report is judged by, recorded beside its runs (the contract between bench,
``robustness pack`` and ``robustness report``).

* bench writes the suite's ``[verdict]`` options (:class:`~robustness.schema.specs.VerdictOptions`: ``margin``,
  ``equivalence_margin``, ``alpha``, ``min_n``, and the pre-registered ``setting`` or ``select`` rule) to
  ``<out>/verdict.json`` (:data:`VERDICT_FILE`) before its report stage, and rewrites it when a resumed bench's
  suite changed them: the file is the record of what the report was judged by. ``robustness pack`` copies it.
* ``robustness report SOURCES`` reads it from its sources (:func:`verdict_files`: a suite output or packed folder
  holds it at its top; a ``runs/``, ``transfers/`` or ``triggers/`` folder has it beside it) and judges by it
  (:func:`resolve_verdict_options`). An option given explicitly replaces the file's, field by field (an
  explicit ``setting`` replaces the file's ``setting`` or ``select`` rule: they are one choice); an option
  neither given nor recorded takes :class:`VerdictOptions`' default. Two files that disagree on an option not
  given explicitly are a ``ValueError`` naming both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from robustness.provenance import read_json_object, write_json_atomic
from robustness.schema.rundir import output_folders
from robustness.schema.specs import VerdictOptions

__all__ = ["OPTION_FLAGS", "VERDICT_FILE", "read_verdict_options", "resolve_verdict_options", "verdict_files",
           "write_verdict_options"]

#: The file in a bench output (and in its packed copy) that records the verdict options of its report.
VERDICT_FILE = "verdict.json"
#: Each option of :class:`VerdictOptions` and the ``robustness report`` flag that gives it explicitly (``select``
#: has no flag of its own: ``--setting`` replaces a recorded select rule).
OPTION_FLAGS = {"margin": "--margin", "equivalence_margin": "--equivalence-margin", "alpha": "--alpha",
                "min_n": "--min-n", "setting": "--setting", "select": "--setting"}


def write_verdict_options(out: str | Path, options: VerdictOptions) -> bool:
    """Record ``options`` in ``<out>/verdict.json``, atomically, unless it already holds them; True when written
    (a file that is not a readable record of options is replaced: it is bench's own)."""
    path = Path(out) / VERDICT_FILE
    data = dataclasses.asdict(options)
    if path.is_file():
        try:
            if read_json_object(path) == data:
                return False
        except (ValueError, OSError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data)
    return True


def read_verdict_options(path: str | Path) -> dict[str, Any]:
    """The options recorded in ``path`` (a verdict.json), every field present (a field the file lacks takes
    :class:`VerdictOptions`' default) and checked as the suite's ``[verdict]`` is; ``ValueError`` naming the file."""
    path = Path(path)
    data = read_json_object(path)
    unknown = sorted(set(data) - set(OPTION_FLAGS))
    if unknown:
        raise ValueError(f"{path}: unknown verdict options {unknown}; it records only {', '.join(OPTION_FLAGS)}")
    try:
        return dataclasses.asdict(VerdictOptions(**data))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def verdict_files(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """The verdict.json files of the suite outputs among ``sources`` (a suite output or packed folder, or one of
    its ``runs/``, ``transfers/``, ``triggers/`` folders), each once, in the order found."""
    found: dict[Path, Path] = {}
    for folder in output_folders(sources):
        if (folder / VERDICT_FILE).is_file():
            found.setdefault((folder / VERDICT_FILE).resolve(), folder / VERDICT_FILE)
    return list(found.values())


def _explicit(given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(OPTION_FLAGS))
    if unknown:
        raise TypeError(f"unknown verdict options {unknown}")
    return {k: v for k, v in given.items() if v is not None}


def _agreed(recorded: list[tuple[Path, dict[str, Any]]], given: dict[str, Any]) -> dict[str, Any]:
    """The options the files agree on; ``ValueError`` naming two files that disagree on one not ``given``."""
    if not recorded:
        return {}
    (first, options), *others = recorded
    for name in OPTION_FLAGS:
        if name in given or (name == "select" and "setting" in given):
            continue
        for path, other in others:
            if other[name] != options[name]:
                raise ValueError(f"verdict options disagree: {first} has {name} {options[name]!r}, {path} has "
                                 f"{other[name]!r}; pass {OPTION_FLAGS[name]} or report them separately")
    return options


def resolve_verdict_options(sources: str | Path | Iterable[str | Path],
                            given: Mapping[str, Any]) -> tuple[VerdictOptions, str]:
    """The options a report of ``sources`` is judged by, and one line saying where they came from: the
    verdict.json files of ``sources`` (:func:`verdict_files`), with the options in ``given`` (field -> value;
    None: not given) in their place, and :class:`VerdictOptions`' defaults for the rest (see the module
    docstring)."""
    explicit = _explicit(given)
    files = verdict_files(sources)
    merged = {**_agreed([(path, read_verdict_options(path)) for path in files], explicit), **explicit}
    if "setting" in explicit:  # an explicit setting replaces a recorded select rule
        merged["select"] = None
    options = VerdictOptions(**merged)
    flags = ", ".join(dict.fromkeys(OPTION_FLAGS[name] for name in explicit))
    if files:
        where = ", ".join(map(str, files)) + (f" (with {flags} given)" if flags else "")
    else:
        where = (f"{flags} given, the defaults otherwise" if flags else "the defaults") + f" (no {VERDICT_FILE})"
    shown = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(options).items() if v is not None)
    return options, f"{where}: {shown}"
