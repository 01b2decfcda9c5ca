"""Heatmaps: per-layer flip rates of attack runs and the transfer matrix (source x target setting). Each function
takes a DataFrame and returns a matplotlib ``Figure`` (built with :mod:`robustness.analysis.plot_layout`); nothing
here saves files."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from robustness.analysis.plot_labels import short_labels
from robustness.analysis.plot_layout import check_columns, new_figure, panel_grid, run_title
from robustness.schema.settings import parse_setting

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_flip_heatmap(flips: pd.DataFrame) -> Figure:
    """Heatmap, runs × layers, of the fraction of attacked examples whose layer-l prediction on the
    adversarial text differs from layer l's prediction on the original (blank: no classifier there)."""
    check_columns(flips, ["run", "layer", "flip_rate"])
    grid = flips.pivot_table(index="run", columns="layer", values="flip_rate", sort=False)
    grid = grid.reindex(columns=range(1, int(flips["layer"].max()) + 1))
    fig = new_figure(figsize=(2.0 + 0.7 * grid.shape[1] + 3, 1.2 + 0.4 * grid.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(grid.to_numpy(float)), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [run_title(run).replace("\n", " ") for run in grid.index])
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
    check_columns(transfers, ["dataset", "recipe", "goal", "source_model", "source_setting", "target_model",
                       "target_setting", "success_rate"])
    table = transfers.assign(source=transfers["source_model"] + "@" + transfers["source_setting"],
                             target=transfers["target_model"] + "@" + transfers["target_setting"])
    facets = sorted(set(zip(table["dataset"], table["recipe"], table["goal"], strict=True)))
    fig, axes = panel_grid(len(facets), width=5.5, height=4.0)
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
