"""What every stage writes beside its output: package versions, and JSON files replaced atomically."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import robustness


def versions() -> dict[str, str]:
    """Versions of python, robustness and the packages that shape results (read without importing them)."""
    found = {"robustness": robustness.__version__, "python": platform.python_version()}
    for package in ("torch", "transformers", "textattack"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover
            found[package] = "unknown"
    return found


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
