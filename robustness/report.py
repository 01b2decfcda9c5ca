"""Run directories → ``tables/``, ``figures/``, ``report.md`` and a self-contained ``report.html``.

The report is built as a list of sections of blocks (paragraph, list, table, figure, code) and rendered
twice by :mod:`robustness.rendering`: Markdown (figures linked from ``figures/``) and HTML (figures embedded as
base64 PNG, inline CSS, no external resources). The sections that only some run sets have (Slowdown, Transfer,
Quality) are built in :mod:`robustness.report_sections`. Every finding is a sentence generated from the numbers
of the runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from robustness import callable_module
from robustness.analysis import plots
from robustness.analysis.aggregate import exit_table, flip_table, summarize
from robustness.analysis.clean_tables import find_clean_tables
from robustness.analysis.compare import findings
from robustness.analysis.equivalence import fold_note, fold_rows, folded
from robustness.analysis.quality import quality_table
from robustness.analysis.revalidation import revalidation_table
from robustness.analysis.runs import Run, load_runs
from robustness.analysis.tables import VIEWS, table_files, view
from robustness.analysis.transfer import transfer_table
from robustness.analysis.triggers import trigger_table
from robustness.analysis.verdict import VerdictOptions, exploratory_finding, verdict_findings, verdict_tables
from robustness.outputs import check_output_dir, refuse_foreign, write_outputs
from robustness.rendering import MARKER, Block, figure_block, render_html, render_markdown
from robustness.report_sections import (
    quality_blocks,
    revalidation_blocks,
    slowdown_section,
    transfer_section,
    trigger_section,
)
from robustness.requests import check_verdict_setting

FIGURES = [  # name, function input, function, caption
    ("success_vs_setting", "summary", plots.plot_success_vs_setting,
     "Attack success rate against the exit setting (exact 95% CIs; descriptive: each setting is attacked on the "
     "examples it classifies correctly, a different subset per setting); dashed lines and bands: full-depth "
     "baselines."),
    ("cost_vs_setting", "summary", plots.plot_cost_vs_setting,
     "Attack cost: TextAttack queries (cache hits included; BCa bootstrap 95% CIs) and deployed layers per attacked "
     "example (Σ over its queried texts of their exit layer at the setting)."),
    ("tradeoff", "summary", plots.plot_tradeoff,
     "Accuracy under attack (over all n) against layer speed-up (L / mean exit layer) on the clean and the "
     "adversarial texts of the attacked examples."),
    ("exit_histograms", "exits", plots.plot_exit_histograms,
     "Exit-layer distributions of the attacked examples, their clean vs their adversarial texts."),
    ("overthinking", "summary", plots.plot_overthinking,
     "Destructive and wasteful overthinking as Kaya et al. (2019) compute it, on clean and adversarial texts; on "
     "adversarial texts a consequence of the attack optimising the exit prediction, not independent evidence."),
    ("flip_heatmap", "flips", plots.plot_flip_heatmap,
     "Per-layer flip rate: attacked examples whose layer-l prediction changes under the adversarial text."),
]

#: The extra long tables of a report (beside summary.csv and the VIEWS' .md files).
EXTRA_TABLES = ("exit_distribution", "flip_rates", "verdict", "verdict_candidates")
#: Written when runs carry quality records (robustness quality).
QUALITY_TABLE = "quality"
#: Written when runs were re-validated (robustness revalidate): raw and strict metrics side by side.
REVALIDATION_TABLE = "revalidation"
#: Figures of the Slowdown section (beside FIGURES).
SLOWDOWN_FIGURES = ("slowdown_exits", "efficiency_left")


def report_outputs() -> list[str]:
    """Every file (relative to the output directory) a report may write."""
    tables = ["tables/summary.csv", *(f"tables/{name}.md" for name in VIEWS),
              *(f"tables/{name}.csv" for name in (*EXTRA_TABLES, QUALITY_TABLE, REVALIDATION_TABLE, "transfer",
                                                  "triggers"))]
    figures = [*(name for name, *_ in FIGURES), *SLOWDOWN_FIGURES, "transfer_matrix"]
    return [*tables, *(f"figures/{name}.png" for name in figures), "report.md", "report.html"]


def check_report_out(out: str | Path, overwrite: bool = False, names: Iterable[str] | None = None) -> None:
    """``out`` can hold a report, and none of ``names`` (default: every file a report may write) is foreign
    there (written by something else, or edited since; a report.md/html carrying our marker counts as ours).
    Called before any work, and again with the exact files just before writing them. ``ValueError``."""
    out = Path(out)
    if overwrite:
        check_output_dir(out)
        return
    ours = {name for name in ("report.md", "report.html")
            if (out / name).is_file() and MARKER in (out / name).read_text(encoding="utf-8", errors="replace")[:2000]}
    refuse_foreign(out, [name for name in (names or report_outputs()) if name not in ours], overwrite=False)


def _fold_runs(table: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """The rows of the runs in ``names`` (run_id -> shown setting), their run label naming that setting."""
    kept = table[table["run_id"].isin(names)]
    return kept.assign(run=[run.replace(f" {setting} ", f" {names[run_id]} ", 1) for run, setting, run_id in zip(
        kept["run"], kept["setting"], kept["run_id"], strict=True)])


def _figures(summary: pd.DataFrame, exits: pd.DataFrame, flips: pd.DataFrame) -> list[Block]:
    """The main figures; with a folded summary (``same_as``) the runs folded into another are left out of the
    per-run figures too, and a folded run's panel is named ``a = b``."""
    if "same_as" in summary:
        shown = folded(summary)
        names = dict(zip(shown["run_id"], shown["setting_shown"], strict=True))
        exits, flips = (_fold_runs(t, names) for t in (exits, flips))
    inputs = {"summary": summary, "exits": exits, "flips": flips}
    return [figure_block(name, caption, function(inputs[source]))
            for name, source, function, caption in FIGURES if not inputs[source].empty]


def _provenance(runs: list[Run], provenance: dict[str, Any] | None) -> list[Block]:
    blocks: list[Block] = []
    if provenance:
        blocks.append(("list", [f"{k}: {v}" for k, v in provenance.items()]))
    versions = sorted({json.dumps(r.info.get("versions") or {}, sort_keys=True) for r in runs})
    for text in versions:
        blocks.append(("p", "Versions: " + (", ".join(f"{k} {v}" for k, v in json.loads(text).items()) or "unknown")))
    table = pd.DataFrame([{
        "run_id": r.run_id, "status": r.info.get("status"), "seed": r.info.get("seed", r.spec.get("seed")),
        "n": r.spec.get("n"), "records": len(r.records), "started_at": r.info.get("started_at"),
        "finished_at": r.info.get("finished_at"), "wall_time_s": (r.info.get("timings") or {}).get("wall_time_s"),
    } for r in runs])
    blocks.append(("table", table))
    blocks.append(("p", "Commands that produced the runs:"))
    blocks.append(("code", "\n".join(f"# {r.run_id}\n{r.info.get('command') or '(no command recorded)'}"
                                     for r in runs)))
    blocks.append(("details", ("Run specs (spec.json)", json.dumps({r.run_id: r.spec for r in runs}, indent=1))))
    return blocks


#: The summary lists at most this many verdict sentences; the verdict table below it has every row.
MAX_SUMMARY_FINDINGS = 10

#: The equivalence test and the power of each comparison (verdict and candidates views).
EQUIVALENCE_VIEW = [("ci_low", "diff CI low (points)"), ("ci_high", "diff CI high (points)"),
                    ("tost_p_value", "TOST p"), ("tost_p_adjusted", "TOST p (Holm)"),
                    ("mdd", "MDD at 80% power (points)")]

#: Rounded view of the verdict table: (column, header).
VERDICT_VIEW = [("dataset", "dataset"), ("recipe", "recipe"), ("model", "model"), ("baseline", "baseline"),
                ("setting", "setting"), ("verdict", "verdict"), ("n", "n"),
                ("accuracy_under_attack", "acc under attack"),
                ("baseline_accuracy_under_attack", "baseline acc under attack"), ("p_value", "p"),
                ("p_adjusted", "p (Holm)"), *EQUIVALENCE_VIEW, ("clean_accuracy", "clean acc"),
                ("baseline_clean_accuracy", "baseline clean acc"), ("reason_ineligible", "why not eligible")]


#: Rounded view of the candidates table (every setting's eligibility and test).
CANDIDATES_VIEW = [("dataset", "dataset"), ("recipe", "recipe"), ("model", "model"), ("baseline", "baseline"),
                   ("setting", "setting"), ("role", "role"), ("eligible", "eligible"),
                   ("reason_ineligible", "why not eligible"),
                   ("clean_accuracy", "clean acc"), ("baseline_clean_accuracy", "baseline clean acc"),
                   ("clean_off_sample", "clean off sample"), ("n", "n"), ("accuracy_under_attack", "acc under attack"),
                   ("baseline_accuracy_under_attack", "baseline acc under attack"), ("p_value", "p"),
                   ("p_adjusted", "p (Holm)"), *EQUIVALENCE_VIEW]


#: The secondary endpoint's columns, shown when some row has them (runs re-validated).
SECONDARY_VIEW = [("strict_accuracy_under_attack", "strict acc under attack (secondary)"),
                  ("baseline_strict_accuracy_under_attack", "baseline strict acc under attack"),
                  ("strict_p_value", "strict p (unadjusted)")]


def _verdict_view(verdict: pd.DataFrame, columns: list[tuple[str, str]] = VERDICT_VIEW) -> pd.DataFrame:
    if "strict_accuracy_under_attack" in verdict and verdict["strict_accuracy_under_attack"].notna().any():
        columns = [*columns, *SECONDARY_VIEW]
    shown = verdict.reindex(columns=[c for c, _ in columns])  # tables before the equivalence test lack some
    for column in ("p_value", "p_adjusted", "strict_p_value", "tost_p_value", "tost_p_adjusted"):
        if column not in shown:
            continue
        shown[column] = ["n/a" if v != v else f"{v:.3g}" for v in shown[column]]
    for column in ("ci_low", "ci_high", "mdd"):  # differences in accuracy, as signed points
        shown[column] = ["n/a" if v != v else f"{100 * v:{'' if column == 'mdd' else '+'}.1f}"
                         for v in shown[column]]
    for column in ("reason_ineligible", "setting"):
        shown[column] = shown[column].fillna("")
    return shown.set_axis([h for _, h in columns], axis=1)


def _left_out(runs: list[Run]) -> list[Block]:
    """Failed and partial runs, listed rather than dropped silently."""
    if not runs:
        return []
    table = pd.DataFrame([{
        "run_id": r.run_id, "status": r.info.get("status") or "unknown", "records": len(r.records),
        "n": r.spec.get("n"), "error": r.info.get("error") or "",
    } for r in runs])
    return [("p", f"{len(runs)} run(s) are not complete and are left out of every number above and below:"),
            ("table", table)]


def build_sections(runs: list[Run], summary: pd.DataFrame, figures: list[Block],
                   provenance: dict[str, Any] | None, verdict: pd.DataFrame | None = None,
                   options: VerdictOptions | None = None, left_out: list[Run] | None = None,
                   extra: list[tuple[str, list[Block]]] | None = None, candidates: pd.DataFrame | None = None,
                   ) -> list[tuple[str, list[Block]]]:
    """The report's content: (section title, blocks) pairs; the summary (verdict, runs left out) comes first,
    then the ``extra`` sections (e.g. slowdown)."""
    if verdict is None:
        verdict, candidates = verdict_tables(summary, runs, options)
    candidates = pd.DataFrame() if candidates is None else candidates
    datasets = ", ".join(sorted(set(summary["dataset"])))
    low, high = int(summary["n"].min()), int(summary["n"].max())
    sizes = f"{low} examples each" if low == high else f"{low} to {high} examples each"
    models, recipes = summary["model_id"].nunique(), summary["recipe"].nunique()
    intro = (f"{len(runs)} run{'s' * (len(runs) != 1)} on {datasets}: {models} model{'s' * (models != 1)}, "
             f"{recipes} recipe{'s' * (recipes != 1)}, {sizes}. Rates are fractions with exact (Clopper-Pearson) "
             "95% intervals; mean queries carry BCa bootstrap intervals; the exit layer counts layers 1..L.")
    tables = [("p", "Attack outcomes and cost per setting (queries count TextAttack cache hits; forward passes "
                    "and layers computed are what the model really ran). Accuracy under attack is over all n "
                    "examples; the success rate is over the attacked ones (a different subset per setting) and "
                    "is descriptive only."), ("table", view(summary, "summary")),
              ("p", "Exit depth on the attacked examples (clean and adversarial columns cover the same examples): "
                    "speed-up = L / mean exit layer; efficacy = normalised area under the CDF of exit layers (1: "
                    "all exit at layer 1, 0: all at layer L); shift = adversarial − clean mean exit."),
              ("table", view(summary, "exits")),
              ("p", "Overthinking as Kaya et al. (2019) compute it, on the last layer: destructive = the last "
                    "layer is wrong but an earlier one was right (share of all examples, and of those the last "
                    "layer gets wrong); wasteful = the earliest correct layer is before L. Rescued / hurt: attacked "
                    "examples where the exit prediction is right / wrong while the last layer is the opposite. On "
                    "adversarial texts all of these are consequences of the attack optimising the exit "
                    "prediction, not independent evidence. n/a for single-head baselines."),
              ("table", view(summary, "overthinking"))]
    if not candidates.empty:
        tables += [("p", "Every setting behind the verdict: eligibility (decided without attack outcomes) and the "
                         "exact McNemar test of accuracy under attack. Confirmatory tests (the pre-registered "
                         "setting's, else every eligible setting's) are Holm-adjusted as one family; with a "
                         "pre-registered setting every other comparison is exploratory, Holm-adjusted as a second "
                         "family, and never decides the verdict (tables/verdict_candidates.csv). Equivalence: a "
                         "paired TOST (two one-sided Tango score tests) of |difference| >= the pre-registered "
                         "margin, Holm-adjusted over the same families; diff CI = the (1 − 2α) Tango interval of "
                         "the difference in points (equivalent iff it lies within ±margin); MDD = the difference "
                         "McNemar's test detects with 80% power at this n and discordance (Connor 1987), in "
                         "points."),
                   ("table", _verdict_view(fold_rows(candidates, summary), CANDIDATES_VIEW))]
    lines = verdict_findings(verdict, options)
    explored = exploratory_finding(candidates, options)
    room = MAX_SUMMARY_FINDINGS - len(explored)
    if len(lines) > room:
        rest = len(lines) - room + 1
        lines = [*lines[:room - 1], f"... and {rest} more comparisons: see the verdict table below."]
    lines += explored
    note = fold_note(summary)
    summary_blocks: list[Block] = [("p", intro), *([("p", note)] if note else []), ("list", lines)]
    if not verdict.empty:
        summary_blocks.append(("table", _verdict_view(fold_rows(verdict, summary))))
    summary_blocks += _left_out(left_out or [])
    if note:
        tables.insert(0, ("p", note))
    shown = folded(summary) if "same_as" in summary else summary
    return [("Summary", summary_blocks), *(extra or []), ("Findings", [("list", findings(shown, runs))]),
            ("Tables", tables), ("Figures", figures), ("Provenance", _provenance(runs, provenance))]


def write_report(sources: str | Path | Iterable[str | Path], out_dir: str | Path,
                 provenance: dict[str, Any] | None = None, include_incomplete: bool = False,
                 title: str = "Adversarial robustness of early-exit models",
                 verdict_options: VerdictOptions | None = None, clean: pd.DataFrame | None = None,
                 overwrite: bool = False) -> tuple[Path, Path]:
    """Aggregate the runs under ``sources`` (run dirs, ``runs/`` folders or suite out dirs) and write
    ``tables/``, ``figures/``, ``report.md`` and ``report.html`` into ``out_dir``. The run set is validated
    (:func:`~robustness.analysis.runs.validate_runs`) before anything is written; runs that are not
    complete are listed in the report (and included only with ``include_incomplete``). ``clean`` is the
    verdict's clean evaluation off the attack sample (default: ``clean/*.csv`` beside the runs). The whole
    report is built in memory before the first file is written. Only those names are written (each
    atomically); nothing is deleted, and a file not written by robustness is never
    replaced without ``overwrite`` (:func:`check_report_out`)."""
    out = Path(out_dir)
    check_report_out(out, overwrite)
    found = load_runs(sources, include_incomplete=True)
    runs = [r for r in found if include_incomplete or r.complete]
    if not runs:
        raise ValueError(f"none of the {len(found)} runs is complete (pass include_incomplete to see them)")
    if verdict_options is not None:
        check_verdict_setting(verdict_options.setting, {r.setting for r in runs}, "--setting")
    summary = summarize(runs)  # with same_as: identical settings shown once; summary.csv keeps every run
    exits, flips = exit_table(runs), flip_table(runs)
    if clean is None:
        clean = find_clean_tables(sources)
    # the verdict, findings and main figures are about accuracy attacks; slowdown runs get their own section
    accuracy = summary[summary["goal"] == "accuracy"] if (summary["goal"] == "accuracy").any() else summary
    main_runs = [r for r in runs if r.run_id in set(accuracy["run_id"])]
    verdict, candidates = verdict_tables(accuracy, main_runs, verdict_options, clean)
    quality = quality_table(runs)
    revalidation = revalidation_table(summary)
    tables = dict(zip(EXTRA_TABLES, (exits, flips, verdict, candidates), strict=True))
    files = table_files(summary, extra={**tables, **({QUALITY_TABLE: quality} if not quality.empty else {})})
    left_out = [] if include_incomplete else [r for r in found if not r.complete]
    figures = _figures(accuracy, exits[exits["run_id"].isin(accuracy["run_id"])],
                       flips[flips["run_id"].isin(accuracy["run_id"])])
    transfers = transfer_table([sources] if isinstance(sources, str | Path) else sources)
    if not revalidation.empty:
        files[f"tables/{REVALIDATION_TABLE}.csv"] = revalidation.to_csv(index=False).encode()
    if not transfers.empty:
        files["tables/transfer.csv"] = transfers.to_csv(index=False).encode()
    triggers = trigger_table([sources] if isinstance(sources, str | Path) else sources, summary)
    if not triggers.empty:
        files["tables/triggers.csv"] = triggers.to_csv(index=False).encode()
    extra = slowdown_section(summary, exits)
    if not quality.empty:
        extra.append(("Quality of adversarial text", quality_blocks(main_runs, accuracy, quality)))
    if not revalidation.empty:
        extra.append(("Strict re-validation", revalidation_blocks(revalidation)))
    sections = build_sections(runs, accuracy, figures, provenance, verdict, verdict_options,
                              left_out=left_out, extra=[*extra, *transfer_section(transfers),
                                                         *trigger_section(triggers)],
                              candidates=candidates)
    files.update({f"figures/{name}.png": png for _, blocks in sections for kind, content in blocks
                  if kind == "figure" for name, _, png in [content]})
    files["report.md"] = render_markdown(title, sections).encode()
    files["report.html"] = render_html(title, sections).encode()
    check_report_out(out, overwrite, files)  # the exact files (sections other stages add included)
    written = write_outputs(out, files, overwrite=True)
    return written["report.md"], written["report.html"]


callable_module(__name__)  # ``rb.report(...)``: this module, called, writes a report (robustness.api.report)
