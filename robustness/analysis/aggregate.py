"""Runs → per-setting metrics (DataFrames): :func:`summarize` (one row per setting, every metric with its
intervals), :func:`exit_table` and :func:`flip_table` (long tables).

Runs are loaded by :mod:`robustness.analysis.runs` and written as tables by :mod:`robustness.analysis.tables`;
their names are importable from here too. Numbers stay unrounded in DataFrames and CSV; only the Markdown tables
are rounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from robustness.analysis import metrics as m
from robustness.analysis.equivalence import fold_equivalent
from robustness.analysis.revalidation import strict_metrics
from robustness.analysis.runs import KEY, Run, find_runs, load_run, load_runs, spec_setting, validate_runs
from robustness.analysis.tables import VIEWS, format_value, markdown_table, table_files, view, write_tables
from robustness.schema.specs import setting_order

__all__ = [
    "KEY", "VIEWS", "Run", "efficacy_columns", "exit_table", "find_runs", "flip_table", "format_value", "load_run",
    "load_runs", "markdown_table", "run_metrics", "slowdown_metrics", "spec_setting", "summarize", "table_files",
    "validate_runs", "view", "write_tables",
]

def run_metrics(records: pd.DataFrame, num_layers: int, seed: int = 0, target: int | None = None
                ) -> dict[str, float]:
    """Every metric of :mod:`robustness.analysis.metrics` for one run's records (unrounded).

    Proportions carry exact (Clopper-Pearson) 95% intervals, mean queries a BCa bootstrap interval. The exit
    columns are paired: ``orig_*`` and ``adv_*`` cover the same attacked examples, so ``exit_shift`` =
    ``adv_mean_exit_layer`` − ``orig_mean_exit_layer``."""
    results = list(records["result"])
    attacked = records[records["result"] != "skipped"]
    won = records[records["result"] == "succeeded"]
    labels = list(records["label"])
    clean = m.clean_correct(list(records["orig_pred"]), labels)
    kept = m.still_correct(list(records["orig_pred"]), list(records["adv_pred"]), labels)
    row: dict[str, float] = {
        "n": len(records), "succeeded": len(won), "failed": len(attacked) - len(won),
        "skipped": m.skipped_count(results),
        "original_accuracy": m.proportion(clean), "accuracy_under_attack": m.proportion(kept),
        "attack_success_rate": m.attack_success_rate(results),
    }
    for name, hits, total in (("original_accuracy", clean.sum(), len(clean)),
                              ("accuracy_under_attack", kept.sum(), len(kept)),
                              ("attack_success_rate", len(won), len(attacked))):
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = m.proportion_ci(int(hits), int(total))
    row["mean_queries"] = m.mean_or_nan(list(attacked["num_queries"]))
    row["mean_queries_ci_low"], row["mean_queries_ci_high"] = m.bootstrap_mean_ci(list(attacked["num_queries"]),
                                                                                  seed=seed)
    row["mean_forward_passes"] = m.mean_or_nan(list(attacked["num_forward_passes"]))
    # deployed cost (NaN for v1 records, which did not record it) and what this process encoded
    row["mean_layers_computed"] = m.mean_or_nan(list(attacked["layers_computed"]))
    row["mean_layers_encoded"] = m.mean_or_nan(list(attacked["layers_encoded"]))
    row["mean_query_exit_layer"] = m.mean_or_nan(list(attacked["query_mean_exit_layer"]))
    row["words_perturbed"] = m.words_perturbed(list(won["words_changed"]), list(won["words_total"]))
    orig_exits, adv_exits = list(attacked["orig_exit_layer"]), list(attacked["adv_exit_layer"])
    row["orig_mean_exit_layer"] = m.mean_exit_layer(orig_exits)
    row["adv_mean_exit_layer"] = m.mean_exit_layer(adv_exits)
    row["exit_shift"] = row["adv_mean_exit_layer"] - row["orig_mean_exit_layer"]
    row["orig_speedup"] = m.layer_speedup(num_layers, row["orig_mean_exit_layer"])
    row["adv_speedup"] = m.layer_speedup(num_layers, row["adv_mean_exit_layer"])
    row["orig_efficacy"] = m.efficacy(orig_exits, num_layers)
    row["adv_efficacy"] = m.efficacy(adv_exits, num_layers)
    attacked_labels = list(attacked["label"])
    for prefix, preds, gold in (("clean", list(records["orig_layer_preds"]), labels),
                                ("adv", list(attacked["adv_layer_preds"]), attacked_labels)):
        rates = m.overthinking(preds, gold)._asdict()
        row.update({f"{prefix}_{name}": value for name, value in rates.items()})
    row["rescued_rate"], row["hurt_rate"] = m.exit_vs_last_layer(
        list(attacked["adv_layer_preds"]), list(attacked["adv_pred"]), attacked_labels)
    row.update(slowdown_metrics(records, num_layers, target or num_layers))
    return row


def slowdown_metrics(records: pd.DataFrame, num_layers: int, target: int) -> dict[str, float]:
    """Efficiency under attack over all n examples (any goal, so accuracy and slowdown attacks compare):
    clean and final mean exit, mean exit increase, slowdown success rate (exit ≥ ``target``), efficiency
    gain left and accuracy at the actual exit (:mod:`robustness.analysis.metrics`)."""
    orig, adv = list(records["orig_exit_layer"]), list(records["adv_exit_layer"])
    clean_mean, final_mean = m.mean_exit_layer(orig), m.mean_exit_layer(list(m.final_exits(orig, adv)))
    return {
        "goal_target": target, "clean_mean_exit_all": clean_mean, "final_mean_exit_all": final_mean,
        "mean_exit_increase": m.mean_exit_increase(orig, adv),
        "slowdown_success_rate": m.slowdown_success_rate(adv, target),
        "efficiency_gain_left": m.efficiency_gain_left(num_layers, clean_mean, final_mean),
        "accuracy_at_exit": m.accuracy_at_exit(list(records["orig_pred"]), list(records["adv_pred"]),
                                               list(records["label"])),
        **efficacy_columns(records, num_layers),
    }


def efficacy_columns(records: pd.DataFrame, num_layers: int) -> dict[str, float]:
    """``clean_efficacy_<outcome>`` and ``final_efficacy_<outcome>`` for outcome all, succeeded, failed and
    skipped (:func:`robustness.analysis.metrics.efficacy_by_outcome`)."""
    table = m.efficacy_by_outcome(list(records["result"]), list(records["orig_exit_layer"]),
                                  list(records["adv_exit_layer"]), num_layers)
    return {f"{side}_efficacy_{outcome}": pair[i] for outcome, pair in table.items()
            for i, side in enumerate(("clean", "final"))}


def summarize(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per setting (model_id, head, setting, recipe, dataset, stock) with every metric, CI bounds, n
    and L (``num_classes``: the model's classes, None if unrecorded); the run set is checked by
    :func:`validate_runs` first.

    ``setting`` is the canonical label (``patience:2``, ``entropy:0.35``, ``full``). Rows are sorted by
    dataset, recipe, head (baselines first), model and setting (:func:`~robustness.schema.specs.setting_order`).
    ``same_as`` marks a run whose setting's exits are identical to another's by construction and whose records
    agree (:func:`~robustness.analysis.equivalence.fold_equivalent`): the rounded views show such pairs once."""
    if not runs:
        raise ValueError("no runs to summarize")
    validate_runs(runs)
    rows = []
    for run in runs:
        spec = run.spec
        row: dict[str, Any] = {k: spec.get(k) for k in KEY}
        row.update(setting=run.setting, goal=run.goal, slowdown_score=run.slowdown_score,
                   stock=bool(spec.get("stock", False)), num_layers=run.num_layers,
                   split=spec.get("split"), seed=spec.get("seed"), n_requested=spec.get("n"),
                   query_budget=spec.get("query_budget"), run_id=run.run_id, complete=run.complete,
                   num_classes=len(spec.get("label_names") or []) or None)
        row.update(run_metrics(run.records, run.num_layers, seed=int(spec.get("seed") or 0), target=run.goal_target))
        row.update(strict_metrics(run))  # NaN unless the run was re-validated (robustness revalidate)
        timings = run.info.get("timings") or {}
        row.update(wall_time_s=timings.get("wall_time_s"), attack_time_s=timings.get("attack_time_s"))
        rows.append(row)
    df = pd.DataFrame(rows)
    ranks = {label: i for i, label in enumerate(setting_order(df["setting"]))}
    order = df.assign(_base=df["head"] != "full", _p=df["setting"].map(ranks))
    order = order.sort_values(["dataset", "recipe", "_base", "model_id", "_p", "goal", "slowdown_score"])
    return fold_equivalent(df.loc[order.index].reset_index(drop=True), runs)


def exit_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Long table of exit-layer distributions: run_id, run (readable run name), setting (exit setting label),
    goal, layer, clean_frac and adv_frac, both over the attacked examples (paired: the original and the adversarial
    text of the same examples)."""
    rows = []
    for run in runs:
        attacked = run.records[run.records["result"] != "skipped"]
        clean = m.exit_distribution(list(attacked["orig_exit_layer"]), run.num_layers)
        adv = m.exit_distribution(list(attacked["adv_exit_layer"]), run.num_layers)
        for layer in range(run.num_layers):
            rows.append({"run_id": run.run_id, "run": run.label, "setting": run.setting, "goal": run.goal,
                         "layer": layer + 1, "clean_frac": clean[layer], "adv_frac": adv[layer]})
    return pd.DataFrame(rows, columns=["run_id", "run", "setting", "goal", "layer", "clean_frac", "adv_frac"])


def flip_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Long table: run_id, run, setting, layer, flip_rate over attacked examples (a single-head model's only
    prediction is placed at layer L)."""
    rows = []
    for run in runs:
        attacked = run.records[run.records["result"] != "skipped"]
        rates = m.flip_rates(list(attacked["orig_layer_preds"]), list(attacked["adv_layer_preds"]))
        first = run.num_layers - len(rates) + 1
        for offset, rate in enumerate(rates):
            rows.append({"run_id": run.run_id, "run": run.label, "setting": run.setting, "layer": first + offset,
                         "flip_rate": rate})
    return pd.DataFrame(rows, columns=["run_id", "run", "setting", "layer", "flip_rate"])
