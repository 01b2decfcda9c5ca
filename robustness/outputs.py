"""Output directories that never lose a file they did not write.

A command that writes several files into an output directory (``aggregate``, ``report``, ``bench``) renders
them all first, then :func:`write_outputs` checks every target and writes each one atomically. It keeps a
manifest (``.robustness-outputs.json``: relative path -> sha256 of what it wrote) so that a later run can tell
its own, unchanged outputs (replaced freely) from foreign or hand-edited files (replaced only with
``overwrite``). An empty file or a leftover temporary file counts as an interrupted write of ours.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from robustness.provenance import is_interrupted_write, write_bytes_atomic, write_json_atomic

MANIFEST = ".robustness-outputs.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(out: Path) -> dict[str, list[str]]:
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return {}  # an unreadable manifest vouches for nothing
    if not isinstance(data, dict):
        return {}
    return {k: [h for h in v if isinstance(h, str)] for k, v in data.items() if isinstance(v, list)}


def resolve_inside(out: str | Path, relative: str | Path) -> Path:
    """``out / relative``, refusing any path that resolves outside ``out`` (``..``, absolute, links)."""
    base = Path(out).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"output path {relative} resolves outside {out}")
    return Path(out) / relative


def check_output_dir(out: str | Path) -> Path:
    """``out`` is a directory (or can be created): not a file, not under a file, writable."""
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"output location {out} is not a directory ({parent} is a file)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"output location {out} is not writable ({parent})")
            break
    return out


def foreign_outputs(out: str | Path, relatives: Iterable[str]) -> list[Path]:
    """Those of ``out/<relative>`` that exist and were not written (unchanged) by us."""
    out = Path(out)
    manifest = _manifest(out)
    foreign = []
    for relative in relatives:
        path = resolve_inside(out, relative)
        if not path.exists() and not path.is_symlink():
            continue
        if path.is_dir() or path.is_symlink():
            foreign.append(path)
        elif not is_interrupted_write(path) and _sha256(path) not in manifest.get(relative, []):
            foreign.append(path)
    return foreign


def refuse_foreign(out: str | Path, relatives: Iterable[str], overwrite: bool) -> None:
    """``ValueError`` naming the files under ``out`` we would replace without having written them."""
    check_output_dir(out)
    foreign = [] if overwrite else foreign_outputs(out, relatives)
    if foreign:
        shown = ", ".join(str(p) for p in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ValueError(f"refusing to overwrite {shown}: not written by robustness (pass --overwrite to replace)")


def write_outputs(out: str | Path, files: dict[str, bytes], *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``files`` (relative path -> content) into ``out`` atomically, after checking that none of them
    would replace a foreign file (unless ``overwrite``); record them in the manifest. Returns name -> path."""
    out = Path(out)
    refuse_foreign(out, files, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(out)
    written = {}
    for relative, data in files.items():
        path = resolve_inside(out, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        # vouch for the new content before writing it, so a kill between the two steps leaves no stranger
        manifest[relative] = [*manifest.get(relative, [])[-1:], digest]
        write_json_atomic(out / MANIFEST, manifest)
        written[relative] = write_bytes_atomic(path, data)
        manifest[relative] = [digest]
    write_json_atomic(out / MANIFEST, manifest)
    return written
