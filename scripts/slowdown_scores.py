"""Measurement (not a test): slowdown runs that differ only in their search score (exit, waffle, oavg), side by side.

Reads finished runs (a suite output such as ``attacks/slowdown-scores.toml``'s, run dirs or ``runs/`` folders),
keeps the slowdown runs, and prints one Markdown table row per (model, setting, recipe, score): examples,
attacked, slowdown success (share of attacked examples whose exit reaches the target; exact 95% interval), mean
exit under attack, efficiency gain left, efficacy clean vs under attack (all n), mean TextAttack queries per
attacked example and deployed layers per attacked example. Per (model, setting, recipe) with an ``exit`` run, each
other score gets a paired exact McNemar test on "the final exit reaches the target" over the same n examples.

    python scripts/slowdown_scores.py out/slowdown-scores
"""

from __future__ import annotations

import argparse

import pandas as pd

from robustness.analysis import metrics as m
from robustness.analysis.aggregate import load_runs, markdown_table, summarize

_GROUP = ["model_id", "setting", "recipe", "dataset"]


def _reached(run) -> pd.Series:
    """Per example id: the final exit (adversarial where attacked) reaches the run's target."""
    records = run.records.sort_values("example_id")
    finals = m.final_exits(list(records["orig_exit_layer"]), list(records["adv_exit_layer"]))
    return pd.Series(finals >= run.goal_target, index=records["example_id"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="suite outputs, runs/ folders or run directories")
    args = parser.parse_args()
    runs = [r for r in load_runs(args.runs) if r.goal == "slowdown"]
    if not runs:
        raise SystemExit("no complete slowdown runs found")
    summary = summarize(runs)
    by_id = {r.run_id: r for r in runs}
    rows = []
    for _, row in summary.iterrows():
        attacked = int(row["succeeded"] + row["failed"])
        reached = round(row["slowdown_success_rate"] * attacked) if attacked else 0
        low, high = m.proportion_ci(reached, attacked)
        rows.append({**{k: row[k] for k in _GROUP}, "score": row["slowdown_score"], "n": int(row["n"]),
                     "attacked": attacked, "slowdown success": f"{row['slowdown_success_rate']:.3f} "
                                                              f"[{low:.3f}, {high:.3f}]",
                     "exit under attack": row["final_mean_exit_all"],
                     "efficiency gain left": row["efficiency_gain_left"],
                     "efficacy clean": row["clean_efficacy_all"], "efficacy under attack": row["final_efficacy_all"],
                     "mean queries": row["mean_queries"], "deployed layers": row["mean_layers_computed"]})
    print(markdown_table(pd.DataFrame(rows)))
    for key, group in summary.groupby(_GROUP, sort=True):
        exit_rows = group[group["slowdown_score"] == "exit"]
        if exit_rows.empty:
            continue
        base = _reached(by_id[exit_rows.iloc[0]["run_id"]])
        for _, other in group[group["slowdown_score"] != "exit"].iterrows():
            mine = _reached(by_id[other["run_id"]]).reindex(base.index)
            test = m.mcnemar_exact(list(mine.fillna(False).astype(bool)), list(base))
            print(f"{' '.join(map(str, key))}: {other['slowdown_score']} vs exit, final exit at the target over "
                  f"{test.n} examples: {int(mine.sum())} vs {int(base.sum())}; only {other['slowdown_score']} "
                  f"{test.only_a}, only exit {test.only_b}, exact McNemar p = {test.p_value:.3g}")


if __name__ == "__main__":
    main()
