"""Guards of a run directory: whose run it holds, and which model made its records.

Used by :func:`robustness.attack.runner.run_attack` before any work and by ``bench`` before the whole suite
(:func:`changed_runs`): a directory holding something that is not a run is never written into without
``overwrite``; a run whose ``spec.json`` names another model fingerprint is never resumed or reused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robustness.provenance import read_json_object, write_json_atomic
from robustness.schema.rundir import RECORDS_FILE, RUN_FILE, SPEC_FILE
from robustness.schema.specs import RunSpec

__all__ = ["RECORDS_FILE", "RUN_FILE", "SPEC_FILE", "changed_runs", "check_or_write_spec", "check_run_dir",
           "check_same_model", "exclusive", "move_aside", "recorded_fingerprint", "reconcile_changed", "spec_content"]
#: What a run directory may hold besides its three files (the lock, our temporary files).
_OWN_EXTRA = (".lock",)
#: What ``spec.json`` records of the model besides the spec (checked when a run is resumed).
_MODEL_FIELDS = ("num_layers", "head", "label_names")


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """``run_dir`` is absent, empty, or a run of ours (it has ``spec.json``); else, without ``overwrite``, a
    ``ValueError`` naming what is there. A file at ``run_dir`` is refused even with ``overwrite``. Every command
    that writes a run directory (``attack``, ``transfer``, ``bench``) calls it before it writes anything."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} is a file; choose another --out (a directory, new or a run's)")
    if not run_dir.is_dir() or (run_dir / SPEC_FILE).is_file() or overwrite:
        return
    present = sorted(p.name for p in run_dir.iterdir() if p.name not in _OWN_EXTRA and not p.name.startswith("."))
    if present:
        raise ValueError(f"{run_dir} holds {', '.join(present[:3])} but no {SPEC_FILE}: not a run of robustness; "
                         "choose another --out or pass --overwrite")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ValueError(f"run directory {run_dir} is not writable")


def recorded_fingerprint(run_dir: Path) -> str | None:
    """The model fingerprint in ``run_dir/spec.json`` (None without one: a run from before fingerprints)."""
    path = run_dir / SPEC_FILE
    if not path.is_file():
        return None
    value = read_json_object(path).get("model_fingerprint")
    return str(value) if value else None


def check_same_model(run_dir: Path, fingerprint: str, model_dir: str) -> None:
    """``ValueError`` (one line naming both fingerprints) when the run's records were made by other weights."""
    recorded = recorded_fingerprint(run_dir)
    if recorded is not None and recorded != fingerprint:
        raise ValueError(
            f"{run_dir / SPEC_FILE}: the run was made by model {recorded}, but {model_dir} now holds model "
            f"{fingerprint}; refusing to mix their records (use another --out, or --overwrite to start afresh; "
            "bench: --rerun-changed)")


def changed_runs(runs_root: Path, expected: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(run_id, recorded, current)`` for each run under ``runs_root`` whose recorded model fingerprint
    differs from ``expected[run_id]`` (runs that do not exist yet or predate fingerprints are not listed)."""
    changed = []
    for run_id, fingerprint in sorted(expected.items()):
        recorded = recorded_fingerprint(runs_root / run_id)
        if recorded is not None and recorded != fingerprint:
            changed.append((run_id, recorded, fingerprint))
    return changed


def move_aside(run_dir: Path, fingerprint: str) -> Path:
    """Move a run made by replaced weights to ``<runs>/.replaced/<run_id>-<fingerprint>`` (never deleted)."""
    target = run_dir.parent / ".replaced" / f"{run_dir.name}-{fingerprint}"
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while target.exists():
        suffix += 1
        target = target.with_name(f"{run_dir.name}-{fingerprint}-{suffix}")
    os.replace(run_dir, target)
    return target


def reconcile_changed(runs_root: Path, expected: dict[str, str], rerun_changed: bool) -> list[Path]:
    """Runs under ``runs_root`` made by other weights than their model now has: without ``rerun_changed`` a
    ``ValueError`` listing them; with it they are moved aside (:func:`move_aside`) to be run again. Returns
    where they were moved."""
    changed = changed_runs(runs_root, expected)
    if changed and not rerun_changed:
        listed = "; ".join(f"{run_id} (model {old} -> {new})" for run_id, old, new in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        raise ValueError(f"{len(changed)} runs under {runs_root} were made by other weights than their model now "
                         f"has: {listed}{more}; pass --rerun-changed to run them again (old runs are kept in "
                         f"{runs_root / '.replaced'})")
    return [move_aside(runs_root / run_id, old) for run_id, old, _ in changed]


def spec_content(spec: RunSpec, model: Any, fingerprint: str | None = None) -> dict[str, Any]:
    """What ``spec.json`` holds: the spec, its run id, the model facts a reader needs and the fingerprint of
    the model's weights (:mod:`robustness.models.fingerprint`; None for an in-memory model without a dir)."""
    return {**spec.to_dict(), "run_id": spec.run_id, "num_layers": int(model.num_layers), "head": model.head,
            "label_names": list(model.label_names), "model_fingerprint": fingerprint}


def check_or_write_spec(run_dir: Path, spec: RunSpec, content: dict[str, Any] | None) -> None:
    """Write ``spec.json``; if one exists it must describe the same run (locations may differ). With
    ``content`` None, only check an existing file's spec hash."""
    path = run_dir / SPEC_FILE
    if not path.exists():
        if content is not None:
            write_json_atomic(path, content)
        return
    existing = read_json_object(path)
    try:
        recorded = RunSpec.from_dict(existing)
        same = recorded.content_hash() == spec.content_hash()
    except (TypeError, ValueError):
        recorded, same = None, False
    if recorded is not None and recorded.sentence_encoder != spec.sentence_encoder and \
            dataclasses.replace(recorded, sentence_encoder=spec.sentence_encoder).content_hash() == spec.content_hash():
        raise ValueError(f"{path}: the run was made with sentence encoder {recorded.sentence_encoder}, not "
                         f"{spec.sentence_encoder}; refusing to mix records (--sentence-encoder "
                         f"{recorded.sentence_encoder} resumes it; or another --out, or --overwrite)")
    if content is not None:
        same = same and all(existing.get(k) == content[k] for k in _MODEL_FIELDS)
    if not same:
        raise ValueError(f"{path} describes another run ({existing.get('run_id')}); refusing to mix records")


@contextlib.contextmanager
def exclusive(run_dir: Path, wait: bool = False) -> Iterator[None]:
    """Hold ``<run_dir>/.lock`` (flock) so two processes never write one run; ValueError if taken (or, with
    ``wait``, wait for it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on Windows: run unlocked
        yield
        return
    with (run_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ValueError(f"{run_dir} is being written by another process") from None
        yield
