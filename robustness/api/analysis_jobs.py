"""The jobs of the façade (:mod:`robustness.api`) on finished runs: ``quality`` and ``revalidate`` score their
adversarial texts, ``aggregate`` computes (and writes) the tables, ``report`` writes the report with the verdict,
``pack`` copies a bench output into a compressed, self-contained one."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustness.jobs import PathLike, check_counts, located, revalidate_runs, score_quality

if TYPE_CHECKING:
    import pandas as pd

    from robustness.analysis.runs import Run
    from robustness.schema.packing import Packed

__all__ = ["Tables", "aggregate", "pack", "quality", "report", "revalidate"]

Paths = PathLike | Iterable[PathLike]


def _quiet(line: str) -> None:
    """The default ``log``: says nothing."""


def _paths(runs: Paths) -> list[Path]:
    return [Path(runs)] if isinstance(runs, str | os.PathLike) else [Path(r) for r in runs]


def quality(runs: Paths, *, lm: PathLike | None = None, batch_size: int | None = None, device: str = "auto",
            resources: PathLike | None = None, log: Callable[[str], Any] | None = None) -> dict[Path, int]:
    """Score the adversarial texts of every run under ``runs`` (perplexity under the causal ``lm``, similarity
    under the sentence encoder) into ``<run>/quality.jsonl``, resuming; returns run dir -> texts newly scored.
    ``batch_size`` None: 16 on the CPU, 64 on a GPU."""
    from robustness.analysis.runs import find_runs
    from robustness.devices import check_device

    check_counts(batch_size=batch_size)
    check_device(device)
    paths, _ = located(resources, lm=lm)
    run_dirs = find_runs(_paths(runs))
    if not run_dirs:
        raise ValueError(f"no runs under {' '.join(map(str, _paths(runs)))}")
    return score_quality(run_dirs, paths["lm"], batch_size, device=device, log=log)


def revalidate(runs: Paths, *, preset: str = "morris2020", lm: PathLike | None = None,
               sentence_encoder: PathLike | None = None, batch_size: int = 16, nltk_data: PathLike | None = None,
               lexicons: PathLike | None = None, cache_dir: PathLike | None = None,
               resources: PathLike | None = None, progress: bool = False, log: Callable[[str], Any] | None = None
               ) -> dict[Path, int]:
    """Re-check the successful adversarial texts of every run under ``runs`` against the ``preset``'s strict
    constraints (:mod:`robustness.revalidate`) into ``<run>/revalidation.jsonl``, resuming; returns run dir ->
    texts newly re-checked."""
    from robustness.analysis.runs import find_runs
    from robustness.revalidate import check_preset

    check_preset(preset)  # before anything loads
    check_counts(batch_size=batch_size)
    paths, _ = located(resources, lm=lm, nltk_data=nltk_data, lexicons=lexicons)
    run_dirs = find_runs(_paths(runs))
    if not run_dirs:
        raise ValueError(f"no runs under {' '.join(map(str, _paths(runs)))}")
    return revalidate_runs(run_dirs, preset, lm=paths["lm"], lexicons=paths["lexicons"],
                           nltk_data=paths["nltk_data"], cache_dir=cache_dir, sentence_encoder=sentence_encoder,
                           batch_size=batch_size, progress=progress, log=log)


@dataclasses.dataclass
class Tables:
    """What :func:`aggregate` computed (and wrote, with ``out``): the summary (one row per setting), the other
    tables by name (``exits``, ``flips``, ``quality`` when scored), the files written, and the runs left out
    because they are not complete."""

    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    paths: dict[str, Path]
    left_out: list[Run]


def aggregate(runs: Paths, *, out: PathLike | None = None, overwrite: bool = False,
              log: Callable[[str], Any] | None = None) -> Tables:
    """The tables of the complete runs under ``runs`` (run dirs, ``runs/`` folders or suite outputs), written to
    ``<out>/tables/`` when ``out`` is given (a file not written by robustness is replaced only with
    ``overwrite``). Each run left out (not complete) and each file written is said to ``log``."""
    from robustness.analysis.aggregate import exit_table, flip_table, summarize
    from robustness.analysis.quality import quality_table
    from robustness.analysis.revalidation import revalidation_table
    from robustness.analysis.runs import load_runs
    from robustness.analysis.tables import write_tables

    found = load_runs(_paths(runs), include_incomplete=True)
    complete = [r for r in found if r.complete]
    if not complete:
        raise ValueError(f"no complete runs under {' '.join(map(str, _paths(runs)))}")
    left_out = [r for r in found if not r.complete]
    for run in left_out:
        (log or _quiet)(f"left out {run.run_id}: status {run.info.get('status') or 'unknown'}, "
                        f"{len(run.records)} records")
    summary = summarize(complete)
    extra = {"exits": exit_table(complete), "flips": flip_table(complete)}
    scored = quality_table(complete)
    if not scored.empty:
        extra["quality"] = scored
    strict = revalidation_table(summary)
    if not strict.empty:  # runs re-validated (robustness revalidate)
        extra["revalidation"] = strict
    written = write_tables(summary, Path(out), extra=extra, overwrite=overwrite) if out is not None else {}
    for path in written.values():
        (log or _quiet)(f"wrote {path}")
    return Tables(summary=summary, tables=extra, paths=written, left_out=left_out)


def report(runs: Paths, *, out: PathLike, overwrite: bool = False, margin: float | None = None,
           min_n: int | None = None, alpha: float | None = None, setting: Any = None,
           clean_eval: Sequence[PathLike] | None = None, command: str | None = None,
           equivalence_margin: float | None = None) -> tuple[Path, Path]:
    """Tables, figures, ``report.md`` and a self-contained ``report.html`` of the runs under ``runs`` into
    ``out``; returns ``(report.md, report.html)``. The verdict is judged by the options recorded in the
    ``verdict.json`` of ``runs`` (a suite output or packed folder, or its ``runs/``: what bench's report was
    judged by; :mod:`robustness.schema.verdict_file`), each replaced by the keyword given here (None: not given):
    ``margin``/``min_n``/``alpha`` (defaults 0.01, 100, 0.05), the pre-registered ``setting`` (replacing a
    recorded setting or select rule; default: Holm-adjusted over every eligible setting) and equivalence margin
    δ ``equivalence_margin`` (default 0.05); two verdict.json files that disagree on an option not given are a
    ``ValueError``. The report's provenance says where the options came from. ``clean_eval``: clean tables off
    the attack sample (default: the ``clean/`` folder beside each ``runs/``)."""
    from robustness.report import write_report
    from robustness.schema.verdict_file import resolve_verdict_options

    check_counts(min_n=min_n)
    sources = _paths(runs)
    options, where = resolve_verdict_options(sources, {
        "margin": margin, "min_n": min_n, "alpha": alpha, "setting": setting,
        "equivalence_margin": equivalence_margin})
    clean = None
    if clean_eval:
        from robustness.analysis.clean_tables import read_clean_tables

        clean = read_clean_tables([Path(p) for p in clean_eval])
    return write_report(sources, Path(out), provenance={"command": command, "verdict options": where},
                        verdict_options=options, clean=clean, overwrite=overwrite)


def pack(out: PathLike, *, into: PathLike, overwrite: bool = False) -> Packed:
    """Copy the finished runs, transfers, triggers and clean tables of the bench output ``out`` into the new
    directory ``into``, every ``.jsonl`` gzipped (:mod:`robustness.schema.packing`); ``aggregate`` and ``report``
    read ``into`` as they read ``out``. Returns what was packed (runs per part, sizes before and after)."""
    from robustness.schema.packing import pack_output

    return pack_output(Path(out), Path(into), overwrite=overwrite)
