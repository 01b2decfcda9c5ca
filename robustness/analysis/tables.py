"""The summary as tables: the rounded views (:data:`VIEWS`) shown in Markdown and HTML, :func:`format_value`
for one number, and the files of ``tables/`` (CSV unrounded, Markdown rounded), written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustness.analysis.equivalence import folded
from robustness.outputs import write_outputs

__all__ = ["VIEWS", "format_value", "markdown_table", "table_files", "view", "write_tables"]

_SETTING = [("model_id", "model"), ("head", "head"), ("setting", "setting"), ("goal", "goal"),
            ("recipe", "recipe"), ("dataset", "dataset")]
_CI = ("original_accuracy", "accuracy_under_attack", "attack_success_rate", "strict_accuracy_under_attack",
       "strict_attack_success_rate")
#: Shown only when some row has them (runs re-validated by ``robustness revalidate``).
_OPTIONAL = ("strict_accuracy_under_attack", "strict_attack_success_rate")
#: table name -> (column, header) pairs shown in the rounded Markdown / HTML views.
VIEWS: dict[str, list[tuple[str, str]]] = {
    "summary": _SETTING + [
        ("n", "n"), ("num_layers", "L"), ("original_accuracy", "clean acc [95% CI]"),
        ("accuracy_under_attack", "acc under attack [95% CI]"),
        ("strict_accuracy_under_attack", "strict acc under attack [95% CI]"),
        ("attack_success_rate", "success rate [95% CI]"), ("strict_attack_success_rate", "strict success [95% CI]"),
        ("skipped", "skipped"), ("mean_queries", "queries"), ("mean_forward_passes", "forward passes"),
        ("mean_layers_computed", "deployed layers"), ("mean_layers_encoded", "layers encoded"),
        ("mean_query_exit_layer", "query exit layer"), ("words_perturbed", "words perturbed"),
    ],
    "exits": _SETTING + [
        ("orig_mean_exit_layer", "clean exit"), ("adv_mean_exit_layer", "adv exit"), ("exit_shift", "shift"),
        ("orig_speedup", "clean speed-up"), ("adv_speedup", "adv speed-up"), ("orig_efficacy", "clean efficacy"),
        ("adv_efficacy", "adv efficacy"),
    ],
    "slowdown": _SETTING + [
        ("slowdown_score", "score"), ("n", "n"), ("num_layers", "L"), ("goal_target", "target"),
        ("clean_mean_exit_all", "clean exit"),
        ("final_mean_exit_all", "exit under attack"), ("mean_exit_increase", "exit increase"),
        ("slowdown_success_rate", "slowdown success"), ("efficiency_gain_left", "efficiency gain left"),
        ("accuracy_at_exit", "acc at exit"), ("mean_query_exit_layer", "query exit layer"),
        ("mean_layers_computed", "deployed layers"),
    ],
    # WAFFLE's efficacy split by attack outcome; "under attack" = the final text (adversarial where attacked)
    "efficacy": _SETTING + [
        ("slowdown_score", "score"), ("num_layers", "L"), ("n", "n"), ("clean_efficacy_all", "clean, all"),
        ("final_efficacy_all", "under attack, all"),
        ("succeeded", "succeeded"), ("clean_efficacy_succeeded", "clean, succeeded"),
        ("final_efficacy_succeeded", "under attack, succeeded"),
        ("failed", "failed"), ("clean_efficacy_failed", "clean, failed"),
        ("final_efficacy_failed", "under attack, failed"),
        ("skipped", "skipped"), ("clean_efficacy_skipped", "clean = under attack, skipped"),
    ],
    "overthinking": _SETTING + [
        ("clean_destructive", "clean destructive"), ("clean_destructive_of_wrong", "clean destructive / wrong"),
        ("clean_wasteful", "clean wasteful"), ("adv_destructive", "adv destructive"),
        ("adv_destructive_of_wrong", "adv destructive / wrong"), ("adv_wasteful", "adv wasteful"),
        ("rescued_rate", "rescued"),
        ("hurt_rate", "hurt"),
    ],
}


def format_value(value: Any) -> str:
    """Render one number for humans: n/a for missing, ints as ints, floats with 3 decimals (1 if ≥ 100)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def view(summary: pd.DataFrame, name: str) -> pd.DataFrame:
    """A rounded, all-string view of ``summary`` for Markdown/HTML (rates with CIs as ``x [lo, hi]``). A summary
    with ``same_as`` (:func:`~robustness.analysis.equivalence.fold_equivalent`) shows its folded rows once, the
    setting written ``a = b``."""
    if name not in VIEWS:
        raise ValueError(f"unknown table {name!r}; choose from {sorted(VIEWS)}")
    if "same_as" in summary and "setting_shown" not in summary:
        summary = folded(summary)
    out = pd.DataFrame(index=summary.index)
    for column, header in VIEWS[name]:
        if column in _OPTIONAL and (column not in summary or summary[column].isna().all()):
            continue
        shown = "setting_shown" if column == "setting" and "setting_shown" in summary else column
        cells = [format_value(v) for v in summary[shown]]
        if column in _CI:
            lows, highs = summary[f"{column}_ci_low"], summary[f"{column}_ci_high"]
            cells = [c if c == "n/a" else f"{c} [{format_value(lo)}, {format_value(hi)}]"
                     for c, lo, hi in zip(cells, lows, highs, strict=True)]
        out[header] = cells
    if "stock" in summary and summary["stock"].any():
        out.insert(len(_SETTING), "stock", [format_value(bool(v)) for v in summary["stock"]])
    if "complete" in summary and not summary["complete"].all():
        out["complete"] = [format_value(bool(v)) for v in summary["complete"]]
    return out.reset_index(drop=True)


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub Markdown table of ``df`` (values rendered with :func:`format_value`)."""
    def cell(value: Any) -> str:
        return (value if isinstance(value, str) else format_value(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(str(c)) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def table_files(summary: pd.DataFrame, extra: dict[str, pd.DataFrame] | None = None) -> dict[str, bytes]:
    """``tables/summary.csv`` (every column, unrounded), summary/exits/overthinking .md (rounded views) and
    ``extra`` long tables (e.g. exit distributions) as CSV: relative path -> content."""
    if summary.empty:
        raise ValueError("summary table is empty")
    files = {"tables/summary.csv": summary.to_csv(index=False).encode()}
    for name in VIEWS:
        files[f"tables/{name}.md"] = markdown_table(view(summary, name)).encode()
    for name, table in (extra or {}).items():
        files[f"tables/{name}.csv"] = table.to_csv(index=False).encode()
    return files


def write_tables(summary: pd.DataFrame, out_dir: str | Path, extra: dict[str, pd.DataFrame] | None = None,
                 overwrite: bool = False) -> dict[str, Path]:
    """Write :func:`table_files` into ``out_dir`` (atomically; a foreign file is replaced only with
    ``overwrite``). Returns file name -> path."""
    written = write_outputs(out_dir, table_files(summary, extra), overwrite=overwrite)
    return {Path(k).name: v for k, v in written.items()}
