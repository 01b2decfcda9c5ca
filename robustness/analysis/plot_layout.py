"""What every plot of :mod:`robustness.analysis.plots` and :mod:`robustness.analysis.heatmaps` is drawn with:
Agg figures that touch no pyplot state, facet grids, one legend per figure below the panels, CI error bars, one
line and one colour per (series, policy family), and the exit-setting categories and tick labels.

The exit setting is a category on the x axis, in :func:`~robustness.schema.specs.setting_order`: patience
ascending, entropy and max-probability thresholds, then "full" (full depth) last.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustness.analysis.plot_labels import FAMILY_NAMES, family_rank, short_label, short_labels
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


#: Facet grids wrap after this many columns, so figures stay legible with 10+ recipes.
MAX_COLUMNS = 4


def check_columns(df: pd.DataFrame, columns: list[str]) -> None:
    """ValueError for an empty table or one that lacks any of ``columns``."""
    if df.empty:
        raise ValueError("cannot plot an empty table")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks columns: {', '.join(missing)}")


def facets_of(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, recipe) pairs of a summary table, sorted: one panel each."""
    return sorted(set(zip(summary["dataset"], summary["recipe"], strict=True)))


def new_figure(**options: Any) -> Figure:
    """A new Agg-rendered figure. matplotlib is imported here, when a plot is made, not with this module: a
    suite's start-up (``validate_suite`` reads the report's file names) does not pay for it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    FigureCanvasAgg(figure)  # draw() and text extents work without pyplot
    return figure


def panel_grid(count: int, width: float = 5.0, height: float = 3.6, ncols: int = 3) -> tuple[Figure, list]:
    """A constrained-layout figure of ``count`` panels (``width`` x ``height`` inches each), ``ncols`` to a row
    but never more than :data:`MAX_COLUMNS`, and its axes in reading order."""
    ncols = max(1, min(ncols, MAX_COLUMNS, count))
    nrows = math.ceil(count / ncols)
    fig = new_figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(count)]
    return fig, axes


def figure_legend(fig: Figure, axes: list) -> None:
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


def ci_yerr(rows: pd.DataFrame, metric: str) -> np.ndarray | None:
    """matplotlib's ``yerr`` (distances below and above, >= 0) from ``<metric>_ci_low/high``; None without them."""
    low, high = f"{metric}_ci_low", f"{metric}_ci_high"
    if low not in rows:
        return None
    values = rows[metric].to_numpy(float)
    return np.vstack([values - rows[low].to_numpy(float), rows[high].to_numpy(float) - values]).clip(min=0)


def family_series(rows: pd.DataFrame, series: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(legend label, rows) per series and policy family of the early-exit rows, models sorted, families in
    :data:`~robustness.schema.settings.POLICIES` order: one line per family."""
    groups = []
    for name, group in rows[rows["head"] != "full"].groupby([*series, "family"], sort=True):
        *keys, fam = np.atleast_1d(name).astype(str)
        groups.append((family_rank(fam), keys, f"{' / '.join(keys)} · {FAMILY_NAMES[fam]}", group))
    return [(label, group) for _, _, label, group in sorted(groups, key=lambda g: (g[1], g[0]))]


def line_palette(rows: pd.DataFrame, series: list[str]) -> dict[str, str]:
    """One colour per legend label over the whole figure (the same line has the same colour in every panel)."""
    labels = [label for label, _ in family_series(rows, series)]
    bases = rows[rows["head"] == "full"]
    labels += [" / ".join(str(b[s]) for s in series) + " (baseline)" for _, b in bases.iterrows()]
    return {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}


def setting_categories(rows: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The x categories of the early-exit rows in :func:`setting_order` (patience ascending, entropy, max-prob,
    full) and the short label (:func:`short_labels`) of every setting and folded display name among them."""
    pabee = rows[rows["head"] != "full"]
    order = setting_order(pabee["setting"]) or ["full"]
    return order, short_labels([*order, *pabee["setting_shown"]])


def setting_ticks(rows: pd.DataFrame, order: list[str], labels: dict[str, str]) -> list[str]:
    """One panel's tick labels: a setting as this panel shows it (``full = patience 5``, the pair on two lines),
    ``(folded)`` after a setting folded into another point of this panel."""
    pabee = rows[rows["head"] != "full"]
    shown = dict(zip(pabee["setting"], pabee["setting_shown"], strict=True))
    folded_here = {a for also in pabee["also"] for a in str(also).split(" = ") if a}
    ticks = [labels[shown[s]] if s in shown else f"{labels[s]} (folded)" if s in folded_here else labels[s]
             for s in order]
    return [tick.replace(" = ", "\n= ") for tick in ticks]


def run_title(run: str) -> str:
    """A run label (``model setting recipe``) as a panel title: the model on its own line, settings shortened."""
    model, _, rest = run.partition(" ")
    rest = re.sub(r"\b(?:patience|entropy|maxprob):[0-9.eE+-]+", lambda m: short_label(m.group(0)), rest)
    return f"{model}\n{rest}"
