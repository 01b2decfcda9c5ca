"""Plot functions return Figures with the expected panels, labels and data (no files written)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from robustness.analysis import plots
from robustness.analysis.aggregate import exit_table, flip_table, load_runs, summarize
from robustness.suite.specs import setting_order


@pytest.fixture
def runs(suite_out):
    return load_runs(suite_out)


@pytest.fixture
def summary(runs):
    return summarize(runs)


def test_setting_order():
    labels = ["full", "patience:10", "maxprob:0.9", "patience:2", "entropy:0.1", "entropy:0.35", "patience:2"]
    assert setting_order(labels) == ["patience:2", "patience:10", "entropy:0.35", "entropy:0.1", "maxprob:0.9", "full"]


def test_success_vs_setting(summary):
    fig = plots.plot_success_vs_setting(summary)
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # one panel per recipe
    ax = fig.axes[1]
    assert ax.get_title() == "textfooler on sst2" and ax.get_ylabel() == "attack success rate"
    # L = 3: patience 2 can only exit at layer 3, so it is folded into full (their runs agree)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["patience 1", "full\n= patience 2"]
    lines = {c.get_label(): c.lines[0] for c in ax.containers}  # one line per policy family
    assert list(lines) == ["pabee · patience", "pabee · full depth"]
    np.testing.assert_allclose(np.asarray(lines["pabee · patience"].get_ydata(), float), [1 / 3])
    np.testing.assert_allclose(np.asarray(lines["pabee · full depth"].get_ydata(), float), [2 / 3])
    baseline = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(baseline) == 1 and baseline[0].get_ydata()[0] == pytest.approx(2 / 3)
    assert ax.get_legend() is None  # one legend for the figure, outside the panels
    assert any("baseline" in t.get_text() for t in fig.legends[0].get_texts())


def test_ten_recipes_wrap_at_four_columns_and_legends_stay_off_the_data(summary):
    many = pd.concat([summary.assign(recipe=f"recipe{i:02d}") for i in range(10)], ignore_index=True)
    for fig in (plots.plot_success_vs_setting(many), plots.plot_cost_vs_setting(many),
                plots.plot_tradeoff(many)):
        columns = {ax.get_subplotspec().colspan.start for ax in fig.axes}
        assert len(columns) <= plots.MAX_COLUMNS
        assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
        fig.canvas.draw()
        legend_box = fig.legends[0].get_window_extent()
        assert not any(legend_box.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_cost_tradeoff_overthinking(summary):
    cost = plots.plot_cost_vs_setting(summary)
    assert len(cost.axes) == 4  # (queries, layers) x 2 recipes
    labels = ["TextAttack queries / example", "deployed layers / attacked example"]
    assert [ax.get_ylabel() for ax in cost.axes[:2]] == labels
    assert cost.axes[0].get_title() == "deepwordbug on sst2"
    trade = plots.plot_tradeoff(summary)
    assert len(trade.axes) == 2 and trade.axes[0].get_xlabel() == "layer speed-up (L / mean exit layer)"
    # one line per model and family, in order of speed-up: patience 1 at 1.5, full (= patience 2) at 1
    lines = {c.get_label(): c.lines[0] for c in trade.axes[1].containers}
    assert list(lines) == ["pabee · patience", "pabee · full depth", "bert-base (baseline)"]
    np.testing.assert_allclose(np.asarray(lines["pabee · patience"].get_xdata(), float), [1.5])
    np.testing.assert_allclose(np.asarray(lines["pabee · full depth"].get_xdata(), float), [1.0])
    shown = [t.get_text() for t in trade.axes[1].texts if t.get_visible()]
    assert set(shown) <= {"patience 1", "full = patience 2", "baseline"} and "patience 1" in shown
    over = plots.plot_overthinking(summary)
    assert [ax.get_ylabel() for ax in over.axes] == ["destructive overthinking rate", "wasteful overthinking rate"]
    # 2 PABEE series (one per recipe) x 2 families (patience 1; full = patience 2) x clean/adversarial;
    # baselines have no overthinking rates; the legend has each (model, recipe, text) once
    assert len(over.axes[0].lines) == 8
    assert len(over.legends[0].get_texts()) == 4


def test_exit_histograms_and_heatmap(runs):
    exits = exit_table(runs)
    fig = plots.plot_exit_histograms(exits)
    assert len(fig.axes) == len(runs)
    heat = plots.plot_flip_heatmap(flip_table(runs))
    assert len(heat.axes) == 2  # heatmap + colour bar
    assert heat.axes[0].get_xlabel() == "layer"
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == ["1", "2", "3"]


def test_empty_or_bad_tables_raise(summary):
    with pytest.raises(ValueError, match="empty"):
        plots.plot_success_vs_setting(summary.iloc[:0])
    with pytest.raises(ValueError, match="lacks columns"):
        plots.plot_tradeoff(pd.DataFrame({"x": [1]}))


def test_figures_render(summary, tmp_path):
    fig = plots.plot_success_vs_setting(summary)
    fig.savefig(tmp_path / "x.png")  # renders through Agg without pyplot
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_efficiency_left_draws_one_labelled_line_per_goal_and_slowdown_score(tmp_path, make_run, make_records):
    make_run(tmp_path, "pabee", "pabee", 1, "textfooler")
    slowdown = [{**r, "goal": "slowdown", "goal_target": 3} for r in make_records(1)]
    for score in ("exit", "waffle"):
        make_run(tmp_path, "pabee", "pabee", 1, "textfooler", records=slowdown, goal="slowdown", slowdown_score=score)
    fig = plots.plot_efficiency_left(summarize(load_runs([tmp_path])))
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels == ["pabee / accuracy · patience", "pabee / slowdown · patience",
                      "pabee / slowdown (waffle) · patience"]


def test_equal_values_of_two_lines_stay_visible_side_by_side():
    """Two slowdown runs of one setting (exit and waffle scores) with the same efficiency left: both points are
    drawn, shifted sideways around the setting's tick, so neither hides the other."""
    rows = [{"dataset": "glue/sst2", "recipe": "textfooler", "head": "pabee", "model_id": "m", "setting": "entropy:0.6",
             "goal": goal, "efficiency_gain_left": 0.02} for goal in ("slowdown", "slowdown-waffle")]
    ax = plots.plot_efficiency_left(pd.DataFrame(rows)).axes[0]
    xs = [float(np.asarray(c.lines[0].get_xdata(), float)[0]) for c in ax.containers]
    assert len(xs) == 2 and xs[0] != xs[1] and all(abs(x) <= 0.15 for x in xs)  # around tick 0, apart
    assert [float(np.asarray(c.lines[0].get_ydata(), float)[0]) for c in ax.containers] == [0.02, 0.02]


def test_equal_overthinking_rates_of_two_recipes_stay_visible_side_by_side():
    """One PABEE setting attacked by two recipes with the same clean overthinking rates (clean texts are the same):
    each recipe's markers are shifted sideways around the setting's tick, so neither hides the other."""
    rows = [{"dataset": "glue/sst2", "recipe": recipe, "head": "pabee", "model_id": "m", "setting": "patience:5",
             "goal": "accuracy", "clean_destructive": 0.056, "adv_destructive": 0.63, "clean_wasteful": 0.976,
             "adv_wasteful": 0.86}
            for recipe in ("deepwordbug", "pwws")]
    ax = plots.plot_overthinking(pd.DataFrame(rows)).axes[0]
    clean = [line for line in ax.lines if line.get_label().endswith(" clean")]
    xs = [float(np.asarray(line.get_xdata(), float)[0]) for line in clean]
    assert len(xs) == 2 and xs[0] != xs[1] and all(abs(x) <= 0.15 for x in xs)  # around tick 0, apart
    assert [float(np.asarray(line.get_ydata(), float)[0]) for line in clean] == [0.056, 0.056]
    assert ax.get_xlim() == (-0.5, 0.5)  # the one setting's slot, not stretched to the shifted points


def test_overthinking_keeps_two_slowdown_scores_of_one_setting_apart():
    """Slowdown runs searched with the exit and the waffle score at the same two settings: two series per recipe
    (never one line zigzagging between the two runs of a setting), each named with its score."""
    rows = [{"dataset": "glue/sst2", "recipe": "textfooler", "head": "pabee", "model_id": "m", "setting": setting,
             "goal": "slowdown", "slowdown_score": score, "num_layers": 12, "clean_destructive": 0.05,
             "adv_destructive": adv, "clean_wasteful": 0.97, "adv_wasteful": 0.99}
            for setting in ("patience:5", "patience:6") for score, adv in (("exit", 0.25), ("waffle", 0.46))]
    ax = plots.plot_overthinking(pd.DataFrame(rows)).axes[0]
    adversarial = {line.get_label(): list(np.asarray(line.get_ydata(), float)) for line in ax.lines
                   if line.get_label().endswith(" adversarial")}
    assert adversarial == {"m / textfooler / slowdown adversarial": [0.25, 0.25],
                           "m / textfooler / slowdown (waffle) adversarial": [0.46, 0.46]}
