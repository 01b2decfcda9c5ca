"""The conclusion of a suite, decided in one place: is an early-exit setting more robust than its full-depth
baseline?

* Endpoint: accuracy under attack over all n sampled examples (correct before the attack and still correct
  after it), compared with the baseline on the same examples by an exact McNemar test. The attack success
  rate is conditional on a different attacked subset per setting; it is descriptive only.
* Eligibility, decided without looking at attack outcomes: a setting is eligible when (a) its clean accuracy
  is at most ``margin`` below the baseline's (non-inferiority: :func:`~robustness.schema.selection.within_margin`,
  the select rule's comparison too; an unknown (NaN) clean accuracy is never eligible), (b) it is not degenerate
  (every class has recall >= :data:`MIN_RECALL`, no class takes >= :data:`MAX_SHARE` of the predictions) and (c)
  at least ``min_n`` examples are paired with the baseline. (a) and (b) are measured on a clean evaluation table
  off the attack sample when one is given (``clean``), else on the clean texts of the attack sample, with a caveat.
* Outcome of a comparison, at level ``alpha`` after Holm adjustment: ``more_robust`` / ``less_robust`` when the
  exact McNemar test rejects "no difference" (direction from the two accuracies); else ``equivalent`` when the
  paired TOST (:func:`~robustness.analysis.paired_stats.paired_tost`: two one-sided Tango score tests, i.e. the
  (1 − 2α) Tango interval of the difference lies within ±``equivalence_margin``) rejects "|difference| >= δ";
  else ``inconclusive`` (neither a difference nor equivalence is shown). A significant difference inside ±δ is
  reported as the difference (it is the sharper claim); the TOST columns still show it. No-verdict reasons:
  ``no_eligible_setting``, ``insufficient_n``.
* Minimum detectable difference (``mdd``): the difference in accuracy under attack that a two-sided McNemar test
  at level ``alpha`` (before Holm adjustment) detects with 80% power at this n and the observed discordance rate
  (Connor 1987, :func:`~robustness.analysis.paired_stats.mcnemar_mdd`): a comparison whose mdd exceeds the
  margin δ can hardly end ``equivalent`` or find a difference below it.
* Multiplicity: the TOST p-values are Holm-adjusted over the same family as the McNemar p-values (the same
  confirmatory comparisons; the exploratory family likewise), each family of tests on its own; the Tango
  interval columns (``ci_low``, ``ci_high``) are per comparison, not adjusted.
* Tables written before the equivalence test (the committed ``reports/v2-*``) say ``no_significant_difference``;
  they are read as :data:`LEGACY_VERDICTS` says, ``inconclusive``: no difference was shown, and equivalence was
  never tested (their tables lack the paired counts to test it now).
* Choice of setting: pre-registered (``options.setting``, e.g. from the suite's ``[verdict] setting``, or the
  setting a ``[verdict] select`` rule chose on the same clean table, :mod:`robustness.analysis.preregistered`),
  else the eligible setting with the highest accuracy under attack. The confirmatory family -- the pre-registered
  setting's tests, else every eligible setting's (so picking the best costs power) -- x recipe x model x
  baseline is Holm-adjusted as one family.
* Secondary endpoint (never the verdict): the strict accuracy under attack, where an adversarial text that fails
  strict re-validation (``robustness revalidate``) counts as an attack failure
  (:func:`~robustness.analysis.metrics.strict_still_correct`), with its own exact McNemar p-value, unadjusted;
  NaN unless both runs are re-validated. It is reported beside the pre-registered endpoint, never instead.
* Exploratory: every other comparison with at least ``min_n`` paired examples (ineligible settings, and with a
  pre-registered setting every other one) is still tested and Holm-adjusted as a second family (``role`` =
  ``exploratory``); it never enters the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from robustness.analysis import metrics as m
from robustness.analysis.compare import paired_records
from robustness.analysis.paired_stats import mcnemar_mdd, paired_tost
from robustness.analysis.preregistered import registered_options
from robustness.analysis.revalidation import valid_column
from robustness.analysis.runs import Run
from robustness.analysis.verdict_text import LEGACY_VERDICTS, exploratory_finding, verdict_findings
from robustness.schema.selection import within_margin
from robustness.schema.specs import VerdictOptions

#: A setting is degenerate when some class has a recall below this, or ...
MIN_RECALL = 0.20
#: ... one class takes at least this share of its clean predictions.
MAX_SHARE = 0.95

VERDICTS = ("more_robust", "less_robust", "equivalent", "inconclusive", "no_eligible_setting", "insufficient_n")
__all__ = ["COLUMNS", "LEGACY_VERDICTS", "VERDICTS", "VerdictOptions", "exploratory_finding", "verdict_findings",
           "verdict_tables"]
COLUMNS = ["dataset", "recipe", "model", "baseline", "setting", "eligible", "reason_ineligible", "clean_accuracy",
           "baseline_clean_accuracy", "n", "accuracy_under_attack", "baseline_accuracy_under_attack", "p_value",
           "p_adjusted", "ci_low", "ci_high", "tost_p_value", "tost_p_adjusted", "mdd", "verdict"]
#: Per comparison: the (1 − 2α) Tango interval of the difference, the TOST p-value, the MDD at 80% power.
TESTS = ["p_value", "ci_low", "ci_high", "tost_p_value", "mdd"]
#: The secondary endpoint's columns (strict re-validation), after :data:`COLUMNS` in the verdict table.
SECONDARY = ["strict_accuracy_under_attack", "baseline_strict_accuracy_under_attack", "strict_p_value"]


@dataclass(frozen=True)
class CleanQuality:
    accuracy: float
    min_class_recall: float
    max_pred_share: float
    off_sample: bool


def _sample_quality(run: Run) -> CleanQuality:
    records = run.records
    correct = m.clean_correct(list(records["orig_pred"]), list(records["label"]))
    recalls = [correct[(records["label"] == c).to_numpy()].mean() for c in sorted(set(records["label"]))]
    share = records["orig_pred"].value_counts(normalize=True).max() if len(records) else np.nan
    return CleanQuality(m.proportion(correct), min(recalls, default=np.nan), float(share), off_sample=False)


def _off_sample(model_id: str, setting: str, clean: pd.DataFrame | None) -> CleanQuality | None:
    if clean is None:
        return None
    row = clean[(clean["model_id"] == model_id) & (clean["setting"] == setting)]
    if not len(row):
        return None
    r = row.iloc[0]
    return CleanQuality(float(r["accuracy"]), float(r["min_class_recall"]), float(r["max_pred_share"]), True)


def _qualities(run: Run, setting: str, base: Run, clean: pd.DataFrame | None) -> tuple[CleanQuality, CleanQuality]:
    """Clean quality of the setting and of the baseline: both off the attack sample when ``clean`` has both,
    else both on the attacked sample (never one of each)."""
    q, base_q = _off_sample(run.spec["model_id"], setting, clean), _off_sample(base.spec["model_id"], "full", clean)
    if q is None or base_q is None:
        return _sample_quality(run), _sample_quality(base)
    return q, base_q


def _degenerate(q: CleanQuality) -> str:
    if not q.min_class_recall >= MIN_RECALL:
        return f"degenerate (a class has recall {100 * q.min_class_recall:.0f}% < {100 * MIN_RECALL:.0f}%)"
    if q.max_pred_share >= MAX_SHARE:
        return f"degenerate (one class takes {100 * q.max_pred_share:.0f}% of the clean predictions)"
    return ""


def _below_margin(accuracy: float, baseline: float, margin: float) -> str:
    """Why a setting fails :func:`~robustness.schema.selection.within_margin` (NaN: unknown)."""
    if accuracy != accuracy or baseline != baseline:
        return f"{'' if accuracy != accuracy else 'baseline '}clean accuracy unknown"
    return f"clean accuracy {100 * (baseline - accuracy):.1f} points below the baseline (margin {100 * margin:g})"


def _candidate(run: Run, setting: str, base: Run, options: VerdictOptions, clean: pd.DataFrame | None) -> dict:
    """One setting against one baseline: eligibility and, when eligible, the paired test."""
    q, base_q = _qualities(run, setting, base, clean)
    both = paired_records(base, run)
    kept_base = m.still_correct(list(both["orig_pred_a"]), list(both["adv_pred_a"]), list(both["label_a"]))
    kept = m.still_correct(list(both["orig_pred_b"]), list(both["adv_pred_b"]), list(both["label_b"]))
    reasons = [_degenerate(base_q) and f"baseline {_degenerate(base_q)}", _degenerate(q)]
    if not within_margin(q.accuracy, base_q.accuracy, options.margin):
        reasons.append(_below_margin(q.accuracy, base_q.accuracy, options.margin))
    reasons = [r for r in reasons if r]
    row = {"setting": setting, "eligible": not reasons, "reason_ineligible": "; ".join(reasons),
           "clean_accuracy": q.accuracy, "baseline_clean_accuracy": base_q.accuracy, "n": len(both),
           "accuracy_under_attack": m.proportion(kept), "baseline_accuracy_under_attack": m.proportion(kept_base),
           **dict.fromkeys(TESTS, np.nan), "clean_off_sample": q.off_sample and base_q.off_sample}
    if len(both) < options.min_n:
        if not reasons:
            row.update(eligible=False, reason_ineligible=f"n = {len(both)} < minimum {options.min_n}")
    else:  # the ineligible and the not pre-registered are tested too, as exploratory comparisons
        row.update(_tests(kept, kept_base, options))
    row.update(_strict(run, base, both))
    return row


def _tests(kept: np.ndarray, kept_base: np.ndarray, options: VerdictOptions) -> dict[str, float]:
    """The paired tests of one comparison (:data:`TESTS`): exact McNemar, TOST within ±δ, MDD at 80% power."""
    mcnemar = m.mcnemar_exact(kept, kept_base)
    n, b, c = mcnemar.n, mcnemar.only_a, mcnemar.only_b
    tost = paired_tost(b, c, n, options.equivalence_margin, options.alpha)
    return {"p_value": mcnemar.p_value, "ci_low": tost.ci_low, "ci_high": tost.ci_high,
            "tost_p_value": tost.p_value, "mdd": mcnemar_mdd(n, (b + c) / n, options.alpha)}


def _strict(run: Run, base: Run, both: pd.DataFrame) -> dict[str, float]:
    """The secondary endpoint on the paired examples (NaN unless both runs are re-validated)."""
    out = dict.fromkeys(SECONDARY, np.nan)
    kept = {}
    for side, r in (("a", base), ("b", run)):
        valid = valid_column(r)
        if valid is None:
            return out
        by_id = dict(zip(r.records["example_id"], valid, strict=True))
        kept[side] = m.strict_still_correct(list(both[f"orig_pred_{side}"]), list(both[f"adv_pred_{side}"]),
                                            list(both[f"label_{side}"]), list(both[f"result_{side}"]),
                                            [by_id[k] for k in both["example_id"]])
    out.update(strict_accuracy_under_attack=m.proportion(kept["b"]),
               baseline_strict_accuracy_under_attack=m.proportion(kept["a"]))
    if len(both):
        out["strict_p_value"] = m.mcnemar_exact(kept["b"], kept["a"]).p_value
    return out


def _role(candidate: dict, options: VerdictOptions) -> str:
    """``confirmatory`` (a test behind the verdict), ``exploratory`` (tested, never the verdict) or empty."""
    if candidate["eligible"] and options.select is None and options.setting in (None, candidate["setting"]):
        return "confirmatory"
    return "exploratory" if candidate["p_value"] == candidate["p_value"] else ""


def _pick(candidates: list[dict], options: VerdictOptions) -> dict:
    """The row reported for one (dataset, recipe, model, baseline)."""
    if options.setting is not None:
        chosen = [c for c in candidates if c["setting"] == options.setting]
        if not chosen:
            return {"setting": options.setting, "eligible": False, "verdict": "no_eligible_setting",
                    "reason_ineligible": f"pre-registered setting {options.setting} was not run"}
        candidates = chosen
    tested = [c for c in candidates if c["eligible"]]
    if tested:
        return max(tested, key=lambda c: (c["accuracy_under_attack"], -c["p_value"]))
    small = [c for c in candidates if c["reason_ineligible"].startswith("n = ")]
    if small:
        return {**max(small, key=lambda c: c["accuracy_under_attack"]), "verdict": "insufficient_n"}
    reason = "; ".join(f"{c['setting']}: {c['reason_ineligible']}" for c in candidates)
    return {"setting": options.setting or "", "eligible": False, "reason_ineligible": reason,
            "verdict": "no_eligible_setting"}


def _facets(summary: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    keys = ["dataset", "recipe"] + (["stock"] if "stock" in summary else [])
    return list(summary.groupby(keys, sort=True, dropna=False))


def verdict_tables(summary: pd.DataFrame, runs: Sequence[Run], options: VerdictOptions | None = None,
                   clean: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(verdict, candidates)``: the verdict table (:data:`COLUMNS`, one row per dataset, recipe, model and
    baseline) and every setting's eligibility and test (one row per setting and baseline) behind it."""
    options = options or VerdictOptions()
    by_id = {run.run_id: run for run in runs}
    picked, every = [], []
    for key, facet in _facets(summary):
        dataset, recipe = key[0], key[1] + (" (stock)" if len(key) > 2 and key[2] is True else "")
        bases, models = facet[facet["head"] == "full"], facet[facet["head"] != "full"]
        for model_id, group in models.groupby("model_id", sort=True):
            same_depth = bases[bases["num_layers"] == group["num_layers"].iloc[0]]
            for _, base in (same_depth if len(same_depth) else bases).iterrows():
                base_run = by_id[base["run_id"]]
                where = {"dataset": dataset, "recipe": recipe, "model": model_id, "baseline": base["model_id"]}
                # a select rule's setting, chosen on the same clean table (selection set) as eligibility
                local, unchosen = registered_options(options, clean, model_id, base["model_id"])
                candidates = [_candidate(by_id[row["run_id"]], row["setting"], base_run, local, clean)
                              for _, row in group.iterrows()]
                every += [{**where, **c, "role": _role(c, local)} for c in candidates]
                picked.append({**where, **(unchosen or _pick(candidates, local))})
    every_df = pd.DataFrame(every)
    if every_df.empty:
        return pd.DataFrame(columns=COLUMNS), every_df
    every_df["p_adjusted"] = every_df["tost_p_adjusted"] = np.nan
    for role in ("confirmatory", "exploratory"):  # two families; in each, McNemar and TOST each Holm-adjusted
        family = every_df["role"] == role
        for raw, adjusted in (("p_value", "p_adjusted"), ("tost_p_value", "tost_p_adjusted")):
            if family.any():
                every_df.loc[family, adjusted] = multipletests(every_df.loc[family, raw], method="holm")[1]
    keys = ["dataset", "recipe", "model", "baseline", "setting"]
    confirmatory = every_df[every_df["role"] == "confirmatory"]
    adjusted = ["p_adjusted", "tost_p_adjusted"]
    verdict = pd.DataFrame(picked).drop(columns=adjusted, errors="ignore").merge(
        confirmatory[[*keys, *adjusted]], on=keys, how="left").reindex(
        columns=[*COLUMNS, *SECONDARY, "clean_off_sample"])
    verdict["verdict"] = [_outcome(r, options) for _, r in verdict.iterrows()]
    return verdict, every_df


def _outcome(row: pd.Series, options: VerdictOptions) -> str:
    if isinstance(row["verdict"], str):
        return row["verdict"]
    if row["p_adjusted"] < options.alpha:
        better = row["accuracy_under_attack"] > row["baseline_accuracy_under_attack"]
        return "more_robust" if better else "less_robust"
    return "equivalent" if row["tost_p_adjusted"] < options.alpha else "inconclusive"
