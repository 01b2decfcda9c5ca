"""Packed run directories: a run's ``.jsonl`` files stored gzipped, read as if they were not.

A packed copy of a run (``robustness pack``, :mod:`robustness.schema.packing`) holds ``records.jsonl.gz`` where
the run wrote ``records.jsonl`` (likewise ``quality.jsonl``, ``revalidation.jsonl``, a trigger's
``evaluation.jsonl``); small JSON and CSV files stay as they are. Every reader of these files asks
:func:`read_stored` for the *logical* name (``<run>/records.jsonl``) and gets the same bytes from either form:
the ``.gz`` file decompresses to exactly the file the run wrote. A directory holding both forms of one file is
refused: it is a packed run that something wrote to again, and which copy is right is not ours to guess.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

__all__ = ["PACKED_SUFFIX", "check_not_packed", "compress", "packed_path", "read_stored", "stored_path"]

#: What packing appends to a compressed file's name (``records.jsonl`` -> ``records.jsonl.gz``).
PACKED_SUFFIX = ".gz"


def packed_path(path: str | Path) -> Path:
    """The packed form of ``path`` (``records.jsonl`` -> ``records.jsonl.gz``)."""
    path = Path(path)
    return path.with_name(path.name + PACKED_SUFFIX)


def stored_path(path: str | Path) -> Path | None:
    """The file that holds ``path``'s content: ``path`` itself, else its packed form, else None (neither
    exists). ``ValueError`` when both exist."""
    path = Path(path)
    packed = packed_path(path)
    plain_exists, packed_exists = path.is_file(), packed.is_file()
    if plain_exists and packed_exists:
        raise ValueError(f"{path.parent} holds both {path.name} and {packed.name}: a packed run was written to "
                         f"again; keep one (delete the other) and rerun")
    return path if plain_exists else packed if packed_exists else None


def read_stored(path: str | Path) -> bytes | None:
    """The bytes of ``path`` as the run wrote them, read from ``path`` or from its packed (gzipped) form; None
    when neither exists. ``ValueError`` naming the file when the ``.gz`` is not a whole gzip stream."""
    found = stored_path(path)
    if found is None:
        return None
    data = found.read_bytes()
    if found.name.endswith(PACKED_SUFFIX) and not Path(path).name.endswith(PACKED_SUFFIX):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{found} is not a whole gzip file ({exc}); copy it again or re-pack the run") from None
    return data


def compress(data: bytes) -> bytes:
    """``data`` gzipped reproducibly (no file name, modification time 0, level 9): packing the same bytes twice
    gives the same file, so git sees no change in a run packed again."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def check_not_packed(run_dir: str | Path, stage: str) -> None:
    """A stage that appends to a run's ``.jsonl`` files (``stage``: its name) refuses a packed copy: its lines
    would start a second, plain file beside the packed one. ``ValueError`` naming the directory."""
    packed = sorted(p.name for p in Path(run_dir).glob(f"*.jsonl{PACKED_SUFFIX}"))
    if packed:
        raise ValueError(f"{run_dir} is a packed copy ({packed[0]}): run {stage} on the original run, then pack "
                         "again")
