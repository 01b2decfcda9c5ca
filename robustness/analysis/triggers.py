"""Universal slowdown triggers (``robustness trigger``, suite ``triggers``) -> one table row per evaluated model
and setting, beside the per-example slowdown attacks of the same model and setting.

Reads the evaluation rows of finished trigger directories (:mod:`robustness.schema.triggers`); a trigger's
efficiency gain left uses the definition of :func:`robustness.analysis.metrics.efficiency_gain_left`, so it can
be read next to the slowdown runs' ``efficiency_gain_left`` of the summary (column ``attack_gain_left``: the
slowdown runs of that model, setting and dataset, ``recipe=value`` for each, ``recipe/score=value`` for a
slowdown score other than ``exit``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from robustness.provenance import read_json_object
from robustness.schema.rundir import RUN_FILE, SPEC_FILE, is_run_dir
from robustness.schema.triggers import read_rows

__all__ = ["COLUMNS", "find_triggers", "trigger_table"]

COLUMNS = ["prefix", "source_model_id", "source_setting", "model_id", "setting", "replayed", "dataset", "n",
           "clean_mean_exit", "trigger_mean_exit", "exit_shift", "efficiency_gain_left", "clean_accuracy",
           "trigger_accuracy", "trigger_at_last_layer", "prediction_changed", "trigger_id"]


def _folders(path: Path) -> list[Path]:
    """Where trigger directories may be for one report source: itself, its ``triggers/``, or (a ``runs/``
    folder of a suite output) the ``triggers/`` beside it."""
    return [path, path / "triggers", path.parent / "triggers"]


def find_triggers(paths: Iterable[str | Path]) -> list[Path]:
    """Trigger directories (``spec.json`` with ``kind: "trigger"``) at or beside each of ``paths``."""
    found = set()
    for raw in paths:
        for folder in _folders(Path(raw)):
            if not folder.is_dir():
                continue
            for candidate in [folder, *(p for p in folder.iterdir() if p.is_dir())]:
                if is_run_dir(candidate) and read_json_object(candidate / SPEC_FILE).get("kind") == "trigger":
                    found.add(candidate.resolve())
    return sorted(found)


def _search(run) -> str:
    """How a slowdown run searched: its recipe, with its slowdown score unless it is the default ``exit``."""
    score = getattr(run, "slowdown_score", None)
    return run.recipe if score in (None, "exit") or score != score else f"{run.recipe}/{score}"


def trigger_table(paths: Iterable[str | Path], summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every evaluation row of the complete triggers under ``paths`` (:data:`COLUMNS`), plus, with a run
    ``summary``, ``attack_gain_left``: the per-example slowdown attacks' efficiency gain left there."""
    rows = []
    for trigger in find_triggers(paths):
        info = read_json_object(trigger / RUN_FILE) if (trigger / RUN_FILE).is_file() else {}
        if info.get("status") == "complete":
            rows += read_rows(trigger)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if summary is not None and not table.empty:
        slow = summary[summary["goal"] == "slowdown"] if "goal" in summary else summary.iloc[0:0]
        table["attack_gain_left"] = [
            " ".join(f"{_search(r)}={r.efficiency_gain_left:.3f}" for r in slow.itertuples()
                     if (r.model_id, r.setting, r.dataset) == (row.model_id, row.setting, row.dataset)) or None
            for row in table.itertuples()]
    return table.sort_values(["trigger_id", "replayed", "model_id", "setting"], kind="stable").reset_index(drop=True)
