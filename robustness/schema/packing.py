"""Pack a bench output's records into a compact directory that ``aggregate`` and ``report`` read as they are.

:func:`pack_output` copies what the tables are computed from -- every finished run under ``runs/``
(accuracy and slowdown attacks), ``transfers/`` and ``triggers/``, and the clean evaluation tables
``clean/*.csv`` the verdict reads, with ``selection.json`` (the attack sample / selection set division),
``verdict.json`` (the verdict options bench's report was judged by: :mod:`robustness.schema.verdict_file`) and
bench's stage timings ``timings.jsonl`` (:mod:`robustness.schema.timings`; stored gzipped) when present -- into a
new directory laid out the same way, so it is itself a suite output:
``robustness report DIR --out ...`` recomputes every table from it, judged by the same verdict options. Models,
tables, figures and reports are not copied (the tables are what is recomputed; models are not needed to recompute
them).

In each run directory every ``.jsonl`` file (``records.jsonl``, ``quality.jsonl``, ``revalidation.jsonl``, a
trigger's ``evaluation.jsonl``) is stored gzipped as ``<name>.jsonl.gz`` (:mod:`robustness.schema.packed`:
reproducible, and decompressing gives back the exact bytes), every other file (``spec.json``, ``run.json``,
``trigger.json``, CSV) as it is; hidden files (locks, temporary files) and subdirectories are left out.
Why gzipped JSON lines rather than Parquet: the unpacked bytes are the run's own file, byte for byte (a
Parquet table would re-encode them, and records of older schema versions hold other fields), the readers need
no second code path, and ``zcat`` shows a reviewer the records. ``packed.json`` lists every file with the
sha256 and size of its original bytes and of what is stored.

Refused: a run, transfer or trigger that is not complete, or whose records do not match its ``run.json``; an
existing destination without ``overwrite`` (with it, the destination is replaced whole, never merged); a
destination that is, or holds, the source. The directory is built beside its destination and renamed into place
(:func:`robustness.provenance.atomic_directory`), so an interrupted pack leaves no half-packed directory.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustness import __version__
from robustness.provenance import atomic_directory, read_json_object, utc_now, write_json_atomic
from robustness.schema.packed import PACKED_SUFFIX, compress
from robustness.schema.records import read_records
from robustness.schema.rundir import PARTS, RECORDS_FILE, RUN_FILE, check_record_count, is_run_dir
from robustness.schema.selection import SELECTION_FILE
from robustness.schema.timings import TIMINGS_FILE
from robustness.schema.verdict_file import VERDICT_FILE

__all__ = ["MANIFEST_FILE", "PARTS", "Packed", "pack_output"]

#: The folder of clean evaluation tables the verdict reads (``clean/<model>.csv``).
CLEAN = "clean"
#: Written at the top of a packed directory: where it came from and every file's digests.
MANIFEST_FILE = "packed.json"


@dataclass
class Packed:
    """What :func:`pack_output` wrote: the directory, the run directories packed per part, the clean tables, and
    sizes in bytes of the copied files before (as the runs wrote them) and after packing."""

    into: Path
    runs: dict[str, list[str]] = field(default_factory=dict)
    clean: list[str] = field(default_factory=list)
    original_bytes: int = 0
    packed_bytes: int = 0


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run_dirs(source: Path, part: str) -> list[Path]:
    """The run directories of one part of ``source`` (hidden folders, e.g. runs moved aside, left out)."""
    folder = source / part
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and is_run_dir(p))


def _check_finished(run_dir: Path, part: str) -> None:
    """A run, transfer or trigger is packed only when finished, and a run's records agree with its run.json."""
    info = read_json_object(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    status = info.get("status") or "no run.json"
    if status != "complete":
        raise ValueError(f"{run_dir} is not complete (status {status}): finish it (rerun the bench) or move it "
                         "out of the output before packing")
    if part != "triggers":
        check_record_count(run_dir, info, len(read_records(run_dir / RECORDS_FILE)))


def _files(run_dir: Path) -> list[Path]:
    """The files of a run directory that are packed: every visible regular file."""
    return sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def _pack_file(path: Path, target_dir: Path, rel: str) -> dict[str, Any]:
    """Copy one file into ``target_dir`` (gzipped if it is JSON lines); its manifest entry."""
    data = path.read_bytes()
    entry: dict[str, Any] = {"sha256": _digest(data), "bytes": len(data)}
    if path.suffix == ".jsonl":
        stored, name = compress(data), path.name + PACKED_SUFFIX
        if gzip.decompress(stored) != data:  # pragma: no cover - only a broken zlib gets here
            raise OSError(f"{path}: gzip does not give back its bytes; nothing was packed")
    else:
        stored, name = data, path.name
    (target_dir / name).write_bytes(stored)  # in a fresh temporary folder, renamed into place only when whole
    return {rel: {**entry, "stored_as": str(Path(rel).with_name(name)), "stored_bytes": len(stored),
                  "stored_sha256": _digest(stored)}}


def _check_places(source: Path, into: Path, overwrite: bool) -> None:
    if not source.is_dir() or not any((source / p).is_dir() for p in PARTS):
        raise ValueError(f"{source} is not a bench output (no runs/, transfers/ or triggers/ folder); pass the "
                         "--out folder of robustness bench")
    resolved_source, resolved_into = source.resolve(), into.resolve()
    if resolved_into == resolved_source or resolved_into in resolved_source.parents:
        raise ValueError(f"--into {into} would hold the output it packs ({source}); pack into another folder")
    if into.exists() and not overwrite:
        raise ValueError(f"{into} exists; pass --overwrite to replace it (the whole folder), or pack elsewhere")
    if into.exists() and not into.is_dir():
        raise ValueError(f"{into} is a file, not a folder; pack into a folder")


def pack_output(source: str | Path, into: str | Path, overwrite: bool = False) -> Packed:
    """Pack the bench output ``source`` into the new directory ``into`` (see the module docstring); returns
    what was packed. Every run is checked before anything is written."""
    source, into = Path(source), Path(into)
    _check_places(source, into, overwrite)
    runs = {part: _run_dirs(source, part) for part in PARTS}
    if not any(runs.values()):
        raise ValueError(f"{source} holds no run directories (with spec.json) under {', '.join(PARTS)}; nothing "
                         "to pack")
    for part, dirs in runs.items():
        for run_dir in dirs:
            _check_finished(run_dir, part)
    clean = sorted((source / CLEAN).glob("*.csv")) if (source / CLEAN).is_dir() else []
    result = Packed(into=into, runs={part: [p.name for p in dirs] for part, dirs in runs.items() if dirs},
                    clean=[p.name for p in clean])
    files: dict[str, Any] = {}
    with atomic_directory(into, replace=overwrite) as tmp:
        for part, dirs in runs.items():
            for run_dir in dirs:
                target = tmp / part / run_dir.name
                target.mkdir(parents=True)
                for path in _files(run_dir):
                    files.update(_pack_file(path, target, f"{part}/{run_dir.name}/{path.name}"))
        if clean:
            (tmp / CLEAN).mkdir()
            for path in clean:
                files.update(_pack_file(path, tmp / CLEAN, f"{CLEAN}/{path.name}"))
        if (source / SELECTION_FILE).is_file():  # the attack sample / selection set division the clean tables used
            files.update(_pack_file(source / SELECTION_FILE, tmp, SELECTION_FILE))
        if (source / VERDICT_FILE).is_file():  # the verdict options the report is judged by (report reads it)
            files.update(_pack_file(source / VERDICT_FILE, tmp, VERDICT_FILE))
        if (source / TIMINGS_FILE).is_file():  # the wall and CPU time of every bench stage (timings.jsonl.gz)
            files.update(_pack_file(source / TIMINGS_FILE, tmp, TIMINGS_FILE))
        result.original_bytes = sum(e["bytes"] for e in files.values())
        result.packed_bytes = sum(e["stored_bytes"] for e in files.values())
        write_json_atomic(tmp / MANIFEST_FILE, {
            "source": str(source.resolve()), "packed_at": utc_now(), "robustness": __version__,
            "runs": result.runs, "clean": result.clean, "original_bytes": result.original_bytes,
            "packed_bytes": result.packed_bytes, "files": files})
    return result
