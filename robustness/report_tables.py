"""A committed report refreshed from its tables alone, where its run directories are gone.

:func:`refresh_from_tables` reads ``tables/summary.csv`` (and ``exit_distribution.csv``, ``flip_rates.csv``,
``transfer.csv``, ``verdict*.csv`` where present), folds the settings of identical exits
(:mod:`robustness.analysis.equivalence`, deciding from the tables: every metric of the two rows equal), and
rewrites what can be rebuilt from those tables: the figures already in ``figures/``, the rounded ``tables/*.md``,
``summary.csv`` (every row kept, plus ``same_as``), and in ``report.md``/``report.html`` the figures, the summary
views, the verdict tables and a note naming the folded rows. Text built from the runs (findings, provenance) is
left as it was. A first-wave table (a ``patience`` column, no ``setting``) is read as patience settings.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from robustness.analysis import plots
from robustness.analysis.equivalence import fold_equivalent, fold_note, folded
from robustness.outputs import write_outputs
from robustness.provenance import figure_png

__all__ = ["FIGURE_ALIASES", "fold_html", "fold_markdown", "read_summary", "refresh_from_tables"]

#: First-wave figure names -> the function that draws them now.
FIGURE_ALIASES = {"success_vs_patience": "success_vs_setting", "cost_vs_patience": "cost_vs_setting"}


def read_summary(path: str | Path) -> pd.DataFrame:
    """``summary.csv`` as today's summary: a first-wave table's ``patience`` becomes ``setting`` (``patience:P`` or
    ``full``) and its goal ``accuracy``. ``ValueError`` when the file is missing or has neither column."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} not found; refresh needs the report's tables/summary.csv")
    summary = pd.read_csv(path)
    if "setting" not in summary:
        if "patience" not in summary:
            raise ValueError(f"{path} has neither a setting nor a patience column; is it a report's summary?")
        summary["setting"] = ["full" if pd.isna(p) else f"patience:{int(p)}" for p in summary["patience"]]
    if "goal" not in summary:
        summary["goal"] = "accuracy"
    if "same_as" in summary:
        summary["same_as"] = summary["same_as"].fillna("")
    return summary


def _runs_table(path: Path, summary: pd.DataFrame) -> pd.DataFrame:
    """exit_distribution / flip_rates with today's columns (first-wave: the run label was in ``setting``)."""
    table = pd.read_csv(path)
    if "run" not in table:
        table = table.rename(columns={"setting": "run"})
        table["setting"] = table["run_id"].map(dict(zip(summary["run_id"], summary["setting"], strict=True)))
    if "goal" not in table:
        table["goal"] = table["run_id"].map(dict(zip(summary["run_id"], summary["goal"], strict=True)))
    return table


def _figure_builders(summary: pd.DataFrame, tables: Path) -> dict[str, object]:
    shown = folded(summary)
    names = dict(zip(shown["run_id"], shown["setting_shown"], strict=True))
    accuracy = summary[summary["goal"] == "accuracy"] if (summary["goal"] == "accuracy").any() else summary

    def runs(name: str, goal: str) -> pd.DataFrame:
        table = _runs_table(tables / f"{name}.csv", summary)
        table = table[table["run_id"].isin(names) & (table["goal"] == goal)]
        return table.assign(run=[r.replace(f" {s} ", f" {names[i]} ", 1) for r, s, i in zip(
            table["run"], table["setting"], table["run_id"], strict=True)])

    return {
        "success_vs_setting": lambda: plots.plot_success_vs_setting(accuracy),
        "cost_vs_setting": lambda: plots.plot_cost_vs_setting(accuracy),
        "tradeoff": lambda: plots.plot_tradeoff(accuracy),
        "overthinking": lambda: plots.plot_overthinking(accuracy),
        "efficiency_left": lambda: plots.plot_efficiency_left(summary),
        "exit_histograms": lambda: plots.plot_exit_histograms(runs("exit_distribution", "accuracy")),
        "slowdown_exits": lambda: plots.plot_exit_histograms(runs("exit_distribution", "slowdown")),
        "flip_heatmap": lambda: plots.plot_flip_heatmap(runs("flip_rates", "accuracy")),
        "transfer_matrix": lambda: plots.plot_transfer_matrix(pd.read_csv(tables / "transfer.csv")),
    }


def _fold_map(summary: pd.DataFrame) -> tuple[dict[tuple, str], dict[tuple, str]]:
    """(dataset, recipe, model, goal, setting) of the folded rows -> the setting they fold into, and of the rows
    they fold into -> the settings folded in (`` = ``-joined)."""
    dropped, joined = {}, {}
    for r in summary[summary["same_as"] != ""].itertuples():
        dropped[(r.dataset, r.recipe, r.model_id, r.goal, r.setting)] = r.same_as
        key = (r.dataset, r.recipe, r.model_id, r.goal, r.same_as)
        joined[key] = " = ".join([*filter(None, [joined.get(key)]), r.setting])
    return dropped, joined


def _columns(header: list[str]) -> dict[str, int] | None:
    """Where a rendered table keeps dataset, recipe, model, setting (a first-wave table: patience) and goal; None
    if it lacks one of them."""
    names = {"model_id": "model"} if "setting" in header else {"model_id": "model", "patience": "setting"}
    where = {names.get(h, h): i for i, h in enumerate(header)}
    return where if {"dataset", "recipe", "model", "setting"} <= set(where) else None


def _fold_table(where: dict[str, int], rows: list[list[str]], fold: tuple[dict, dict]) -> list[list[str] | None]:
    """A rendered table's rows folded: None for a folded setting's row whose setting it folds into is in the same
    table, that row's setting written ``a = b``; every other row as it was (a folded row stays where the row it
    folds into is not shown, e.g. in the slowdown table)."""
    dropped, _ = fold

    def key(row: list[str]) -> tuple:
        setting = row[where["setting"]]
        setting = f"patience:{setting}" if setting.isdigit() else setting  # first-wave tables: patience only
        goal = row[where["goal"]] if "goal" in where else "accuracy"
        return (row[where["dataset"]], row[where["recipe"]], row[where["model"]], goal, setting)

    keys = [key(row) for row in rows]
    present = set(keys)
    into: dict[tuple, list[str]] = {}
    gone = set()
    for k in keys:
        if k in dropped and (*k[:4], dropped[k]) in present:
            gone.add(k)
            into.setdefault((*k[:4], dropped[k]), []).append(k[4])
    out: list[list[str] | None] = []
    for row, k in zip(rows, keys, strict=True):
        if k in gone:
            out.append(None)
        elif k in into:
            out.append([*row[:where["setting"]], " = ".join([row[where["setting"]], *into[k]]),
                        *row[where["setting"] + 1:]])
        else:
            out.append(row)
    return out


def fold_markdown(text: str, fold: tuple[dict, dict]) -> str:
    """Every Markdown table of ``text`` (as :func:`~robustness.analysis.tables.markdown_table` writes them) with
    the folded rows dropped and the rows they fold into named ``a = b``."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if not (lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---")):
            out.append(lines[i])
            i += 1
            continue
        end = i + 2
        while end < len(lines) and lines[end].startswith("| "):
            end += 1
        where = _columns([c.strip() for c in lines[i].strip()[2:-2].split(" | ")])
        out += lines[i:i + 2]
        rows = [line.strip()[2:-2].split(" | ") for line in lines[i + 2:end]]
        if where is None:
            out += lines[i + 2:end]
        else:
            out += ["| " + " | ".join(row) + " |" for row in _fold_table(where, rows, fold) if row is not None]
        i = end
    return "\n".join(out)


_TABLE = re.compile(r"<table><thead><tr>(.*?)</tr></thead><tbody>(.*?)</tbody></table>", re.S)
_CELL = re.compile(r"<td(?: class=\"text\")?>(.*?)</td>", re.S)


def fold_html(page: str, fold: tuple[dict, dict]) -> str:
    """Every table of ``report.html`` (as :mod:`robustness.rendering` writes them), folded as :func:`fold_markdown`."""
    def table(match: re.Match) -> str:
        where = _columns([html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", match.group(1))])
        if where is None:
            return match.group(0)
        rows = []
        raws = re.findall(r"<tr>(.*?)</tr>", match.group(2), re.S)
        plains = [[html.unescape(c) for c in _CELL.findall(raw)] for raw in raws]
        for raw, plain, row in zip(raws, plains, _fold_table(where, plains, fold), strict=True):
            if row is not None and row != plain:  # renamed: only its setting cell changes
                cells = list(_CELL.finditer(raw))[where["setting"]]
                raw = raw[:cells.start(1)] + html.escape(row[where["setting"]]) + raw[cells.end(1):]
            if row is not None:
                rows.append(f"<tr>{raw}</tr>")
        return f"<table><thead><tr>{match.group(1)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    return _TABLE.sub(table, page)


def refresh_from_tables(report_dir: str | Path, num_classes: int | None = None) -> dict[str, list[str]]:
    """Refresh ``report_dir`` (a report written by ``robustness report``) from its tables; ``num_classes``: the
    classes of every model (needed to fold max-prob into entropy; the tables do not record it before this
    version). Returns ``{"written": [...], "not_found": [...]}`` (blocks of the old text that were not found,
    left as they were)."""
    out = Path(report_dir)
    tables = out / "tables"
    old = read_summary(tables / "summary.csv").drop(columns="same_as", errors="ignore")
    summary = fold_equivalent(old, num_classes=num_classes)
    files: dict[str, bytes] = {"tables/summary.csv": summary.to_csv(index=False).encode()}
    md_path, html_path = out / "report.md", out / "report.html"
    md, page = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    missed: list[str] = []
    fold = _fold_map(summary)
    for path in sorted(tables.glob("*.md")):
        files[f"tables/{path.name}"] = fold_markdown(path.read_text(encoding="utf-8"), fold).encode()
    md, page = fold_markdown(md, fold), fold_html(page, fold)
    note = fold_note(summary)
    if note and note not in md:
        md = md.replace("## Tables\n\n", f"## Tables\n\n{note}\n\n", 1)
        page = page.replace("<h2>Tables</h2>\n", f"<h2>Tables</h2>\n<p>{html.escape(note)}</p>\n", 1)
    builders = _figure_builders(summary, tables)
    for path in sorted((out / "figures").glob("*.png")):
        builder = builders.get(FIGURE_ALIASES.get(path.stem, path.stem))
        if builder is None:
            missed.append(f"figure {path.name} (no function draws it)")
            continue
        png = figure_png(builder())
        files[f"figures/{path.name}"] = png
        data = base64.b64encode(png).decode("ascii")
        pattern = re.compile(f'(<img alt="{re.escape(path.stem)}" src="data:image/png;base64,)[^"]*(")')
        if not pattern.search(page):
            missed.append(f"report.html figure {path.stem}")
        page = pattern.sub(lambda m, data=data: m.group(1) + data + m.group(2), page)
    files["report.md"], files["report.html"] = md.encode(), page.encode()
    write_outputs(out, files, overwrite=True)
    return {"written": sorted(files), "not_found": missed}
