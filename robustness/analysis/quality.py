"""Quality of the adversarial texts per setting, read from each run's ``quality.jsonl`` (written by the quality
stage, :mod:`robustness.quality`; nothing here runs a model).

* ``ppl_ratio_mean``: mean over the scored (succeeded) examples of adversarial / original perplexity
  (> 1: the attack made the text less natural to the LM);
* ``similarity_mean``: mean sentence-encoder cosine similarity of original and adversarial text.

Findings compare every early-exit setting with the full-depth baseline of the same recipe and dataset: the
success rates side by side, and whether the adversarial texts differ in quality (two-sided Mann-Whitney U
tests on the per-example perplexity ratios and similarities, scipy; unadjusted, at 0.05).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy.stats import mannwhitneyu

from robustness.analysis.aggregate import KEY, Run
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
        row.update(setting=run.setting, stock=bool(run.spec.get("stock", False)), run_id=run.run_id,
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
    """Per early-exit setting with quality records, against the baseline of its recipe and dataset: success
    rates, mean perplexity ratio and similarity, and whether the texts' quality differs significantly."""
    by_id = {run.run_id: run for run in runs}
    success = dict(zip(summary["run_id"], summary["attack_success_rate"], strict=True))
    table = quality_table(runs)
    out: list[str] = []
    for (dataset, recipe), rows in table.groupby(["dataset", "recipe"], sort=True):
        bases = rows[rows["head"] == "full"]
        for _, base in bases.iterrows():
            b = run_quality(by_id[base["run_id"]])
            for _, row in rows[rows["head"] != "full"].iterrows():
                a = run_quality(by_id[row["run_id"]])
                where = f"{recipe} on {dataset}, {row['model_id']} {row['setting']} vs {base['model_id']}"
                if len(a) < 2 or len(b) < 2:
                    out.append(f"{where}: too few scored adversarial texts ({len(a)} and {len(b)}) to compare "
                               "their quality.")
                    continue
                p_ratio, p_sim = _p_value(a["ppl_ratio"], b["ppl_ratio"]), _p_value(a["similarity"], b["similarity"])
                differs = min(p_ratio, p_sim) < ALPHA
                out.append(
                    f"{where}: success rate {success[row['run_id']]:.1%} vs {success[base['run_id']]:.1%}; their "
                    f"adversarial texts have mean perplexity ratio {row['ppl_ratio_mean']:.2f} vs "
                    f"{base['ppl_ratio_mean']:.2f} (Mann-Whitney p = {p_ratio:.2g}) and similarity "
                    f"{row['similarity_mean']:.3f} vs {base['similarity_mean']:.3f} (p = {p_sim:.2g}): the "
                    f"robustness difference comes with {'a significant' if differs else 'no significant'} "
                    f"difference in text quality (unadjusted, at {ALPHA})."
                )
    return out
