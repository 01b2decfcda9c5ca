"""Run directories, loaded and checked: :class:`Run` (spec.json, run.json and the records of one run),
:func:`find_runs` / :func:`load_runs` (run dirs, ``runs/`` folders or suite out dirs) and :func:`validate_runs`,
which refuses a run set that cannot be summarised as one. See :mod:`robustness.schema.records` for the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustness.requests import check_spec_records
from robustness.schema.records import RECORD_FIELDS, read_records
from robustness.schema.rundir import RECORDS_FILE, check_record_count, is_run_dir, read_run_files, spec_setting

__all__ = ["KEY", "Run", "find_runs", "load_run", "load_runs", "spec_setting", "validate_runs"]

#: What makes a setting: a stock-recipe run and an offline run of the same setting are two settings.
KEY = ["model_id", "head", "setting", "goal", "slowdown_score", "recipe", "dataset", "stock"]


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
        goal += "" if self.slowdown_score in (None, "exit") else f" ({self.slowdown_score})"
        return f"{self.spec['model_id']} {self.setting} {self.spec['recipe']}{goal}{stock}"

    @property
    def goal(self) -> str:
        """``accuracy`` (also for runs made before goals existed) or ``slowdown``."""
        return str(self.spec.get("goal") or "accuracy")

    @property
    def slowdown_score(self) -> str | None:
        """The score that guided a slowdown run's search (``exit`` for runs made before scores existed); None
        for accuracy runs."""
        return str(self.spec.get("slowdown_score") or "exit") if self.goal == "slowdown" else None

    @property
    def goal_target(self) -> int:
        """The exit layer a slowdown run had to reach (L unless set); L for accuracy runs, where reaching L
        is what the slowdown metrics measure."""
        return int(self.spec.get("goal_target") or self.num_layers)


def load_run(run_dir: str | Path) -> Run:
    """Read one run directory; ``ValueError`` if spec.json/run.json are missing or invalid."""
    path = Path(run_dir)
    spec, info = read_run_files(path)
    records = pd.DataFrame(read_records(path / RECORDS_FILE), columns=list(RECORD_FIELDS))
    if records["example_id"].duplicated().any():
        raise ValueError(f"{path / RECORDS_FILE} has duplicate example_id values")
    check_record_count(path, info, len(records))
    check_spec_records(path / "spec.json", spec, records["example_id"], info.get("status") == "complete")
    return Run(path=path, spec=spec, info=info, records=records)


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run directories under ``paths``: each may be a run dir, a ``runs/`` parent, or a suite out dir
    containing ``runs/`` (or only ``transfers/``, which holds none: a report reads its replays beside the runs of
    the other paths). Sorted, without duplicates; ``ValueError`` when nothing is found."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ValueError(f"not a directory: {path}")
        if is_run_dir(path):
            found.add(path.resolve())
            continue
        parent = path / "runs" if (path / "runs").is_dir() else path
        runs = [p.resolve() for p in parent.iterdir() if is_run_dir(p)]
        if not runs and (path / "transfers").is_dir():
            continue  # an output of transfers only (its replays are read by robustness.analysis.transfer)
        if not runs:
            raise ValueError(f"no run directories (with spec.json) in {path}")
        found.update(runs)
    if not found:
        raise ValueError(f"no attack run directories in {', '.join(map(str, paths)) or 'the paths given'}"
                         + ("; a report shows transfers beside the attack runs they replay" if paths else ""))
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
                          "slowdown_score": r.slowdown_score, "stock": bool(r.spec.get("stock", False)),
                          "run_id": r.run_id} for r in runs])
    dup = keys[keys.astype(str).duplicated(KEY, keep=False)]
    if len(dup):
        raise ValueError(f"several runs share a setting, pass run directories explicitly: {', '.join(dup['run_id'])}")
