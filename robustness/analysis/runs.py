"""Run directories, loaded and checked: :class:`Run` (spec.json, run.json and the records of one run),
:func:`find_runs` / :func:`load_runs` (run dirs, ``runs/`` folders or suite out dirs) and :func:`validate_runs`,
which refuses a run set that cannot be summarised as one. See :mod:`robustness.attack.records` for the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustness.attack.records import RECORD_FIELDS, read_records
from robustness.provenance import read_json_object
from robustness.requests import check_spec_records
from robustness.suite.specs import parse_setting

__all__ = ["KEY", "Run", "find_runs", "load_run", "load_runs", "spec_setting", "validate_runs"]

#: What makes a setting: a stock-recipe run and an offline run of the same setting are two settings.
KEY = ["model_id", "head", "setting", "goal", "recipe", "dataset", "stock"]


@dataclass
class Run:
    """One loaded run: its spec, its run.json and its records (one row per example)."""

    path: Path
    spec: dict[str, Any]
    info: dict[str, Any]
    records: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.spec.get("run_id") or self.info.get("run_id") or self.path.name)

    @property
    def num_layers(self) -> int:
        return int(self.spec["num_layers"])

    @property
    def complete(self) -> bool:
        return self.info.get("status") == "complete"

    @property
    def setting(self) -> str:
        """Canonical exit setting label; a spec.json from before settings (``patience``) reads as patience."""
        return spec_setting(self.spec)

    @property
    def label(self) -> str:
        """Short readable run name, e.g. ``pabee-minilm patience:2 textfooler`` (``(stock)`` appended)."""
        stock = " (stock)" if self.spec.get("stock") else ""
        goal = "" if self.goal == "accuracy" else f" {self.goal}"
        return f"{self.spec['model_id']} {self.setting} {self.spec['recipe']}{goal}{stock}"

    @property
    def goal(self) -> str:
        """``accuracy`` (also for runs made before goals existed) or ``slowdown``."""
        return str(self.spec.get("goal") or "accuracy")

    @property
    def goal_target(self) -> int:
        """The exit layer a slowdown run had to reach (L unless set); L for accuracy runs, where reaching L
        is what the slowdown metrics measure."""
        return int(self.spec.get("goal_target") or self.num_layers)


def spec_setting(spec: dict[str, Any]) -> str:
    """The canonical setting label of a spec.json (``setting``, else the older ``patience`` field)."""
    return parse_setting(spec["setting"] if "setting" in spec else spec.get("patience")).label


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"not a run directory (missing {path.name}): {path.parent}")
    return read_json_object(path)


def load_run(run_dir: str | Path) -> Run:
    """Read one run directory; ``ValueError`` if spec.json/run.json are missing or invalid."""
    path = Path(run_dir)
    spec, info = _read_json(path / "spec.json"), _read_json(path / "run.json")
    missing = [k for k in ("model_id", "recipe", "dataset", "num_layers", "head") if k not in spec]
    if missing:
        raise ValueError(f"{path / 'spec.json'} lacks {', '.join(missing)}")
    if spec["head"] not in ("pabee", "full"):
        raise ValueError(f"{path / 'spec.json'}: head must be 'pabee' or 'full', got {spec['head']!r}")
    records = pd.DataFrame(read_records(path / "records.jsonl"), columns=list(RECORD_FIELDS))
    if records["example_id"].duplicated().any():
        raise ValueError(f"{path / 'records.jsonl'} has duplicate example_id values")
    _check_record_count(path, info, len(records))
    check_spec_records(path / "spec.json", spec, records["example_id"], info.get("status") == "complete")
    return Run(path=path, spec=spec, info=info, records=records)


def _check_record_count(path: Path, info: dict[str, Any], found: int) -> None:
    """A complete run must hold as many whole records as its run.json says (a torn or lost line is refused)."""
    expected = info.get("num_records")
    if info.get("status") == "complete" and isinstance(expected, int) and expected != found:
        raise ValueError(f"{path / 'records.jsonl'} holds {found} whole records but {path / 'run.json'} says "
                         f"{expected}: records were lost or torn; rerun the run with attack --overwrite")


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run directories under ``paths``: each may be a run dir, a ``runs/`` parent, or a suite out dir
    containing ``runs/``. Sorted, without duplicates; ``ValueError`` when nothing is found."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ValueError(f"not a directory: {path}")
        if (path / "spec.json").is_file():
            found.add(path.resolve())
            continue
        parent = path / "runs" if (path / "runs").is_dir() else path
        runs = [p.resolve() for p in parent.iterdir() if (p / "spec.json").is_file()]
        if not runs:
            raise ValueError(f"no run directories (with spec.json) in {path}")
        found.update(runs)
    if not found:
        raise ValueError("no run directories given")
    return sorted(found)


def load_runs(paths: str | Path | Iterable[str | Path], include_incomplete: bool = False) -> list[Run]:
    """Load every run under ``paths``; runs whose status is not ``complete`` are dropped unless
    ``include_incomplete`` (summaries then flag them in the ``complete`` column)."""
    runs = [load_run(p) for p in find_runs(paths)]
    runs = [r for r in runs if r.spec.get("kind") != "transfer"]  # replays: robustness.analysis.transfer
    kept = [r for r in runs if include_incomplete or r.complete]
    if not kept:
        raise ValueError(f"none of the {len(runs)} runs is complete (pass include_incomplete to see them)")
    return kept


def validate_runs(runs: Sequence[Run]) -> None:
    """Refuse a run set that cannot be summarised as one: runs of a dataset drawing different samples (split,
    n, seed, or an example id mapped to another dataset index), or several runs of one setting (see
    :data:`KEY`). Raises ``ValueError`` naming the runs."""
    by_dataset: dict[str, dict[tuple, list[str]]] = {}
    for run in runs:
        sample = (run.spec.get("split"), run.spec.get("n"), run.spec.get("seed"))
        by_dataset.setdefault(run.spec["dataset"], {}).setdefault(sample, []).append(run.run_id)
    for dataset, samples in by_dataset.items():
        if len(samples) > 1:
            described = "; ".join(f"split={k[0]} n={k[1]} seed={k[2]}: {', '.join(v)}" for k, v in samples.items())
            raise ValueError(f"runs on {dataset} draw different samples, report them separately ({described})")
        indices: dict[int, tuple[int, str]] = {}
        for run in (r for r in runs if r.spec["dataset"] == dataset):
            for example_id, index in zip(run.records["example_id"], run.records["dataset_index"], strict=True):
                seen = indices.setdefault(int(example_id), (int(index), run.run_id))
                if seen[0] != int(index):
                    raise ValueError(f"runs {seen[1]} and {run.run_id} map example {example_id} to different "
                                     f"{dataset} examples ({seen[0]} vs {index})")
    keys = pd.DataFrame([{**{k: r.spec.get(k) for k in KEY}, "setting": r.setting, "goal": r.goal,
                          "stock": bool(r.spec.get("stock", False)), "run_id": r.run_id} for r in runs])
    dup = keys[keys.astype(str).duplicated(KEY, keep=False)]
    if len(dup):
        raise ValueError(f"several runs share a setting, pass run directories explicitly: {', '.join(dup['run_id'])}")
