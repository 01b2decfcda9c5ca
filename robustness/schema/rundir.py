"""The run directory schema: the three files of an attack run or a transfer, and how a reader gets at them.

``<run_dir>/spec.json`` (written before work starts: the spec, its run id, the model facts a reader needs --
``num_layers``, ``head``, ``label_names`` -- and the model fingerprint; a transfer's also says ``kind:
"transfer"``), ``run.json`` (status ``running``/``complete``/``failed``, versions, timings, ``num_records`` once
complete; replaced atomically) and ``records.jsonl`` (:mod:`robustness.schema.records`). A directory is a run
when it holds ``spec.json``. Writing and guarding run directories is the attack stack's
(:mod:`robustness.attack.rundir`); reading them needs only this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robustness.provenance import read_json_object
from robustness.schema.settings import parse_setting

__all__ = ["HEADS", "PARTS", "RECORDS_FILE", "RUN_FILE", "SPEC_FIELDS", "SPEC_FILE", "check_record_count",
           "is_run_dir", "output_folders", "read_run_files", "read_run_info", "read_spec", "spec_setting"]

SPEC_FILE, RUN_FILE, RECORDS_FILE = "spec.json", "run.json", "records.jsonl"
#: What every spec.json holds (attack runs and transfers alike), for a reader to rely on.
SPEC_FIELDS = ("model_id", "recipe", "dataset", "num_layers", "head")
#: Model heads: PABEE (a classifier after every layer) or a full-depth baseline (one head on layer L).
HEADS = ("pabee", "full")
#: The folders of a suite output that hold run directories (attack runs, transfers, triggers).
PARTS = ("runs", "transfers", "triggers")


def output_folders(sources: str | Path | Iterable[str | Path], parts: Iterable[str] = PARTS) -> list[Path]:
    """Where the files of the suite outputs among ``sources`` lie (``clean/``, ``selection.json``,
    ``verdict.json``): each source itself, then, for a source that is one of an output's ``parts`` folders, the
    output beside it; in order, a folder once per source."""
    sources = [sources] if isinstance(sources, str | Path) else list(sources)
    parts = tuple(parts)
    return [folder for source in map(Path, sources)
            for folder in (source, *((source.parent,) if source.name in parts else ()))]


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a run (its ``spec.json``)."""
    return (Path(path) / SPEC_FILE).is_file()


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"not a run directory (missing {path.name}): {path.parent}")
    return read_json_object(path)


def _check_spec(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    missing = [k for k in SPEC_FIELDS if k not in spec]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    if spec["head"] not in HEADS:
        raise ValueError(f"{path}: head must be 'pabee' or 'full', got {spec['head']!r}")
    return spec


def read_spec(run_dir: str | Path) -> dict[str, Any]:
    """``spec.json`` of ``run_dir`` as a dict; ``ValueError`` (naming the file) when it is missing, not a JSON
    object, lacks a field of :data:`SPEC_FIELDS` or names an unknown head."""
    path = Path(run_dir) / SPEC_FILE
    return _check_spec(_read(path), path)


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of ``run_dir`` as a dict; ``ValueError`` when it is missing or not a JSON object."""
    return _read(Path(run_dir) / RUN_FILE)


def read_run_files(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(spec, info)``: :func:`read_spec` and :func:`read_run_info`, with both files' presence checked before
    the spec's fields (a directory lacking run.json is reported as such first)."""
    path = Path(run_dir)
    spec, info = _read(path / SPEC_FILE), _read(path / RUN_FILE)
    return _check_spec(spec, path / SPEC_FILE), info


def spec_setting(spec: dict[str, Any]) -> str:
    """The canonical setting label of a spec.json (``setting``, else the older ``patience`` field)."""
    return parse_setting(spec["setting"] if "setting" in spec else spec.get("patience")).label


def check_record_count(run_dir: str | Path, info: dict[str, Any], found: int) -> None:
    """A complete run must hold as many whole records as its run.json says (a torn or lost line is refused)."""
    path = Path(run_dir)
    expected = info.get("num_records")
    if info.get("status") == "complete" and isinstance(expected, int) and expected != found:
        raise ValueError(f"{path / RECORDS_FILE} holds {found} whole records but {path / RUN_FILE} says "
                         f"{expected}: records were lost or torn; rerun the run with attack --overwrite")
