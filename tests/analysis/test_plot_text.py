"""No two texts of a figure overlap (tick labels, annotations, titles, axis labels, legend entries), checked with
matplotlib's own text extents after drawing, on realistic tables: a study's many settings with long calibrated
thresholds, five recipes, slowdown rows, settings folded and not folded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustness.analysis import plots
from robustness.analysis.plot_labels import overlapping_texts, short_label, short_labels, texts_outside
from robustness.analysis.plot_layout import new_figure

SETTINGS = ["patience:1", "patience:2", "patience:3", "patience:4", "patience:5", "entropy:0.064254",
            "entropy:0.01865", "maxprob:0.9881693", "maxprob:0.997302", "full"]
RECIPES = ["a2t", "deepwordbug", "pwws", "textbugger", "textfooler"]
SPEEDUP = {"patience:1": 2.88, "patience:2": 1.88, "patience:3": 1.42, "patience:4": 1.17, "patience:5": 1.0,
           "entropy:0.064254": 2.01, "entropy:0.01865": 1.49, "maxprob:0.9881693": 2.01, "maxprob:0.997302": 1.49,
           "full": 1.0}


def _row(rng, model: str, head: str, setting: str, recipe: str, goal: str = "accuracy") -> dict:
    acc, success = rng.uniform(0.02, 0.5), rng.uniform(0.4, 0.99)
    speed = SPEEDUP[setting] if head == "pabee" else 1.0
    row = {"dataset": "glue/sst2", "recipe": recipe, "goal": goal, "model_id": model, "head": head,
           "setting": setting, "num_layers": 6, "num_classes": 2, "n": 500, "run_id": f"{model}-{setting}-{recipe}",
           "accuracy_under_attack": acc, "accuracy_under_attack_ci_low": acc - 0.04,
           "accuracy_under_attack_ci_high": acc + 0.04, "attack_success_rate": success,
           "attack_success_rate_ci_low": success - 0.05, "attack_success_rate_ci_high": success + 0.03,
           "mean_queries": rng.uniform(18, 150), "mean_layers_computed": rng.uniform(50, 600),
           "orig_speedup": speed, "adv_speedup": max(1.0, speed - rng.uniform(0, 0.8)),
           "efficiency_gain_left": rng.uniform(0, 1) if speed > 1 else np.nan}
    for prefix in ("clean", "adv"):
        row.update({f"{prefix}_destructive": rng.uniform(0, 0.1) if head == "pabee" else np.nan,
                    f"{prefix}_wasteful": rng.uniform(0.3, 0.9) if head == "pabee" else np.nan})
    return row


@pytest.fixture
def study() -> pd.DataFrame:
    """Two models, ten PABEE settings, five recipes and a slowdown recipe; patience 5 and full agree in every
    metric (folded), the thresholds differ (not folded: every point of each family is drawn)."""
    rng = np.random.default_rng(0)
    rows = []
    for recipe in RECIPES:
        rows.append(_row(rng, "full-minilm-sst2", "full", "full", recipe))
        for setting in SETTINGS:
            rows.append(_row(rng, "pabee-minilm-sst2", "pabee", setting, recipe))
        rows[-1] = {**rows[-6], "setting": "full", "run_id": "full-twin"}  # full == patience:5
    for setting in SETTINGS[:-1]:
        rows.append(_row(rng, "pabee-minilm-sst2", "pabee", setting, "deepwordbug", goal="slowdown"))
    return pd.DataFrame(rows)


def _exits(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": r.run_id, "run": f"{r.model_id} {r.setting} {r.recipe}", "setting": r.setting,
                          "goal": r.goal, "layer": layer, "clean_frac": 1 / 6, "adv_frac": 1 / 6}
                         for r in summary.itertuples() for layer in range(1, 7)])


def _flips(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": r.run_id, "run": f"{r.model_id} {r.setting} {r.recipe}", "setting": r.setting,
                          "layer": layer, "flip_rate": 0.5} for r in summary.itertuples()
                         for layer in (range(1, 7) if r.head == "pabee" else [6])])


def _transfers(summary: pd.DataFrame) -> pd.DataFrame:
    pabee = summary[(summary["head"] == "pabee") & (summary["goal"] == "accuracy")]
    return pd.DataFrame([{"dataset": r.dataset, "recipe": r.recipe, "goal": "accuracy",
                          "source_model": "full-minilm-sst2", "source_setting": "full", "target_model": r.model_id,
                          "target_setting": r.setting, "success_rate": 0.66} for r in pabee.itertuples()])


def test_short_labels_keep_thresholds_apart():
    assert short_label("entropy:0.064254") == "entropy 0.0643"
    assert short_label("maxprob:0.9881693") == "max-prob 0.988"
    assert short_label("full = patience:5") == "full = patience 5"
    labels = short_labels(["maxprob:0.9971", "maxprob:0.9974", "patience:2"])
    assert labels == {"maxprob:0.9971": "max-prob 0.9971", "maxprob:0.9974": "max-prob 0.9974",
                      "patience:2": "patience 2"}


def test_overlap_check_sees_overlap():
    fig = new_figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "entropy:0.064254")
    ax.text(0.5, 0.5, "maxprob:0.9881693")
    assert overlapping_texts(fig) == [("entropy:0.064254", "maxprob:0.9881693")] or overlapping_texts(fig) == [
        ("maxprob:0.9881693", "entropy:0.064254")]


@pytest.mark.parametrize("name", ["success_vs_setting", "cost_vs_setting", "tradeoff", "efficiency_left",
                                  "overthinking", "exit_histograms", "slowdown_exits", "flip_heatmap",
                                  "transfer_matrix"])
def test_no_text_overlaps(study, name):
    accuracy = study[study["goal"] == "accuracy"]
    figure = {
        "success_vs_setting": lambda: plots.plot_success_vs_setting(accuracy),
        "cost_vs_setting": lambda: plots.plot_cost_vs_setting(accuracy),
        "tradeoff": lambda: plots.plot_tradeoff(accuracy),
        "efficiency_left": lambda: plots.plot_efficiency_left(study),
        "overthinking": lambda: plots.plot_overthinking(accuracy),
        "exit_histograms": lambda: plots.plot_exit_histograms(_exits(accuracy)),
        "slowdown_exits": lambda: plots.plot_exit_histograms(_exits(study[study["goal"] == "slowdown"])),
        "flip_heatmap": lambda: plots.plot_flip_heatmap(_flips(accuracy)),
        "transfer_matrix": lambda: plots.plot_transfer_matrix(_transfers(study)),
    }[name]()
    assert overlapping_texts(figure) == []
    assert texts_outside(figure) == []  # nothing clipped at the figure's edge (e.g. a legend wider than it)


def test_study_folds_patience_5_into_full(study):
    fig = plots.plot_success_vs_setting(study[study["goal"] == "accuracy"])
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["patience 1", "patience 2", "patience 3", "patience 4", "entropy 0.0643", "entropy 0.0186",
                     "max-prob 0.988", "max-prob 0.997", "full\n= patience 5"]
    tradeoff = plots.plot_tradeoff(study[study["goal"] == "accuracy"])
    labels = {c.get_label() for c in tradeoff.axes[0].containers}
    assert labels == {"pabee-minilm-sst2 · patience", "pabee-minilm-sst2 · entropy", "pabee-minilm-sst2 · max-prob",
                      "pabee-minilm-sst2 · full depth", "full-minilm-sst2 (baseline)"}


def test_a_setting_folded_in_one_panel_only_says_so_there(study):
    accuracy = study[study["goal"] == "accuracy"].copy()
    pwws = accuracy["recipe"] == "pwws"
    source = accuracy[pwws & (accuracy["setting"] == "entropy:0.064254")].iloc[0]
    target = accuracy.index[pwws & (accuracy["setting"] == "maxprob:0.9881693")][0]
    for column in accuracy.columns.difference(["setting", "run_id"]):
        accuracy.at[target, column] = source[column]  # H(0.9881693) = 0.064254 and every metric equal
    fig = plots.plot_success_vs_setting(accuracy)
    panels = {ax.get_title(): [t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes}
    assert panels["pwws on glue/sst2"][4:8] == ["entropy 0.0643\n= max-prob 0.988", "entropy 0.0186",
                                                "max-prob 0.988 (folded)", "max-prob 0.997"]
    assert panels["a2t on glue/sst2"][4:8] == ["entropy 0.0643", "entropy 0.0186", "max-prob 0.988", "max-prob 0.997"]
    assert overlapping_texts(fig) == [] and texts_outside(fig) == []
