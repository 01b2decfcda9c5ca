"""Plots: each function takes a DataFrame (from :mod:`robustness.analysis.aggregate`) and returns a
matplotlib ``Figure``. Nothing here saves files or touches pyplot's global state (figures are built
with ``matplotlib.figure.Figure``, which renders through the Agg canvas).

The exit setting is a category on the x axis, in :func:`~robustness.schema.specs.setting_order`: patience
ascending, entropy and max-probability thresholds, then "full" (full depth) last.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustness.analysis.plot_labels import (
    FAMILY_NAMES,
    drop_overlapping,
    family_rank,
    short_label,
    short_labels,
    shown_rows,
)
from robustness.schema.settings import parse_setting
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    FigureCanvasAgg(figure)  # draw() and text extents work without pyplot
    return figure


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
    for ncols in range(min(len(entries), 4), 0, -1):  # as many columns as fit the figure's width
        legend = fig.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize="small",
                            ncols=ncols, frameon=False)
        fig.canvas.draw()
        if ncols == 1 or legend.get_window_extent().width <= fig.bbox.width:
            break
        legend.remove()


def _yerr(rows: pd.DataFrame, metric: str) -> np.ndarray | None:
    low, high = f"{metric}_ci_low", f"{metric}_ci_high"
    if low not in rows:
        return None
    values = rows[metric].to_numpy(float)
    return np.vstack([values - rows[low].to_numpy(float), rows[high].to_numpy(float) - values]).clip(min=0)


def _series(rows: pd.DataFrame, series: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(legend label, rows) per series and policy family of the early-exit rows, models sorted, families in
    :data:`~robustness.schema.settings.POLICIES` order: one line per family."""
    groups = []
    for name, group in rows[rows["head"] != "full"].groupby([*series, "family"], sort=True):
        *keys, fam = np.atleast_1d(name).astype(str)
        groups.append((family_rank(fam), keys, f"{' / '.join(keys)} · {FAMILY_NAMES[fam]}", group))
    return [(label, group) for _, _, label, group in sorted(groups, key=lambda g: (g[1], g[0]))]


def _palette(rows: pd.DataFrame, series: list[str]) -> dict[str, str]:
    """One colour per legend label over the whole figure (the same line has the same colour in every panel)."""
    labels = [label for label, _ in _series(rows, series)]
    bases = rows[rows["head"] == "full"]
    labels += [" / ".join(str(b[s]) for s in series) + " (baseline)" for _, b in bases.iterrows()]
    return {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}


def _categories(rows: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The x categories of the early-exit rows in :func:`setting_order` (patience ascending, entropy, max-prob,
    full) and the short label (:func:`short_labels`) of every setting and folded display name among them."""
    pabee = rows[rows["head"] != "full"]
    order = setting_order(pabee["setting"]) or ["full"]
    return order, short_labels([*order, *pabee["setting_shown"]])


def _ticks(rows: pd.DataFrame, order: list[str], labels: dict[str, str]) -> list[str]:
    """One panel's tick labels: a setting as this panel shows it (``full = patience 5``, the pair on two lines),
    ``(folded)`` after a setting folded into another point of this panel."""
    pabee = rows[rows["head"] != "full"]
    shown = dict(zip(pabee["setting"], pabee["setting_shown"], strict=True))
    folded_here = {a for also in pabee["also"] for a in str(also).split(" = ") if a}
    ticks = [labels[shown[s]] if s in shown else f"{labels[s]} (folded)" if s in folded_here else labels[s]
             for s in order]
    return [tick.replace(" = ", "\n= ") for tick in ticks]


def _vs_setting(ax, rows: pd.DataFrame, metric: str, categories: tuple[list[str], dict[str, str]], series: list[str],
                palette: dict[str, str]) -> None:
    """``metric`` against the exit setting, one line per (series, policy family) of early-exit rows; baselines
    as horizontal lines (CI band)."""
    order, labels = categories
    ticks = _ticks(rows, order, labels)
    for label, group in _series(rows, series):
        group = group.assign(_x=[order.index(p) for p in group["setting"]]).sort_values("_x")
        ax.errorbar(group["_x"], group[metric], yerr=_yerr(group, metric), marker="o", capsize=3,
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
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", metric])
    shown = shown_rows(summary)
    categories, palette = _categories(shown), _palette(shown, ["model_id"])
    facets = _facets(shown)
    fig, axes = _grid(len(facets), height=4.6)
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = shown[(shown["dataset"] == dataset) & (shown["recipe"] == recipe)]
        _vs_setting(ax, rows, metric, categories, ["model_id"], palette)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{recipe} on {dataset}")
    _legend(fig, axes)
    return fig


def plot_cost_vs_setting(summary: pd.DataFrame) -> Figure:
    """Attack cost against the exit setting, one column per (dataset, recipe), wrapping after :data:`MAX_COLUMNS`:
    mean TextAttack queries (upper panel) and mean layers computed (lower panel) per attacked example, one line
    per PABEE model and policy family; baselines dashed."""
    metrics = ["mean_queries", "mean_layers_computed"]
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", *metrics])
    shown = shown_rows(summary)
    categories, palette = _categories(shown), _palette(shown, ["model_id"])
    facets = _facets(shown)
    ncols = min(len(facets), MAX_COLUMNS)
    nrows = 2 * math.ceil(len(facets) / ncols)
    fig = _figure(figsize=(5.0 * ncols, 4.4 * nrows + 0.6), layout="constrained")
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
    _legend(fig, axes)
    return fig


def plot_efficiency_left(summary: pd.DataFrame) -> Figure:
    """Efficiency gain left after the attack, (L / mean exit under attack − 1) / (L / mean clean exit − 1),
    against the exit setting, one panel per (dataset, recipe) and one line per (model, goal, policy family; a
    slowdown score other than ``exit`` in brackets after the goal): a slowdown attack drives it towards 0, an accuracy
    attack should leave it near 1. Early-exit settings only."""
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", "goal", "efficiency_gain_left"])
    shown = shown_rows(summary)
    scores = shown["slowdown_score"] if "slowdown_score" in shown else pd.Series(None, index=shown.index)
    shown = shown.assign(goal=[g if s is None or s != s or s == "exit" else f"{g} ({s})"
                               for g, s in zip(shown["goal"], scores, strict=True)])
    rows_all = shown[(shown["head"] != "full") & shown["efficiency_gain_left"].notna()]
    _check(rows_all, [])
    categories, palette = _categories(rows_all), _palette(rows_all, ["model_id", "goal"])
    facets = _facets(rows_all)
    fig, axes = _grid(len(facets), height=4.6)
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = rows_all[(rows_all["dataset"] == dataset) & (rows_all["recipe"] == recipe)]
        _vs_setting(ax, rows, "efficiency_gain_left", categories, ["model_id", "goal"], palette)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylim(min(-0.05, float(rows["efficiency_gain_left"].min()) - 0.05), 1.1)
        ax.set_title(f"{recipe} on {dataset}")
    _legend(fig, axes)  # which line is which model, goal and slowdown score
    return fig


def plot_tradeoff(summary: pd.DataFrame) -> Figure:
    """Accuracy under attack (95% CI bars) against the layer speed-up, one panel per (dataset, recipe): one line
    per model and policy family through its settings in order of speed-up, filled markers at the clean texts'
    speed-up and hollow markers (dashed) at the adversarial texts'; baselines are squares. Points carry short
    setting labels where they fit (a label that would overlap other text is left out)."""
    _check(summary, ["dataset", "recipe", "head", "model_id", "setting", "accuracy_under_attack",
                     "orig_speedup", "adv_speedup"])
    shown = shown_rows(summary)
    palette = _palette(shown, ["model_id"])
    labels = short_labels(shown["shown"])
    facets = _facets(shown)
    fig, axes = _grid(len(facets), width=5.5, height=4.2)
    annotations = []
    for ax, (dataset, recipe) in zip(axes, facets, strict=True):
        rows = shown[(shown["dataset"] == dataset) & (shown["recipe"] == recipe)]
        lines = [(label, group, "o") for label, group in _series(rows, ["model_id"])]
        lines += [(f"{model} (baseline)", group, "s")
                  for model, group in rows[rows["head"] == "full"].groupby("model_id", sort=True)]
        for label, group, marker in lines:
            group = group.sort_values("orig_speedup")
            y, yerr = group["accuracy_under_attack"], _yerr(group, "accuracy_under_attack")
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
    _legend(fig, axes)
    for annotation in annotations:  # labels of points in the right third go to their left, inside the panel
        low, high = annotation.axes.get_xlim()
        if (annotation.xy[0] - low) > 0.7 * (high - low):
            annotation.set_horizontalalignment("right")
            annotation.xyann = (-5, 4)
    drop_overlapping(fig, annotations)
    return fig


def _run_title(run: str) -> str:
    """A run label (``model setting recipe``) as a panel title: the model on its own line, settings shortened."""
    model, _, rest = run.partition(" ")
    rest = re.sub(r"\b(?:patience|entropy|maxprob):[0-9.eE+-]+", lambda m: short_label(m.group(0)), rest)
    return f"{model}\n{rest}"


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
        ax.set_title(_run_title(setting), fontsize="medium")
    _legend(fig, axes)
    return fig


def plot_overthinking(summary: pd.DataFrame) -> Figure:
    """Two panels (destructive, wasteful overthinking) against the exit setting for multi-exit models: solid lines
    on clean texts, dashed on adversarial texts, one colour per (model, recipe) and one line per policy family.
    Single-head baselines have no such rates."""
    _check(summary, ["recipe", "model_id", "setting", "clean_destructive", "adv_destructive",
                     "clean_wasteful", "adv_wasteful"])
    shown = shown_rows(summary.assign(head=summary["head"]) if "head" in summary else summary.assign(head="pabee"))
    rows = shown[shown["clean_destructive"].notna() & (shown["head"] != "full")]  # multi-exit models only
    order, labels = _categories(rows) if not rows.empty else ([], {})
    ticks = _ticks(rows, order, labels) if not rows.empty else []
    fig, axes = _grid(2, width=6.0, height=4.6, ncols=2)
    for ax, kind in zip(axes, ["destructive", "wasteful"], strict=True):
        for i, ((model, recipe), group) in enumerate(rows.groupby(["model_id", "recipe"], sort=True)):
            for _, part in group.groupby("family", sort=False):
                part = part.assign(_x=[order.index(p) for p in part["setting"]]).sort_values("_x")
                ax.plot(part["_x"], part[f"clean_{kind}"], marker="o", color=f"C{i % 10}",
                        label=f"{model} / {recipe} clean")
                ax.plot(part["_x"], part[f"adv_{kind}"], marker="s", linestyle="--", color=f"C{i % 10}",
                        label=f"{model} / {recipe} adversarial")
        if rows.empty:
            ax.text(0.5, 0.5, "no multi-exit model", ha="center", va="center", transform=ax.transAxes)
        rotate = len(order) > 4
        ax.set_xticks(range(len(order)), ticks, rotation=90 if rotate else 0,
                      fontsize="small")
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
    ax.set_yticks(range(grid.shape[0]), [_run_title(run).replace("\n", " ") for run in grid.index])
    ax.set_xlabel("layer")
    if grid.size <= 400:
        for (r, c), value in np.ndenumerate(grid.to_numpy(float)):
            if not math.isnan(value):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                        color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="flip rate (adv vs clean, same layer)")
    return fig


def _side(models: pd.Series, settings: pd.Series) -> tuple[list[str], dict[tuple[str, str], str], str]:
    """Keys (model@setting) of one side of the transfer matrix in model, :func:`setting_order` order, their tick
    labels (short settings; the model named once in the axis label when there is only one) and the axis note."""
    pairs = sorted(set(zip(models, settings, strict=True)),
                   key=lambda p: (p[0], parse_setting(p[1]).sort_key()))
    short = short_labels(settings)
    one = len({m for m, _ in pairs}) == 1
    labels = {p: short[p[1]] if one else f"{p[0]} · {short[p[1]]}" for p in pairs}
    return [f"{m}@{s}" for m, s in pairs], labels, f" ({pairs[0][0]})" if one and pairs else ""


def plot_transfer_matrix(transfers: pd.DataFrame) -> Figure:
    """Transfer success rate, source (rows: model@setting) × target (columns: model@setting), one heatmap per
    (dataset, recipe, goal) of :func:`robustness.analysis.transfer.transfer_table`; blank: not transferred.
    Settings in :func:`setting_order` with short labels; a model shared by every row (column) is named once."""
    _check(transfers, ["dataset", "recipe", "goal", "source_model", "source_setting", "target_model",
                       "target_setting", "success_rate"])
    table = transfers.assign(source=transfers["source_model"] + "@" + transfers["source_setting"],
                             target=transfers["target_model"] + "@" + transfers["target_setting"])
    facets = sorted(set(zip(table["dataset"], table["recipe"], table["goal"], strict=True)))
    fig, axes = _grid(len(facets), width=5.5, height=4.0)
    for ax, (dataset, recipe, goal) in zip(axes, facets, strict=True):
        rows = table[(table["dataset"] == dataset) & (table["recipe"] == recipe) & (table["goal"] == goal)]
        sources, source_labels, source_note = _side(rows["source_model"], rows["source_setting"])
        targets, target_labels, target_note = _side(rows["target_model"], rows["target_setting"])
        grid = rows.pivot_table(index="source", columns="target", values="success_rate", aggfunc="first")
        grid = grid.reindex(index=sources, columns=targets)
        values = grid.to_numpy(float)
        ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(targets)), list(target_labels.values()), rotation=90 if len(targets) > 3 else 0,
                      fontsize="small")
        ax.set_yticks(range(len(sources)), list(source_labels.values()), fontsize="small")
        for (r, c), value in np.ndenumerate(values):
            if not math.isnan(value):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize="small",
                        color="white" if value < 0.6 else "black")
        ax.set_xlabel(f"target{target_note}")
        ax.set_ylabel(f"source{source_note}")
        ax.set_title(f"{recipe} ({goal}) on {dataset}")
    return fig
