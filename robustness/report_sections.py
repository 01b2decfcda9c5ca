"""The report's sections that appear only when the runs call for them: "Slowdown" (slowdown attacks beside the
accuracy attacks of the same settings), "Transfer" (replayed adversarial texts) and "Quality of adversarial
text" (``robustness quality``'s perplexity and similarity). Each returns blocks for
:mod:`robustness.rendering`; :func:`robustness.report.write_report` places them after the main sections.
"""

from __future__ import annotations

import pandas as pd

from robustness.analysis import plots
from robustness.analysis.compare import slowdown_findings
from robustness.analysis.equivalence import folded
from robustness.analysis.quality import quality_findings
from robustness.analysis.runs import Run
from robustness.analysis.tables import format_value, view
from robustness.rendering import Block, figure_block

__all__ = ["quality_blocks", "slowdown_section", "transfer_section"]


def slowdown_section(summary: pd.DataFrame, exits: pd.DataFrame) -> list[tuple[str, list[Block]]]:
    """The "Slowdown" section when the runs include slowdown attacks: findings, the efficiency table (slowdown
    runs beside the accuracy runs of the same settings), exit distributions and efficiency left per setting."""
    slow = summary[summary["goal"] == "slowdown"]
    if slow.empty:
        return []
    shown = folded(summary) if "same_as" in summary else summary  # settings of identical runs once
    exits = exits[exits["run_id"].isin(shown["run_id"])]
    same = summary.set_index(["dataset", "recipe", "model_id", "setting"]).index.isin(
        list(slow.set_index(["dataset", "recipe", "model_id", "setting"]).index))
    blocks: list[Block] = [
        ("p", "Slowdown attacks (goal: push the exit to the target layer, default L; score in "
              "robustness/attack/goals.py) against the accuracy attacks of the same settings. Over all n examples "
              "an example's exit under attack is its adversarial text's where it was attacked, else its clean one. "
              "Slowdown success = share of attacked examples whose exit reaches the target (WAFFLE); efficiency "
              "gain left = (L / mean exit under attack − 1) / (L / mean clean exit − 1) (SAME reports 1 − this)."),
        ("list", slowdown_findings(shown)), ("table", view(summary[same], "slowdown")),
        figure_block("slowdown_exits", "Exit-layer distributions of the slowdown runs, clean vs slowdown-attacked "
                     "texts (attacked examples).", plots.plot_exit_histograms(exits[exits["goal"] == "slowdown"]))]
    if summary.loc[summary["head"] != "full", "efficiency_gain_left"].notna().any():
        blocks.append(figure_block("efficiency_left", "Efficiency gain left after the attack against the exit setting, "
                                   "per goal (1: none lost, 0: every example runs all L layers).",
                                   plots.plot_efficiency_left(summary)))
    return [("Slowdown", blocks)]


def transfer_section(transfers: pd.DataFrame) -> list[tuple[str, list[Block]]]:
    """The "Transfer" section when there are complete transfer runs: the success matrix as a table and heatmap."""
    if transfers.empty:
        return []
    shown = transfers.drop(columns=["run_id", "complete", "source_run_id"]).copy()
    shown["success_rate"] = [f"{format_value(v)} [{format_value(lo)}, {format_value(hi)}]" for v, lo, hi in zip(
        transfers["success_rate"], transfers["success_rate_ci_low"], transfers["success_rate_ci_high"], strict=True)]
    shown = shown.drop(columns=["success_rate_ci_low", "success_rate_ci_high"])
    return [("Transfer", [
        ("p", "Final texts of finished attack runs replayed, without search, against another model or setting. "
              "Accuracy goal: success = the target classifies the original right and the adversarial text wrong, "
              "over the source's successful attacks that the target classifies right (replayed); slowdown goal: "
              "success = the final text exits at the target's last layer. Exact 95% intervals."),
        ("table", shown),
        figure_block("transfer_matrix", "Transfer success rate, source setting × target setting.",
                     plots.plot_transfer_matrix(transfers))])]


def quality_blocks(runs: list[Run], summary: pd.DataFrame, quality: pd.DataFrame) -> list[Block]:
    """The blocks of the "Quality of adversarial text" section: what the columns mean, findings, the table."""
    intro = ("How natural the successful adversarial texts are (`robustness quality`): perplexity ratio = "
             "adversarial / original perplexity under a local causal LM, averaged over examples (> 1: less "
             "natural); similarity = sentence-encoder cosine of original and adversarial text. Offline recipes "
             "drop their language-model constraints: read success rates next to these numbers.")
    shown = quality[["model_id", "setting", "recipe", "dataset", "quality_n", "ppl_ratio_mean", "similarity_mean",
                     "orig_perplexity_mean", "adv_perplexity_mean"]]
    return [("p", intro), ("list", quality_findings(runs, summary)), ("table", shown.map(format_value))]
