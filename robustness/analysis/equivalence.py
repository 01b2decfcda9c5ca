"""Settings whose exits are identical by construction, folded into one row of a summary.

Two exit settings of the same model are **equivalent by construction** (:func:`equivalent_by_construction`) when
their rules make the same exit and prediction on every input:

* ``patience:P`` with P >= L − 1 and ``full``: PABEE counts agreeing layers from layer 2 on and exits at the first
  layer i in 2..L whose counter reaches P, else at L; the counter at layer i is at most i − 1, so P = L − 1 can
  only fire at L, where every example exits anyway (DESIGN.md's exit rule).
* ``entropy:T`` and ``maxprob:t`` with two classes (C = 2) and T = H(t), H the binary entropy in nats: for
  max p >= 1/2, H(max p) is strictly decreasing, so H < T ⇔ max p > t. Thresholds matched on data (``robustness
  evaluate --match-*``) are printed to a few digits, so T and H(t) agree only to ``rel_tol`` (default 1e-2): the
  rules can then differ on inputs whose max probability lies between t and H⁻¹(T), and an attack may find them.
  With three or more classes entropy and max probability are not functions of each other: never equivalent.

A pair is **folded** (:func:`fold_equivalent`) only when the construction says so *and* the runs agree: with
records, every example has the same result, predictions, exit layers, query count and adversarial text; from a
summary table alone (a committed report), every metric of the two rows is equal. A pair that the construction
matches but whose runs differ is kept as two rows, so folding never hides a measured difference. The summary
keeps every row (both runs stay in ``summary.csv``); the folded row is marked by ``same_as`` (the label of the
row it is folded into), and :func:`folded` gives the table that tables, figures and the report text show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from robustness.schema.settings import Setting, parse_setting

if TYPE_CHECKING:
    from robustness.analysis.runs import Run

__all__ = ["RECORD_COLUMNS", "binary_entropy", "equivalent_by_construction", "fold_equivalent", "fold_note",
           "fold_rows", "folded", "records_identical", "setting_display"]

#: Record fields that must agree on every example for two runs to be folded (exits, predictions, the search).
RECORD_COLUMNS = ("result", "orig_pred", "adv_pred", "orig_exit_layer", "adv_exit_layer", "num_queries", "adv_text")
#: Summary columns that are not measurements of the setting (ids, timings, what this process's cache encoded).
_NOT_COMPARED = {"run_id", "setting", "same_as", "wall_time_s", "attack_time_s", "mean_layers_encoded", "complete",
                 "stock", "patience", "patience_label"}  # the last two: first-wave names of the setting
#: Rows of a summary that may fold into each other must agree on these.
_GROUP = ["dataset", "recipe", "goal", "model_id", "head"]


def _group(summary: pd.DataFrame) -> list[str]:
    """The columns rows fold within: :data:`_GROUP`, and the slowdown score where the summary has one (runs that
    differ only in what guided their search are two rows, never one)."""
    return [*_GROUP, *(["slowdown_score"] if "slowdown_score" in summary else [])]


def binary_entropy(p: float) -> float:
    """H(p) = −p ln p − (1 − p) ln(1 − p), nats (0 at p ∈ {0, 1})."""
    return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0)


def equivalent_by_construction(a: Setting | str, b: Setting | str, num_layers: int, num_classes: int | None,
                               rel_tol: float = 1e-2) -> bool:
    """Do settings ``a`` and ``b`` make the same exits on every input of a model with ``num_layers`` layers and
    ``num_classes`` classes (None: unknown, so no entropy/max-prob equivalence)? See the module docstring."""
    a, b = parse_setting(a), parse_setting(b)
    if a == b:
        return True

    def full_depth(s: Setting) -> bool:
        return s.policy == "full" or (s.policy == "patience" and s.value >= num_layers - 1)

    if full_depth(a) and full_depth(b):
        return True
    if {a.policy, b.policy} == {"entropy", "maxprob"} and num_classes == 2:
        entropy, maxprob = (a, b) if a.policy == "entropy" else (b, a)
        if maxprob.value < 0.5:  # max p >= 1/2 always: every layer is confident, unlike any entropy < ln 2
            return False
        return math.isclose(binary_entropy(maxprob.value), entropy.value, rel_tol=rel_tol, abs_tol=1e-12)
    return False


def records_identical(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Do two runs' records agree on every example (by ``example_id``) in :data:`RECORD_COLUMNS`?"""
    if len(a) != len(b) or set(a["example_id"]) != set(b["example_id"]):
        return False
    left, right = (r.set_index("example_id").sort_index()[list(RECORD_COLUMNS)] for r in (a, b))
    return bool(left.astype(object).where(left.notna(), None).equals(right.astype(object).where(right.notna(), None)))


def _metrics_identical(a: pd.Series, b: pd.Series) -> bool:
    for column in a.index:
        if column in _NOT_COMPARED or column in _GROUP or column == "slowdown_score":
            continue
        x, y = a[column], b[column]
        if isinstance(x, float | np.floating) or isinstance(y, float | np.floating):
            if not (pd.isna(x) and pd.isna(y)) and not (not pd.isna(x) and not pd.isna(y)
                                                      and math.isclose(float(x), float(y), rel_tol=1e-12)):
                return False
        elif not (pd.isna(x) and pd.isna(y)) and x != y:
            return False
    return True


def _keep_first(a: Setting, b: Setting) -> bool:
    """Which of two equivalent settings names the folded row: full over patience, entropy over max-prob."""
    rank = {"full": 0, "entropy": 1, "maxprob": 2, "patience": 3}
    return rank[a.policy] <= rank[b.policy]


def fold_equivalent(summary: pd.DataFrame, runs: Sequence[Run] | None = None, num_classes: int | None = None,
                    rel_tol: float = 1e-2) -> pd.DataFrame:
    """``summary`` with a ``same_as`` column: for a row folded into another, that row's setting label (else "").

    Rows fold within (dataset, recipe, goal, model) when :func:`equivalent_by_construction` holds and the runs
    agree: :func:`records_identical` when ``runs`` are given (their records, by ``run_id``), else every metric
    of the two rows is equal. ``num_classes``: the classes of every model (default: the summary's
    ``num_classes`` column, else unknown)."""
    out = summary.copy()
    out["same_as"] = ""
    by_id = {run.run_id: run for run in runs or []}
    for _, group in out.groupby(_group(out), sort=False, dropna=False):
        rows = list(group.itertuples())
        for i, row in enumerate(rows):
            for other in rows[:i] + rows[i + 1:]:
                a, b = parse_setting(row.setting), parse_setting(other.setting)
                if not _keep_first(b, a) or out.at[other.Index, "same_as"]:
                    continue  # row is not the one to fold, or other is folded already
                classes = num_classes if num_classes is not None else getattr(row, "num_classes", None)
                classes = None if classes is None or pd.isna(classes) else int(classes)
                if not equivalent_by_construction(a, b, int(row.num_layers), classes, rel_tol):
                    continue
                if by_id and row.run_id in by_id and other.run_id in by_id:
                    same = records_identical(by_id[row.run_id].records, by_id[other.run_id].records)
                else:
                    same = _metrics_identical(out.loc[row.Index], out.loc[other.Index])
                if same:
                    out.at[row.Index, "same_as"] = other.setting
                    break
    return out


def folded(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`fold_equivalent` summary that are shown, each with ``also`` (the settings folded
    into it, " = "-joined, "" if none) and ``setting_shown`` (``entropy:0.06 = maxprob:0.988``). A folded row
    whose row to fold into is not in ``summary`` (a slice of it) is shown as itself."""
    if "same_as" not in summary:
        summary = fold_equivalent(summary)
    same_as = summary["same_as"].fillna("")
    group = _group(summary)
    present = set(zip(*(summary[c] for c in group), summary["setting"], strict=True))
    target = [(*key, into) in present for key, into in zip(zip(*(summary[c] for c in group), strict=True), same_as,
                                                            strict=True)]
    summary = summary.assign(same_as=[into if ok else "" for into, ok in zip(same_as, target, strict=True)])
    shown = summary[summary["same_as"] == ""].copy()
    also = []
    for _, row in shown.iterrows():
        match = summary[(summary["same_as"] == row["setting"])
                        & _same_group(summary, row, group)]
        also.append(" = ".join(match["setting"]))
    shown["also"] = also
    shown["setting_shown"] = [setting_display(s, a) for s, a in zip(shown["setting"], shown["also"], strict=True)]
    return shown


def setting_display(setting: str, also: str) -> str:
    """``setting`` with the settings folded into it: ``full = patience:5``."""
    return f"{setting} = {also}" if also else setting


def fold_note(summary: pd.DataFrame) -> str:
    """One sentence naming the folded pairs (empty when none): what is folded, why, where both runs are."""
    if "same_as" not in summary:
        return ""
    pairs = summary[summary["same_as"].fillna("") != ""]
    if pairs.empty:
        return ""
    names = sorted({f"{row['setting']} into {row['same_as']}" for _, row in pairs.iterrows()})
    return (f"Folded {len(pairs)} row(s) ({'; '.join(names)}): their exits are identical by construction "
            "(patience L−1 exits at L like full depth; with two classes max-prob t and entropy H(t) make the "
            "same exits) and their runs agree (every example's record; every metric where only tables are "
            "left), so each pair shows as one row or point named 'a = b'. Both runs stay in tables/summary.csv "
            "(column same_as).")


def fold_rows(table: pd.DataFrame, summary: pd.DataFrame, model: str = "model") -> pd.DataFrame:
    """Rows of another per-setting table (verdict candidates: dataset, recipe, ``model``, setting) folded as
    ``summary`` (a :func:`fold_equivalent` summary) folds them: the rows of folded settings dropped, the setting of
    the row they fold into shown as ``a = b``."""
    if table.empty or "same_as" not in summary:
        return table
    gone = summary[summary["same_as"].fillna("") != ""]
    if "goal" in summary and "goal" not in table:
        gone = gone[gone["goal"] == "accuracy"]
    keys = ["dataset", "recipe", model, "setting"]
    dropped = {(r.dataset, r.recipe, r.model_id, r.setting): r.same_as for r in gone.itertuples()}
    joined = {}
    for (dataset, recipe, model_id, setting), into in dropped.items():
        key = (dataset, recipe, model_id, into)
        joined[key] = " = ".join([*filter(None, [joined.get(key)]), setting])
    out = table[[tuple(k) not in dropped for k in table[keys].itertuples(index=False)]].copy()
    out["setting"] = [setting_display(s, joined.get(tuple(k), "")) for s, k in zip(
        out["setting"], out[keys].itertuples(index=False), strict=True)]
    return out


def _same_group(summary: pd.DataFrame, row: pd.Series, group: list[str]) -> pd.Series:
    """Rows of ``summary`` in ``row``'s group (a missing value, e.g. an accuracy run's slowdown score, matches a
    missing value)."""
    match = pd.Series(True, index=summary.index)
    for column in group:
        value = row[column]
        match &= summary[column].isna() if pd.isna(value) else summary[column] == value
    return match
