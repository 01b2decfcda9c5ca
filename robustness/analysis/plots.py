"""Plots: each function takes a DataFrame (from :mod:`robustness.analysis.aggregate`) and returns a
matplotlib ``Figure``. Nothing here saves files or touches pyplot's global state (figures are built
with ``matplotlib.figure.Figure``, which renders through the Agg canvas).

The exit setting is a category on the x axis, in :func:`~robustness.schema.specs.setting_order`: patience
ascending, entropy and max-probability thresholds, then "full" (full depth) last.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustness.schema.specs import setting_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PRETTY = {
    "attack_success_rate": "attack success rate", "accuracy_under_attack": "accuracy under attack",
    "mean_queries": "TextAttack queries / example", "mean_layers_computed": "deployed layers / attacked example",
    "speedup": "layer speed-up (L / mean exit layer)",
    "destructive": "destructive overthinking rate",
    "efficiency_gain_left": "efficiency gain left (1 = none lost)", "wasteful": "wasteful overthinking rate",
}


def _check(df: pd.DataFrame, columns: list[str]) -> None:
    if df.empty:
        raise ValueError("cannot plot an empty table")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks columns: {', '.join(missing)}")


def _facets(summary: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(set(zip(summary["dataset"], summary["recipe"], strict=True)))


#: Facet grids wrap after this many columns, so figures stay legible with 10+ recipes.
MAX_COLUMNS = 4


def _figure(**options: Any) -> Figure:
    """A new Agg-rendered figure. matplotlib is imported here, when a plot is made, not with this module: a
    suite's start-up (``validate_suite`` reads the report's file names) does not pay for it."""
    from matplotlib.figure import Figure

    return Figure(**options)


def _grid(count: int, width: float = 5.0, height: float = 3.6, ncols: int = 3) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, MAX_COLUMNS, count))
    nrows = math.ceil(count / ncols)
    fig = _figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(count)]
    return fig, axes


def _legend(fig: Figure, axes: list) -> None:
    """One legend for the whole figure, below the panels (never over the data), each label once."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize="small",
                   ncols=min(len(entries), 4), frameon=False)


def _yerr(rows: pd.DataFrame, metric: str) -> np.ndarray | None:
    low, high = f"{metric}_ci_low", f"{metric}_ci_high"
    if low not in rows:
        return None
    values = rows[metric].to_numpy(float)
    return np.vstack([values - rows[low].to_numpy(float), rows[high].to_numpy(float) - values]).clip(min=0)


def _vs_setting(ax, rows: pd.DataFrame, metric: str, order: list[str], series: list[str]) -> None:
    """Lines of ``metric`` against the exit setting for PABEE rows; baselines as horizontal lines (CI band)."""
    colors = iter(f"C{i}" for i in range(100))
    for name, group in rows[rows["head"] != "full"].groupby(series, sort=True):
        group = group.assign(_x=[order.index(p) for p in group["setting"]]).sort_values("_x")
        ax.errorbar(group["_x"], group[metric], yerr=_yerr(group, metric), marker="o", capsize=3,
                    color=next(colors), label=" / ".join(np.atleast_1d(name).astype(str)))
    for _, base in rows[rows["head"] == "full"].iterrows():
        color = next(colors)
        label = " / ".join(str(base[s]) for s in series) + " (baseline)"
        ax.axhline(base[metric], color=color, linestyle="--", label=label)
        if f"{metric}_ci_low" in base and not math.isnan(base[f"{metric}_ci_low"]):
            ax.axhspan(base[f"{metric}_ci_low"], base[f"{metric}_ci_high"], color=color, alpha=0.12)
    ax.set_xticks(range(len(order)), order, rotation=30 if len(order) > 4 else 0)
    ax.set_xlim(-0.5, max(len(order) - 0.5, 0.5))
    ax.set_xlabel("exit setting")
    ax.set_ylabel(PRETTY.get(metric, metric))
    ax.grid(alpha=0.3)


def plot_success_vs_setting(summary: pd.DataFrame, metric: str = "attack_success_rate") -> Figure:
    """One panel per (dataset, recipe): ``metric`` (with 95% CI bars) against the exit setting, one line per PABEE
    model; every baseline model is a dashed horizontal line with its CI as a band."""
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", metric])
    order = setting_order(summary.loc[summary["head"] != "full", "setting"]) or ["full"]
    facets = _facets(summary)
    fig, axes = _grid(len(facets))
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = summary[(summary["dataset"] == dataset) & (summary["recipe"] == recipe)]
        _vs_setting(ax, rows, metric, order, ["model_id"])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{recipe} on {dataset}")
    _legend(fig, axes)
    return fig


def plot_cost_vs_setting(summary: pd.DataFrame) -> Figure:
    """Attack cost against the exit setting, one column per (dataset, recipe), wrapping after :data:`MAX_COLUMNS`:
    mean TextAttack queries (upper panel) and mean layers computed (lower panel) per attacked example, one line
    per PABEE model; baselines dashed."""
    metrics = ["mean_queries", "mean_layers_computed"]
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", *metrics])
    order = setting_order(summary.loc[summary["head"] != "full", "setting"]) or ["full"]
    facets = _facets(summary)
    ncols = min(len(facets), MAX_COLUMNS)
    nrows = 2 * math.ceil(len(facets) / ncols)
    fig = _figure(figsize=(5.0 * ncols, 3.6 * nrows + 0.6), layout="constrained")
    axes = []
    for i, (dataset, recipe) in enumerate(facets):
        rows = summary[(summary["dataset"] == dataset) & (summary["recipe"] == recipe)]
        for row, metric in enumerate(metrics):
            ax = fig.add_subplot(nrows, ncols, (2 * (i // ncols) + row) * ncols + i % ncols + 1)
            _vs_setting(ax, rows, metric, order, ["model_id"])
            ax.set_ylim(bottom=0)
            if row == 0:
                ax.set_title(f"{recipe} on {dataset}")
            axes.append(ax)
    _legend(fig, axes)
    return fig


def plot_efficiency_left(summary: pd.DataFrame) -> Figure:
    """Efficiency gain left after the attack, (L / mean exit under attack − 1) / (L / mean clean exit − 1),
    against the exit setting, one panel per (dataset, recipe) and one line per (model, goal; slowdown score other
    than ``exit`` in brackets): a slowdown attack drives it towards 0, an accuracy attack should leave it near 1.
    Early-exit settings only."""
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", "goal", "efficiency_gain_left"])
    scores = summary["slowdown_score"] if "slowdown_score" in summary else pd.Series(None, index=summary.index)
    summary = summary.assign(goal=[g if s is None or s != s or s == "exit" else f"{g} ({s})"
                                   for g, s in zip(summary["goal"], scores, strict=True)])
    rows_all = summary[(summary["head"] != "full") & summary["efficiency_gain_left"].notna()]
    _check(rows_all, [])
    order = setting_order(rows_all["setting"])
    facets = _facets(rows_all)
    fig, axes = _grid(len(facets))
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = rows_all[(rows_all["dataset"] == dataset) & (rows_all["recipe"] == recipe)]
        _vs_setting(ax, rows, "efficiency_gain_left", order, ["model_id", "goal"])
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(min(-0.05, float(rows["efficiency_gain_left"].min()) - 0.05), 1.1)
        ax.set_title(f"{recipe} on {dataset}")
    _legend(fig, axes)  # which line is which model, goal and slowdown score
    return fig


def plot_tradeoff(summary: pd.DataFrame) -> Figure:
    """Accuracy under attack (95% CI bars) against the layer speed-up, one panel per (dataset, recipe):
    per model, filled markers on clean texts and hollow markers (dashed) on adversarial texts, points
    labelled by setting; baselines are squares."""
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", "accuracy_under_attack",
                     "orig_speedup", "adv_speedup"])
    facets = _facets(summary)
    fig, axes = _grid(len(facets), width=5.5, height=4.2)
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = summary[(summary["dataset"] == dataset) & (summary["recipe"] == recipe)]
        for i, (model, group) in enumerate(rows.groupby("model_id", sort=True)):
            ranks = {label: i for i, label in enumerate(setting_order(group["setting"]))}
            group = group.assign(_r=group["setting"].map(ranks)).sort_values("_r")
            marker = "s" if (group["head"] == "full").all() else "o"
            y, yerr = group["accuracy_under_attack"], _yerr(group, "accuracy_under_attack")
            ax.errorbar(group["orig_speedup"], y, yerr=yerr, marker=marker, capsize=3, color=f"C{i}",
                        label=f"{model}, clean")
            ax.errorbar(group["adv_speedup"], y, marker=marker, linestyle="--", markerfacecolor="white",
                        color=f"C{i}", alpha=0.8, label=f"{model}, adversarial")
            for x, yy, p in zip(group["orig_speedup"], y, group["setting"], strict=True):
                ax.annotate("base" if marker == "s" else p, (x, yy), textcoords="offset points",
                            xytext=(5, 4), fontsize="x-small")
        ax.set_title(f"{recipe} on {dataset}")
        ax.set_xlabel(PRETTY["speedup"])
        ax.set_ylabel(PRETTY["accuracy_under_attack"])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return fig


def plot_exit_histograms(exits: pd.DataFrame) -> Figure:
    """One panel per run: fraction of examples exiting at each layer, clean vs adversarial texts
    (the long table of :func:`robustness.analysis.aggregate.exit_table`)."""
    _check(exits, ["run", "layer", "clean_frac", "adv_frac"])
    settings = list(dict.fromkeys(exits["run"]))
    fig, axes = _grid(len(settings), width=4.0, height=3.0, ncols=4)
    for ax, setting in zip(axes, settings, strict=True):
        rows = exits[exits["run"] == setting].sort_values("layer")
        layers = rows["layer"].to_numpy()
        ax.bar(layers - 0.2, rows["clean_frac"], width=0.4, label="clean")
        ax.bar(layers + 0.2, rows["adv_frac"], width=0.4, label="adversarial")
        ax.set_xticks(layers)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("exit layer")
        ax.set_ylabel("fraction of examples")
        ax.set_title(setting, fontsize="medium")
    _legend(fig, axes)
    return fig


def plot_overthinking(summary: pd.DataFrame) -> Figure:
    """Two panels (destructive, wasteful overthinking) against the exit setting for multi-exit models: solid lines
    on clean texts, dashed on adversarial texts. Single-head baselines have no such rates."""
    _check(summary, ["recipe", "model_id", "setting", "clean_destructive", "adv_destructive",
                     "clean_wasteful", "adv_wasteful"])
    rows = summary[summary["clean_destructive"].notna()]
    order = setting_order(rows["setting"])
    fig, axes = _grid(2, width=6.0, ncols=2)
    for ax, kind in zip(axes, ["destructive", "wasteful"], strict=True):
        for i, ((model, recipe), group) in enumerate(rows.groupby(["model_id", "recipe"], sort=True)):
            group = group.assign(_x=[order.index(p) for p in group["setting"]]).sort_values("_x")
            ax.plot(group["_x"], group[f"clean_{kind}"], marker="o", color=f"C{i}", label=f"{model} / {recipe} clean")
            ax.plot(group["_x"], group[f"adv_{kind}"], marker="s", linestyle="--", color=f"C{i}",
                    label=f"{model} / {recipe} adversarial")
        if rows.empty:
            ax.text(0.5, 0.5, "no multi-exit model", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel("exit setting")
        ax.set_ylabel(PRETTY[kind])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return fig


def plot_flip_heatmap(flips: pd.DataFrame) -> Figure:
    """Heatmap, runs × layers, of the fraction of attacked examples whose layer-l prediction on the
    adversarial text differs from layer l's prediction on the original (blank: no classifier there)."""
    _check(flips, ["run", "layer", "flip_rate"])
    grid = flips.pivot_table(index="run", columns="layer", values="flip_rate", sort=False)
    grid = grid.reindex(columns=range(1, int(flips["layer"].max()) + 1))
    fig = _figure(figsize=(2.0 + 0.7 * grid.shape[1] + 3, 1.2 + 0.4 * grid.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid.to_numpy(float)), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), list(grid.index))
    ax.set_xlabel("layer")
    if grid.size <= 400:
        for (r, c), value in np.ndenumerate(grid.to_numpy(float)):
            if not math.isnan(value):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                        color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="flip rate (adv vs clean, same layer)")
    return fig


def plot_transfer_matrix(transfers: pd.DataFrame) -> Figure:
    """Transfer success rate, source (rows: model@setting) × target (columns: model@setting), one heatmap per
    (dataset, recipe, goal) of :func:`robustness.analysis.transfer.transfer_table`; blank: not transferred."""
    _check(transfers, ["dataset", "recipe", "goal", "source_model", "source_setting", "target_model",
                       "target_setting", "success_rate"])
    table = transfers.assign(source=transfers["source_model"] + "@" + transfers["source_setting"],
                             target=transfers["target_model"] + "@" + transfers["target_setting"])
    facets = sorted(set(zip(table["dataset"], table["recipe"], table["goal"], strict=True)))
    fig, axes = _grid(len(facets), width=5.5, height=4.0)
    for ax, (dataset, recipe, goal) in zip(axes, facets, strict=True):
        rows = table[(table["dataset"] == dataset) & (table["recipe"] == recipe) & (table["goal"] == goal)]
        grid = rows.pivot_table(index="source", columns="target", values="success_rate", aggfunc="first")
        values = grid.to_numpy(float)
        ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(grid.shape[1]), list(grid.columns), rotation=30, ha="right", fontsize="small")
        ax.set_yticks(range(grid.shape[0]), list(grid.index), fontsize="small")
        for (r, c), value in np.ndenumerate(values):
            if not math.isnan(value):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(f"{recipe} ({goal}) on {dataset}")
    return fig
