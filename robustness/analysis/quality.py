"""Quality of the adversarial texts per setting, read from each run's ``quality.jsonl`` (written by the quality
stage, :mod:`robustness.quality`; nothing here runs a model).

* ``ppl_ratio_mean``: mean over the scored (succeeded) examples of adversarial / original perplexity
  (> 1: the attack made the text less natural to the LM);
* ``similarity_mean``: mean sentence-encoder cosine similarity of original and adversarial text.

Findings compare every early-exit setting with the full-depth baseline of the same recipe and dataset: whether
the adversarial texts differ in quality (two-sided Mann-Whitney U tests on the per-example perplexity ratios and
similarities, scipy; unadjusted, at 0.05), with the success rates beside the settings that do.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy.stats import mannwhitneyu

from robustness.analysis.runs import KEY, Run
from robustness.quality import QUALITY_FILE, read_quality

QUALITY_COLUMNS = ["quality_n", "ppl_ratio_mean", "similarity_mean", "orig_perplexity_mean",
                   "adv_perplexity_mean", "lm"]
ALPHA = 0.05


def run_quality(run: Run) -> pd.DataFrame:
    """The run's scored examples that are succeeded in its records, with ``ppl_ratio`` = adv / orig perplexity;
    empty when the run has no ``quality.jsonl``."""
    rows = pd.DataFrame(read_quality(run.path / QUALITY_FILE))
    if rows.empty:
        return pd.DataFrame(columns=["example_id", "orig_perplexity", "adv_perplexity", "similarity", "lm",
                                     "ppl_ratio"])
    succeeded = set(run.records.loc[run.records["result"] == "succeeded", "example_id"])
    rows = rows[rows["example_id"].isin(succeeded)].copy()
    rows["ppl_ratio"] = rows["adv_perplexity"] / rows["orig_perplexity"]
    return rows


def quality_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run that has quality records: the key columns, ``run_id`` and :data:`QUALITY_COLUMNS`."""
    rows = []
    for run in runs:
        scored = run_quality(run)
        if scored.empty:
            continue
        row = {k: run.spec.get(k) for k in KEY}
        row.update(setting=run.setting, slowdown_score=run.slowdown_score, stock=bool(run.spec.get("stock", False)),
                   run_id=run.run_id,
                   quality_n=len(scored), ppl_ratio_mean=float(scored["ppl_ratio"].mean()),
                   similarity_mean=float(scored["similarity"].mean()),
                   orig_perplexity_mean=float(scored["orig_perplexity"].mean()),
                   adv_perplexity_mean=float(scored["adv_perplexity"].mean()),
                   lm=", ".join(sorted(set(scored["lm"]))))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*KEY, "run_id", *QUALITY_COLUMNS])


def _p_value(a: pd.Series, b: pd.Series) -> float:
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def quality_findings(runs: Sequence[Run], summary: pd.DataFrame) -> list[str]:
    """Per recipe, dataset and baseline: one line for each early-exit setting whose adversarial texts differ
    significantly in quality from the baseline's (success rates, mean perplexity ratio and similarity, p-values),
    one line naming the settings too few texts leave untested, and one line gathering the settings whose texts
    do not differ (with the range of their means), so that a long sweep stays readable."""
    by_id = {run.run_id: run for run in runs}
    success = dict(zip(summary["run_id"], summary["attack_success_rate"], strict=True))
    table = quality_table(runs)
    out: list[str] = []
    for (dataset, recipe), rows in table.groupby(["dataset", "recipe"], sort=True):
        bases = rows[rows["head"] == "full"]
        for _, base in bases.iterrows():
            b = run_quality(by_id[base["run_id"]])
            where = f"{recipe} on {dataset}, vs {base['model_id']}"
            same: list[pd.Series] = []
            for _, row in rows[rows["head"] != "full"].iterrows():
                a = run_quality(by_id[row["run_id"]])
                if len(a) < 2 or len(b) < 2:
                    out.append(f"{where}: {row['model_id']} {row['setting']} has too few scored adversarial texts "
                               f"({len(a)} and {len(b)}) to compare their quality.")
                    continue
                p_ratio, p_sim = _p_value(a["ppl_ratio"], b["ppl_ratio"]), _p_value(a["similarity"], b["similarity"])
                if min(p_ratio, p_sim) >= ALPHA:
                    same.append(row)
                    continue
                out.append(
                    f"{where}: {row['model_id']} {row['setting']}'s adversarial texts differ in quality (success rate "
                    f"{success[row['run_id']]:.1%} vs {success[base['run_id']]:.1%}; mean perplexity ratio "
                    f"{row['ppl_ratio_mean']:.2f} vs {base['ppl_ratio_mean']:.2f}, Mann-Whitney p = {p_ratio:.2g}; "
                    f"similarity {row['similarity_mean']:.3f} vs {base['similarity_mean']:.3f}, p = {p_sim:.2g}; "
                    f"unadjusted, at {ALPHA})."
                )
            if same:
                ratios = [float(r["ppl_ratio_mean"]) for r in same]
                sims = [float(r["similarity_mean"]) for r in same]
                names = ", ".join(f"{r['model_id']} {r['setting']}" for r in same)
                out.append(
                    f"{where}: no significant difference in text quality for {names} (mean perplexity ratio "
                    f"{_span(ratios, '.2f')} vs {base['ppl_ratio_mean']:.2f}, similarity {_span(sims, '.3f')} vs "
                    f"{base['similarity_mean']:.3f}; Mann-Whitney, unadjusted, at {ALPHA})."
                )
    return out


def _span(values: list[float], spec: str) -> str:
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}–{high}"
