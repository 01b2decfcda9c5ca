"""Plots: each function takes a DataFrame (from :mod:`robustness.analysis.aggregate`) and returns a
matplotlib ``Figure``. Nothing here saves files or touches pyplot's global state (figures are built
with ``matplotlib.figure.Figure``, which renders through the Agg canvas).

This module holds the line plots against the exit setting and the speed-up, and the exit histograms; the
heatmaps (flip rates, transfer matrix) are in :mod:`robustness.analysis.heatmaps` and re-exported here, the
figure machinery (grids, legend, colours, ticks) is in :mod:`robustness.analysis.plot_layout`.

The exit setting is a category on the x axis, in :func:`~robustness.schema.specs.setting_order`: patience
ascending, entropy and max-probability thresholds, then "full" (full depth) last.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from robustness.analysis.heatmaps import plot_flip_heatmap, plot_transfer_matrix
from robustness.analysis.plot_labels import drop_overlapping, short_labels, shown_rows
from robustness.analysis.plot_layout import (
    MAX_COLUMNS,
    PRETTY,
    check_columns,
    ci_yerr,
    facets_of,
    family_series,
    figure_legend,
    line_palette,
    new_figure,
    panel_grid,
    run_title,
    setting_categories,
    setting_ticks,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_COLUMNS", "PRETTY", "plot_cost_vs_setting", "plot_efficiency_left", "plot_exit_histograms",
           "plot_flip_heatmap", "plot_overthinking", "plot_success_vs_setting", "plot_tradeoff",
           "plot_transfer_matrix"]


def _vs_setting(ax, rows: pd.DataFrame, metric: str, categories: tuple[list[str], dict[str, str]], series: list[str],
                palette: dict[str, str]) -> None:
    """``metric`` against the exit setting, one line per (series, policy family) of early-exit rows, each line
    shifted sideways by a small step so that equal values of two lines do not hide one another; baselines as
    horizontal lines (CI band)."""
    order, labels = categories
    ticks = setting_ticks(rows, order, labels)
    lines = family_series(rows, series)
    step = min(0.08, 0.3 / max(len(lines) - 1, 1))  # dodge: equal values of two series stay visible side by side
    for i, (label, group) in enumerate(lines):
        shift = (i - (len(lines) - 1) / 2) * step
        group = group.assign(_x=[order.index(p) + shift for p in group["setting"]]).sort_values("_x")
        ax.errorbar(group["_x"], group[metric], yerr=ci_yerr(group, metric), marker="o", capsize=3,
                    color=palette[label], label=label)
    for _, base in rows[rows["head"] == "full"].iterrows():
        label = " / ".join(str(base[s]) for s in series) + " (baseline)"
        ax.axhline(base[metric], color=palette[label], linestyle="--", label=label)
        if f"{metric}_ci_low" in base and not math.isnan(base[f"{metric}_ci_low"]):
            ax.axhspan(base[f"{metric}_ci_low"], base[f"{metric}_ci_high"], color=palette[label], alpha=0.12)
    rotate = len(order) > 4
    ax.set_xticks(range(len(order)), ticks, rotation=90 if rotate else 0,
                  fontsize="small")
    ax.set_xlim(-0.5, max(len(order) - 0.5, 0.5))
    ax.set_xlabel("exit setting")
    ax.set_ylabel(PRETTY.get(metric, metric))
    ax.grid(alpha=0.3)


def plot_success_vs_setting(summary: pd.DataFrame, metric: str = "attack_success_rate") -> Figure:
    """One panel per (dataset, recipe): ``metric`` (with 95% CI bars) against the exit setting, one line per PABEE
    model and policy family; every baseline model is a dashed horizontal line with its CI as a band. Settings
    of identical exits are folded into one point (:mod:`robustness.analysis.equivalence`)."""
    check_columns(summary, ["dataset", "recipe", "head", "model_id", "setting", metric])
    shown = shown_rows(summary)
    categories, palette = setting_categories(shown), line_palette(shown, ["model_id"])
    facets = facets_of(shown)
    fig, axes = panel_grid(len(facets), height=4.6)
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = shown[(shown["dataset"] == dataset) & (shown["recipe"] == recipe)]
        _vs_setting(ax, rows, metric, categories, ["model_id"], palette)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{recipe} on {dataset}")
    figure_legend(fig, axes)
    return fig


def plot_cost_vs_setting(summary: pd.DataFrame) -> Figure:
    """Attack cost against the exit setting, one column per (dataset, recipe), wrapping after :data:`MAX_COLUMNS`:
    mean TextAttack queries (upper panel) and mean layers computed (lower panel) per attacked example, one line
    per PABEE model and policy family; baselines dashed."""
    metrics = ["mean_queries", "mean_layers_computed"]
    check_columns(summary, ["dataset", "recipe", "head", "model_id", "setting", *metrics])
    shown = shown_rows(summary)
    categories, palette = setting_categories(shown), line_palette(shown, ["model_id"])
    facets = facets_of(shown)
    ncols = min(len(facets), MAX_COLUMNS)
    nrows = 2 * math.ceil(len(facets) / ncols)
    fig = new_figure(figsize=(5.0 * ncols, 4.4 * nrows + 0.6), layout="constrained")
    axes = []
    for i, (dataset, recipe) in enumerate(facets):
        rows = shown[(shown["dataset"] == dataset) & (shown["recipe"] == recipe)]
        for row, metric in enumerate(metrics):
            ax = fig.add_subplot(nrows, ncols, (2 * (i // ncols) + row) * ncols + i % ncols + 1)
            _vs_setting(ax, rows, metric, categories, ["model_id"], palette)
            ax.set_ylim(bottom=0)
            if row == 0:
                ax.set_title(f"{recipe} on {dataset}")
            axes.append(ax)
    figure_legend(fig, axes)
    return fig


def _with_goal_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """``goal`` as a legend shows it: a slowdown score other than ``exit`` in brackets after the goal."""
    scores = rows["slowdown_score"] if "slowdown_score" in rows else pd.Series(None, index=rows.index)
    return rows.assign(goal=[g if s is None or s != s or s == "exit" else f"{g} ({s})"
                             for g, s in zip(rows["goal"], scores, strict=True)])


def plot_efficiency_left(summary: pd.DataFrame) -> Figure:
    """Efficiency gain left after the attack, (L / mean exit under attack − 1) / (L / mean clean exit − 1),
    against the exit setting, one panel per (dataset, recipe) and one line per (model, goal, policy family; a
    slowdown score other than ``exit`` in brackets after the goal): a slowdown attack drives it towards 0, an accuracy
    attack should leave it near 1. Early-exit settings only."""
    check_columns(summary, ["dataset", "recipe", "head", "model_id", "setting", "goal", "efficiency_gain_left"])
    shown = _with_goal_labels(shown_rows(summary))
    rows_all = shown[(shown["head"] != "full") & shown["efficiency_gain_left"].notna()]
    check_columns(rows_all, [])
    categories, palette = setting_categories(rows_all), line_palette(rows_all, ["model_id", "goal"])
    facets = facets_of(rows_all)
    fig, axes = panel_grid(len(facets), height=4.6)
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = rows_all[(rows_all["dataset"] == dataset) & (rows_all["recipe"] == recipe)]
        _vs_setting(ax, rows, "efficiency_gain_left", categories, ["model_id", "goal"], palette)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(min(-0.05, float(rows["efficiency_gain_left"].min()) - 0.05), 1.1)
        ax.set_title(f"{recipe} on {dataset}")
    figure_legend(fig, axes)  # which line is which model, goal and slowdown score
    return fig


def plot_tradeoff(summary: pd.DataFrame) -> Figure:
    """Accuracy under attack (95% CI bars) against the layer speed-up, one panel per (dataset, recipe): one line
    per model and policy family through its settings in order of speed-up, filled markers at the clean texts'
    speed-up and hollow markers (dashed) at the adversarial texts'; baselines are squares. Points carry short
    setting labels where they fit (a label that would overlap other text is left out)."""
    check_columns(summary, ["dataset", "recipe", "head", "model_id", "setting", "accuracy_under_attack",
                     "orig_speedup", "adv_speedup"])
    shown = shown_rows(summary)
    palette = line_palette(shown, ["model_id"])
    labels = short_labels(shown["shown"])
    facets = facets_of(shown)
    fig, axes = panel_grid(len(facets), width=5.5, height=4.2)
    annotations = []
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = shown[(shown["dataset"] == dataset) & (shown["recipe"] == recipe)]
        lines = [(label, group, "o") for label, group in family_series(rows, ["model_id"])]
        lines += [(f"{model} (baseline)", group, "s")
                  for model, group in rows[rows["head"] == "full"].groupby("model_id", sort=True)]
        for label, group, marker in lines:
            group = group.sort_values("orig_speedup")
            y, yerr = group["accuracy_under_attack"], ci_yerr(group, "accuracy_under_attack")
            ax.errorbar(group["orig_speedup"], y, yerr=yerr, marker=marker, capsize=3, color=palette[label],
                        label=label)
            adv = group.sort_values("adv_speedup")
            ax.plot(adv["adv_speedup"], adv["accuracy_under_attack"], marker=marker, linestyle="--",
                    markerfacecolor="white", color=palette[label], alpha=0.8)
            for x, yy, p in zip(group["orig_speedup"], y, group["shown"], strict=True):
                text = "baseline" if marker == "s" else labels[p]
                annotations.append(ax.annotate(text, (x, yy), textcoords="offset points", xytext=(5, 4),
                                               fontsize="small", color=palette[label]))
        ax.set_title(f"{recipe} on {dataset}")
        ax.set_xlabel(PRETTY["speedup"])
        ax.set_ylabel(PRETTY["accuracy_under_attack"])
        high = rows.get("accuracy_under_attack_ci_high", rows["accuracy_under_attack"]).max()
        ax.set_ylim(-0.02, min(1.02, float(high) + 0.12))  # room above the highest point for its label
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    axes[0].plot([], [], color="grey", marker="o", label="filled: clean texts' speed-up")
    axes[0].add_line(Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="--",
                            label="hollow, dashed: adversarial texts' speed-up"))
    figure_legend(fig, axes)
    for annotation in annotations:  # labels of points in the right third go to their left, inside the panel
        low, high = annotation.axes.get_xlim()
        if (annotation.xy[0] - low) > 0.7 * (high - low):
            annotation.set_horizontalalignment("right")
            annotation.xyann = (-5, 4)
    drop_overlapping(fig, annotations)
    return fig


def plot_exit_histograms(exits: pd.DataFrame) -> Figure:
    """One panel per run: fraction of examples exiting at each layer, clean vs adversarial texts
    (the long table of :func:`robustness.analysis.aggregate.exit_table`)."""
    check_columns(exits, ["run", "layer", "clean_frac", "adv_frac"])
    settings = list(dict.fromkeys(exits["run"]))
    fig, axes = panel_grid(len(settings), width=4.0, height=3.0, ncols=4)
    for ax, setting in zip(axes, settings, strict=True):
        rows = exits[exits["run"] == setting].sort_values("layer")
        layers = rows["layer"].to_numpy()
        ax.bar(layers - 0.2, rows["clean_frac"], width=0.4, label="clean")
        ax.bar(layers + 0.2, rows["adv_frac"], width=0.4, label="adversarial")
        ax.set_xticks(layers)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("exit layer")
        ax.set_ylabel("fraction of examples")
        ax.set_title(run_title(setting), fontsize="medium")
    figure_legend(fig, axes)
    return fig


def plot_overthinking(summary: pd.DataFrame) -> Figure:
    """Two panels (destructive, wasteful overthinking) against the exit setting for multi-exit models: solid lines
    on clean texts, dashed on adversarial texts, one colour per (model, recipe; and goal, when the runs have several)
    and one line per policy family, each such series shifted sideways by a small step so that equal rates do not
    hide one another. Single-head baselines have no such rates."""
    check_columns(summary, ["recipe", "model_id", "setting", "clean_destructive", "adv_destructive",
                     "clean_wasteful", "adv_wasteful"])
    shown = shown_rows(summary.assign(head=summary["head"]) if "head" in summary else summary.assign(head="pabee"))
    rows = shown[shown["clean_destructive"].notna() & (shown["head"] != "full")]  # multi-exit models only
    order, labels = setting_categories(rows) if not rows.empty else ([], {})
    ticks = setting_ticks(rows, order, labels) if not rows.empty else []
    fig, axes = panel_grid(2, width=6.0, height=4.6, ncols=2)
    if "goal" in rows:  # runs of several goals (or slowdown scores) at one setting are separate series
        rows = _with_goal_labels(rows)
    keys = ["model_id", "recipe"] + (["goal"] if "goal" in rows and rows["goal"].nunique() > 1 else [])
    series = list(rows.groupby(keys, sort=True)) if not rows.empty else []
    step = min(0.08, 0.3 / max(len(series) - 1, 1))  # dodge, as in _vs_setting: equal rates stay visible
    for ax, kind in zip(axes, ["destructive", "wasteful"], strict=True):
        for i, (key, group) in enumerate(series):
            shift, name = (i - (len(series) - 1) / 2) * step, " / ".join(map(str, key))
            for _, part in group.groupby("family", sort=False):
                part = part.assign(_x=[order.index(p) + shift for p in part["setting"]]).sort_values("_x")
                ax.plot(part["_x"], part[f"clean_{kind}"], marker="o", color=f"C{i % 10}", label=f"{name} clean")
                ax.plot(part["_x"], part[f"adv_{kind}"], marker="s", linestyle="--", color=f"C{i % 10}",
                        label=f"{name} adversarial")
        if rows.empty:
            ax.text(0.5, 0.5, "no multi-exit model", ha="center", va="center", transform=ax.transAxes)
        rotate = len(order) > 4
        ax.set_xticks(range(len(order)), ticks, rotation=90 if rotate else 0,
                      fontsize="small")
        ax.set_xlim(-0.5, max(len(order) - 0.5, 0.5))
        ax.set_xlabel("exit setting")
        ax.set_ylabel(PRETTY[kind])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    figure_legend(fig, axes)
    return fig
