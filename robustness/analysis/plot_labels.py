"""What the figures call settings, how they group them, and how they keep their text apart.

* :func:`short_labels` -- setting labels for tick marks and annotations: ``patience 2``, ``entropy 0.0643``,
  ``max-prob 0.988``, ``full``; thresholds with the fewest significant digits (at least 3) that keep every label
  of a figure distinct (the tables keep the exact value). A folded row (``full = patience:5``) reads
  ``full = patience 5``.
* :func:`shown_rows` -- the rows a figure draws: the summary with settings of identical exits folded
  (:mod:`robustness.analysis.equivalence`), each with its family (``patience`` / ``entropy`` / ``maxprob`` /
  ``full``) and its display label.
* :func:`overlapping_texts` -- pairs of visible text artists of a drawn figure whose boxes overlap, and
  :func:`drop_overlapping` which hides annotations that would overlap text already placed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from robustness.analysis.equivalence import fold_equivalent, folded
from robustness.schema.settings import POLICIES, parse_setting

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = ["FAMILY_NAMES", "drop_overlapping", "family", "family_rank", "overlapping_texts", "short_label",
           "short_labels", "shown_rows", "texts_outside"]

#: Policy -> the name a legend gives its family of settings.
FAMILY_NAMES = {"patience": "patience", "entropy": "entropy", "maxprob": "max-prob", "full": "full depth"}


def family(setting: str) -> str:
    """The policy of a setting label (``patience``, ``entropy``, ``maxprob`` or ``full``)."""
    return parse_setting(setting).policy


def short_label(setting: str, digits: int = 3) -> str:
    """One setting (or a folded ``a = b``) for humans, thresholds to ``digits`` significant digits."""
    parts = []
    for label in str(setting).split(" = "):
        s = parse_setting(label)
        if s.policy == "full":
            parts.append("full")
        elif s.policy == "patience":
            parts.append(f"patience {s.value}")
        else:
            parts.append(f"{FAMILY_NAMES[s.policy]} {s.value:.{digits}g}")
    return " = ".join(parts)


def short_labels(settings: Iterable[str]) -> dict[str, str]:
    """Label -> :func:`short_label` with the fewest significant digits (>= 3) that keep all labels apart."""
    settings = list(dict.fromkeys(settings))
    for digits in range(3, 12):
        labels = {s: short_label(s, digits) for s in settings}
        if len(set(labels.values())) == len(labels):
            return labels
    return {s: s for s in settings}


def shown_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows a figure draws: :func:`~robustness.analysis.equivalence.folded` (folding first when the summary
    has no ``same_as`` column), plus ``family`` and ``shown`` (the category label: ``setting_shown`` where that
    setting of that model is folded alike in every row, else the setting)."""
    if "same_as" not in summary:
        summary = fold_equivalent(summary)
    rows = folded(summary)
    rows["family"] = [family(s) for s in rows["setting"]]
    variants = rows.groupby(["model_id", "setting"])["setting_shown"].nunique()
    rows["shown"] = [shown if variants[(m, s)] == 1 else s for m, s, shown in zip(
        rows["model_id"], rows["setting"], rows["setting_shown"], strict=True)]
    return rows


def family_rank(name: str) -> int:
    return POLICIES.index(name)


def _visible_texts(fig: Figure) -> list[Text]:
    """Every text the figure draws: tick labels of ticks inside their axis's view (matplotlib keeps labels of
    ticks outside it, undrawn), titles, axis labels, annotations, legend entries."""
    from matplotlib.text import Text

    ticks, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(1.0, abs(high - low))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update({id(tick.label1), id(tick.label2)})
                if low - slack <= tick.get_loc() <= high + slack:
                    drawn += [tick.label1, tick.label2]
    others = [t for t in fig.findobj(Text) if id(t) not in ticks]
    return [t for t in [*drawn, *others] if t.get_visible() and t.get_text().strip()]


def overlapping_texts(fig: Figure, pad: float = 0.0) -> list[tuple[str, str]]:
    """Pairs ``(text, text)`` of visible, non-empty text artists of ``fig`` (tick labels, annotations, titles,
    axis labels, legend entries) whose window extents overlap, after drawing the figure."""
    fig.canvas.draw()
    renderer = fig._get_renderer()  # the canvas's (Agg) renderer, as Figure.draw_without_rendering uses
    boxes = []
    for text in {id(t): t for t in _visible_texts(fig)}.values():
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((text.get_text(), box.expanded(1 + pad, 1 + pad)))
    return [(a, c) for i, (a, b) in enumerate(boxes) for c, d in boxes[i + 1:] if b.overlaps(d)]


def texts_outside(fig: Figure) -> list[str]:
    """Visible texts of ``fig`` that do not lie wholly inside the figure (clipped when saved), after drawing."""
    fig.canvas.draw()
    renderer = fig._get_renderer()
    frame = fig.bbox
    out = []
    for text in _visible_texts(fig):
        box = text.get_window_extent(renderer)
        if box.width > 0 and (box.x0 < frame.x0 - 0.5 or box.x1 > frame.x1 + 0.5 or box.y0 < frame.y0 - 0.5
                              or box.y1 > frame.y1 + 0.5):
            out.append(text.get_text())
    return out


def drop_overlapping(fig: Figure, annotations: list[Text]) -> None:
    """Hide, in order, every annotation whose box overlaps another visible text already kept (tick labels,
    titles and earlier annotations): labels are placed without overlap, the ones that would collide dropped."""
    fig.canvas.draw()
    renderer = fig._get_renderer()  # the canvas's (Agg) renderer, as Figure.draw_without_rendering uses
    pending = {id(a) for a in annotations}
    kept = [t.get_window_extent(renderer) for t in _visible_texts(fig) if id(t) not in pending]
    for annotation in annotations:
        box = annotation.get_window_extent(renderer)
        if any(box.overlaps(other) for other in kept):
            annotation.set_visible(False)
        else:
            kept.append(box)
