"""The report's sections that appear only when the runs call for them: "Slowdown" (slowdown attacks beside the
accuracy attacks of the same settings), "Transfer" (replayed adversarial texts) and "Quality of adversarial
text" (``robustness quality``'s perplexity and similarity), "Strict re-validation" (``robustness
revalidate``). Each returns blocks for
:mod:`robustness.rendering`; :func:`robustness.report.write_report` places them after the main sections.
"""

from __future__ import annotations

import pandas as pd

from robustness.analysis import plots
from robustness.analysis.compare import slowdown_findings
from robustness.analysis.equivalence import folded
from robustness.analysis.quality import quality_findings
from robustness.analysis.revalidation import strict_findings
from robustness.analysis.runs import Run
from robustness.analysis.tables import format_value, view
from robustness.rendering import Block, figure_block

__all__ = ["quality_blocks", "revalidation_blocks", "slowdown_section", "transfer_section", "trigger_section"]


def slowdown_section(summary: pd.DataFrame, exits: pd.DataFrame) -> list[tuple[str, list[Block]]]:
    """The "Slowdown" section when the runs include slowdown attacks: findings, the efficiency left per setting
    (a figure, placed first so that a report's first screen shows it), the efficiency and efficacy tables
    (slowdown runs beside the accuracy runs of the same settings) and the exit distributions."""
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
        ("list", slowdown_findings(shown))]
    if summary.loc[summary["head"] != "full", "efficiency_gain_left"].notna().any():
        blocks.append(figure_block("efficiency_left", "Efficiency gain left after the attack against the exit setting, "
                                   "per goal (1: none lost, 0: every example runs all L layers).",
                                   plots.plot_efficiency_left(summary)))
    blocks += [
        ("table", view(summary[same], "slowdown")),
        ("p", "Efficacy (DeepSloth / WAFFLE) = normalised area under the cumulative distribution of exit layers: 1 "
              "when every example exits at layer 1, 0 when every example runs all L layers; a slowdown attack lowers "
              "it. Clean texts against the final texts (adversarial where attacked), over all examples and split by "
              "attack outcome as WAFFLE reports it; a skipped example keeps its clean exit. Score = what guided a "
              "slowdown run's search (exit, waffle or oavg; robustness/attack/goals.py)."),
        ("table", view(summary[same], "efficacy")),
        figure_block("slowdown_exits", "Exit-layer distributions of the slowdown runs, clean vs slowdown-attacked "
                     "texts (attacked examples).", plots.plot_exit_histograms(exits[exits["goal"] == "slowdown"]))]
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
              "success = the final text exits at the target's last layer. Exact 95% intervals. Accuracy under "
              "attack (accuracy goal): the share of all n examples the target still classifies right on the "
              "replayed texts, which the source fixes for every target: targets compared on identical texts."),
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


def revalidation_blocks(table: pd.DataFrame) -> list[Block]:
    """The blocks of the "Strict re-validation" section: what strict means, findings, raw vs strict per setting."""
    intro = ("Every successful adversarial text re-checked against fixed constraints (`robustness revalidate`; "
             "morris2020: Morris et al. 2020's counter-fitted word cosine >= 0.9 per swap, part of speech kept, "
             "sentence-encoder cosine >= 0.98; their LanguageTool grammar check cannot run offline and is replaced by "
             "an LM perplexity ratio <= 1.5, a stand-in). A text that fails counts as an attack failure: the original "
             "prediction stands. Strict numbers are a secondary endpoint; the verdict keeps the raw one. The fail "
             "columns are the shares of the re-checked texts failing each check.")
    shown = table[["model_id", "setting", "recipe", "dataset", "revalidation_preset", "revalidated",
                   "attack_success_rate", "strict_attack_success_rate", "accuracy_under_attack",
                   "strict_accuracy_under_attack", "fail_word_cosine", "fail_pos", "fail_similarity", "fail_ppl_ratio"]]
    return [("p", intro), ("list", strict_findings(table)), ("table", shown.map(format_value))]


def trigger_section(triggers: pd.DataFrame) -> list[tuple[str, list[Block]]]:
    """The "Universal triggers" section when there are finished trigger searches: one row per evaluated model
    and setting (the search's own first, then replays), beside the per-example slowdown attacks."""
    if triggers.empty:
        return []
    shown = triggers.drop(columns=["trigger_id"]).map(format_value)
    return [("Universal triggers", [
        ("p", "One K-word prefix put in front of every text (WAFFLE's universal slowdown attack), searched on "
              "training examples by a black-box coordinate search over candidate words (robustness/attack/"
              "trigger_search.py), evaluated on the attack sample with and without it: mean exit layer, its shift, "
              "accuracy at the exit and efficiency gain left = (L / mean exit with trigger − 1) / (L / mean clean "
              "exit − 1), as for the slowdown attacks (attack_gain_left: those runs of the same model and "
              "setting, per recipe). Replayed rows evaluate the same prefix at another setting or model."),
        ("table", shown)])]
