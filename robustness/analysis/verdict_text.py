"""The verdict in words: the report's first findings, rendered from the verdict table of
:func:`robustness.analysis.verdict.verdict_tables` (one summary sentence, then one per comparison), and the
sentence on the exploratory family. Every number comes from the table; nothing is computed here but rounding.

A row whose outcome is a pre-equivalence ``no_significant_difference`` (:data:`LEGACY_VERDICTS`) reads as
``inconclusive`` and says that equivalence was not tested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustness.schema.specs import VerdictOptions

__all__ = ["LEGACY_VERDICTS", "exploratory_finding", "verdict_findings"]

#: Outcomes of tables written before the equivalence test, and how they read now.
LEGACY_VERDICTS = {"no_significant_difference": "inconclusive"}


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def _points(value: float, sign: bool = False) -> str:
    return "n/a" if value != value else f"{100 * value:{'+' if sign else ''}.1f}"


def _margin(options: VerdictOptions) -> str:
    return f"{100 * options.equivalence_margin:g}"


def exploratory_finding(candidates: pd.DataFrame, options: VerdictOptions | None = None) -> list[str]:
    """One sentence on the exploratory family (empty without one): how many of its Holm-adjusted tests find the
    setting more or less robust than the baseline, or equivalent within ±δ. It never changes the verdict."""
    options = options or VerdictOptions()
    if candidates.empty or "role" not in candidates:
        return []
    rows = candidates[candidates["role"] == "exploratory"]
    if rows.empty:
        return []
    significant = rows["p_adjusted"] < options.alpha
    more = int((significant & (rows["accuracy_under_attack"] > rows["baseline_accuracy_under_attack"])).sum())
    equivalent = int((~significant & (rows.get("tost_p_adjusted", np.nan) < options.alpha)).sum())
    rest = len(rows) - int(significant.sum()) - equivalent
    return [f"Exploratory (every comparison outside the verdict; Holm-adjusted over its {len(rows)} tests, "
            f"never the verdict): more robust in {more}, less robust in {int(significant.sum()) - more}, "
            f"equivalent within ±{_margin(options)} points in {equivalent}, inconclusive in "
            f"{rest} (tables/verdict_candidates.csv)."]


def _secondary(row: pd.Series) -> str:
    """The secondary endpoint's clause of a verdict sentence (empty when the runs are not re-validated)."""
    if row.get("strict_accuracy_under_attack", np.nan) != row.get("strict_accuracy_under_attack", np.nan):
        return ""
    return (f"; secondary, never the verdict: strict accuracy under attack (texts failing re-validation count as "
            f"attack failures) {_pct(row['strict_accuracy_under_attack'])} vs "
            f"{_pct(row['baseline_strict_accuracy_under_attack'])}, McNemar p = {row['strict_p_value']:.3g} "
            f"unadjusted")


def _tests(row: pd.Series, options: VerdictOptions) -> str:
    """The numbers behind an outcome: McNemar, the TOST and its interval, the minimum detectable difference."""
    mcnemar = f"McNemar p = {row['p_value']:.3g}, Holm-adjusted {row['p_adjusted']:.3g}"
    if row.get("tost_p_value", np.nan) != row.get("tost_p_value", np.nan):
        return f"{mcnemar}; equivalence not tested (a table written before the equivalence test)"
    level = f"{100 * (1 - 2 * options.alpha):g}%"
    difference = row["accuracy_under_attack"] - row["baseline_accuracy_under_attack"]
    interval = f"[{_points(row['ci_low'], True)}, {_points(row['ci_high'], True)}]"
    return (f"{mcnemar}; difference {_points(difference, True)} points, {level} CI {interval}, equivalence "
            f"TOST within ±{_margin(options)} points p = {row['tost_p_value']:.3g}, "
            f"Holm-adjusted {row['tost_p_adjusted']:.3g}; minimum detectable difference at 80% power "
            f"{_points(row['mdd'])} points")


def _said(row: pd.Series, options: VerdictOptions) -> tuple[str, str]:
    """The outcome in words, before and after "at <setting>"."""
    delta = _margin(options)
    verdict = LEGACY_VERDICTS.get(row["verdict"], row["verdict"])
    if verdict in ("more_robust", "less_robust"):
        said = verdict.replace("_", " ")
        if row.get("tost_p_adjusted", np.nan) < options.alpha:
            return said, f", a significant difference though within ±{delta} points"
        return said, ""
    if verdict == "equivalent":
        return f"equivalent within ±{delta} points", ""
    return "inconclusive", f", neither a difference nor equivalence within ±{delta} points is shown"


def verdict_findings(verdict: pd.DataFrame, options: VerdictOptions | None = None) -> list[str]:
    """The report's first findings, rendered from the verdict table: one summary sentence, then one per row."""
    options = options or VerdictOptions()
    if verdict.empty:
        return ["No verdict: the runs hold no early-exit model with a full-depth baseline to compare it with."]
    counts = verdict["verdict"].replace(LEGACY_VERDICTS).value_counts()
    choice = (f"the pre-registered setting {options.setting}" if options.setting else
              f"the setting pre-registered by the rule {options.select} on the selection set" if options.select else
              "the eligible setting with the highest accuracy under attack")
    tests = int(verdict["p_adjusted"].notna().sum())
    delta = _margin(options)
    head = (f"Verdict (endpoint: accuracy under attack over all sampled examples, exact McNemar test against the "
            f"full-depth baseline on the same examples, {choice}, Holm-adjusted p < {options.alpha:g}; equivalent "
            f"when a paired TOST puts the difference within the pre-registered ±{delta} points, Holm-adjusted "
            f"p < {options.alpha:g}): more robust in {counts.get('more_robust', 0)}, less robust in "
            f"{counts.get('less_robust', 0)}, equivalent in {counts.get('equivalent', 0)}, inconclusive in "
            f"{counts.get('inconclusive', 0)}, and no verdict in "
            f"{counts.get('no_eligible_setting', 0) + counts.get('insufficient_n', 0)} of {len(verdict)} "
            f"comparisons ({tests} with a test).")
    out = [head]
    for _, row in verdict.iterrows():
        where = f"{row['recipe']} on {row['dataset']}, {row['model']} vs {row['baseline']}"
        if row["verdict"] == "no_eligible_setting":
            out.append(f"{where}: no verdict, no eligible setting ({row['reason_ineligible']}).")
            continue
        numbers = (f"accuracy under attack {_pct(row['accuracy_under_attack'])} vs "
                   f"{_pct(row['baseline_accuracy_under_attack'])} over {int(row['n'])} examples; clean accuracy "
                   f"{_pct(row['clean_accuracy'])} vs {_pct(row['baseline_clean_accuracy'])}")
        if not row.get("clean_off_sample", False):
            numbers += " (measured on the attacked sample: no clean evaluation off the sample was given)"
        if row["verdict"] == "insufficient_n":
            out.append(f"{where}: no verdict, too few examples at {row['setting']} ({numbers}; at least "
                       f"{options.min_n} are needed).")
            continue
        said, tail = _said(row, options)
        out.append(f"{where}: {said} at {row['setting']}{tail} ({numbers}; {_tests(row, options)})"
                   f"{_secondary(row)}.")
    return out
