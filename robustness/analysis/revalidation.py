"""Strict metrics per run, read from each run's ``revalidation.jsonl`` (written by the re-validation stage,
:mod:`robustness.revalidate`; nothing here runs a model).

A run is *re-validated* when it has the file and every succeeded example of its records has a line there; then
``strict_attack_success_rate`` and ``strict_accuracy_under_attack`` are defined
(:func:`robustness.analysis.metrics.strict_still_correct`: an example whose adversarial text fails the checks
counts as an attack failure, the original prediction stands), with exact 95% intervals, and the shares of the
re-validated texts failing each check. Otherwise they are NaN (never the raw numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from robustness.analysis import metrics as m
from robustness.analysis.runs import KEY, Run
from robustness.revalidate import REVALIDATION_FILE, read_revalidation
from robustness.schema.packed import stored_path

#: The check columns of a re-validation line, and the summary column holding the share of texts failing each.
CHECKS = {"word_cosine_ok": "fail_word_cosine", "pos_ok": "fail_pos", "similarity_ok": "fail_similarity",
          "ppl_ratio_ok": "fail_ppl_ratio"}
STRICT_COLUMNS = ["revalidation_preset", "revalidated", "strict_attack_success_rate",
                  "strict_attack_success_rate_ci_low", "strict_attack_success_rate_ci_high",
                  "strict_accuracy_under_attack", "strict_accuracy_under_attack_ci_low",
                  "strict_accuracy_under_attack_ci_high", *CHECKS.values()]
#: Columns of the re-validation table (tables/revalidation.csv and the report section).
TABLE_COLUMNS = [*KEY, "run_id", "n", "attack_success_rate", "accuracy_under_attack", *STRICT_COLUMNS]


def run_validity(run: Run) -> dict[int, bool]:
    """example id -> valid, for the succeeded examples of the run that have a re-validation line of the same
    adversarial text (a stale line, from before the run was redone, does not count)."""
    won = run.records[run.records["result"] == "succeeded"]
    texts = dict(zip(won["example_id"], won["adv_text"], strict=True))
    return {int(r["example_id"]): bool(r["valid"]) for r in read_revalidation(run.path / REVALIDATION_FILE)
            if r["example_id"] in texts and texts[r["example_id"]] == r["adv_text"]}


def valid_column(run: Run) -> list[bool | None] | None:
    """Per record (in order): whether its adversarial text passed re-validation (None where not checked: not
    succeeded), or None when the run is not re-validated (no file, or some succeeded example lacks a line): its
    strict metrics are then undefined."""
    if stored_path(run.path / REVALIDATION_FILE) is None:
        return None
    validity = run_validity(run)
    records = run.records
    column = [validity.get(int(k)) for k in records["example_id"]]
    if any(r == "succeeded" and v is None for r, v in zip(records["result"], column, strict=True)):
        return None
    return column


def strict_metrics(run: Run) -> dict[str, object]:
    """The :data:`STRICT_COLUMNS` of one run (NaN when it is not fully re-validated)."""
    row: dict[str, object] = dict.fromkeys(STRICT_COLUMNS, np.nan)
    rows = read_revalidation(run.path / REVALIDATION_FILE)
    row["revalidation_preset"] = ", ".join(sorted({str(r["preset"]) for r in rows})) or np.nan  # as CSV reads it
    valid = valid_column(run)
    if valid is None:
        return row
    records = run.records
    results, labels = list(records["result"]), list(records["label"])
    strict = m.strict_results(results, valid)
    kept = m.strict_still_correct(list(records["orig_pred"]), list(records["adv_pred"]), labels, results, valid)
    attacked = sum(r != "skipped" for r in strict)
    row.update(revalidated=sum(v is not None for v in valid), strict_attack_success_rate=m.attack_success_rate(strict),
               strict_accuracy_under_attack=m.proportion(kept))
    for name, hits, total in (("strict_attack_success_rate", strict.count("succeeded"), attacked),
                              ("strict_accuracy_under_attack", int(kept.sum()), len(kept))):
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = m.proportion_ci(hits, total)
    checked = pd.DataFrame([r for r in rows if r["example_id"] in run_validity(run)])
    for check, column in CHECKS.items():
        row[column] = float((~checked[check].astype(bool)).mean()) if len(checked) else np.nan
    return row


def revalidation_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The re-validated rows of the summary, raw and strict side by side (:data:`TABLE_COLUMNS`)."""
    if "revalidated" not in summary:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    rows = summary[summary["revalidated"].notna()]
    return rows.reindex(columns=TABLE_COLUMNS).reset_index(drop=True)


def strict_findings(table: pd.DataFrame) -> list[str]:
    """One sentence per recipe and dataset: how far strict re-validation lowers the success rate."""
    out = []
    for (dataset, recipe), rows in table.groupby(["dataset", "recipe"], sort=True):
        raw, strict = rows["attack_success_rate"], rows["strict_attack_success_rate"]
        presets = ", ".join(sorted(set(rows["revalidation_preset"].dropna())))
        out.append(f"{recipe} on {dataset}: under strict re-validation ({presets}) the attack success rate is "
                   f"{_span(strict)} instead of {_span(raw)} over {len(rows)} settings; "
                   f"{int(rows['revalidated'].sum())} adversarial texts re-checked.")
    return out


def _span(values: Sequence[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    low, high = f"{100 * min(values):.1f}%", f"{100 * max(values):.1f}%"
    return low if low == high else f"{low}–{high}"
