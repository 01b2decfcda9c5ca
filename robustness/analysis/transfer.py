"""Transfer runs (``robustness transfer``, suite ``transfers``) -> the transfer success matrix.

One row per transfer run: the source (model, setting, goal, recipe) and the target (model, setting), with the
examples replayed (``succeeded + failed``, see :mod:`robustness.attack.transfer`) and the transfer success
rate = succeeded / replayed with an exact 95% interval. For the accuracy goal also the accuracy under the
transferred attack: the share of all n examples the target classifies right both on the original and on the
replayed text (the original where the source's attack did not succeed,
:func:`~robustness.analysis.metrics.still_correct`). Its texts are fixed by the source, the same for every
target, so unlike accuracy under each target's own attack it compares targets on identical inputs
(``robustness compare`` pairs two transfers of one source example by example).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from robustness.analysis import metrics as m
from robustness.provenance import read_json_object
from robustness.schema.records import read_records
from robustness.schema.rundir import RECORDS_FILE, RUN_FILE, SPEC_FILE, is_run_dir

COLUMNS = ["source_run_id", "dataset", "recipe", "goal", "source_model", "source_setting", "target_model",
           "target_setting", "n", "replayed", "succeeded", "success_rate", "success_rate_ci_low",
           "success_rate_ci_high", "accuracy_under_attack", "run_id", "complete"]


def find_transfers(paths: Iterable[str | Path]) -> list[Path]:
    """Transfer run directories: each path may be one, a ``transfers/`` folder, or a suite output holding one."""
    found = set()
    for raw in paths:
        path = Path(raw)
        folder = path / "transfers" if (path / "transfers").is_dir() else path
        candidates = [folder] if is_run_dir(folder) else (
            [p for p in folder.iterdir() if is_run_dir(p)] if folder.is_dir() else [])
        for run in candidates:
            if read_json_object(run / SPEC_FILE).get("kind") == "transfer":
                found.add(run.resolve())
    return sorted(found)


def transfer_table(paths: Iterable[str | Path]) -> pd.DataFrame:
    """The transfer success matrix in long form (:data:`COLUMNS`), complete transfers only."""
    rows = []
    for run in find_transfers(paths):
        spec = read_json_object(run / SPEC_FILE)
        info = read_json_object(run / RUN_FILE) if (run / RUN_FILE).is_file() else {}
        if info.get("status") != "complete":
            continue
        records = read_records(run / RECORDS_FILE)
        results = [r["result"] for r in records]
        won, replayed = results.count("succeeded"), results.count("succeeded") + results.count("failed")
        low, high = m.proportion_ci(won, replayed)
        rows.append({
            "source_run_id": spec["source_run_id"], "dataset": spec["dataset"], "recipe": spec["recipe"],
            "goal": spec.get("goal", "accuracy"), "source_model": spec["source_model_id"],
            "source_setting": spec["source_setting"], "target_model": spec["model_id"],
            "target_setting": spec["setting"], "n": len(results), "replayed": replayed, "succeeded": won,
            "success_rate": won / replayed if replayed else float("nan"), "success_rate_ci_low": low,
            "success_rate_ci_high": high, "run_id": spec["run_id"], "complete": True,
            "accuracy_under_attack": m.proportion(m.still_correct(
                [r["orig_pred"] for r in records], [r["adv_pred"] for r in records], [r["label"] for r in records]))
            if spec.get("goal", "accuracy") == "accuracy" else float("nan"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)
