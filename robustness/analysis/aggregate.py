"""Run directories → per-setting metrics (DataFrames) and tables.

A run directory holds ``spec.json``, ``run.json`` and ``records.jsonl`` (see :mod:`robustness.attack.records`).
Numbers stay unrounded in DataFrames and CSV; only the Markdown tables are rounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustness.analysis import metrics as m
from robustness.attack.records import RECORD_FIELDS, read_records
from robustness.outputs import write_outputs
from robustness.provenance import read_json_object
from robustness.suite.specs import parse_setting, setting_order

#: What makes a setting: a stock-recipe run and an offline run of the same setting are two settings.
KEY = ["model_id", "head", "setting", "goal", "recipe", "dataset", "stock"]


@dataclass
class Run:
    """One loaded run: its spec, its run.json and its records (one row per example)."""

    path: Path
    spec: dict[str, Any]
    info: dict[str, Any]
    records: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.spec.get("run_id") or self.info.get("run_id") or self.path.name)

    @property
    def num_layers(self) -> int:
        return int(self.spec["num_layers"])

    @property
    def complete(self) -> bool:
        return self.info.get("status") == "complete"

    @property
    def setting(self) -> str:
        """Canonical exit setting label; a spec.json from before settings (``patience``) reads as patience."""
        return spec_setting(self.spec)

    @property
    def label(self) -> str:
        """Short readable run name, e.g. ``pabee-minilm patience:2 textfooler`` (``(stock)`` appended)."""
        stock = " (stock)" if self.spec.get("stock") else ""
        goal = "" if self.goal == "accuracy" else f" {self.goal}"
        return f"{self.spec['model_id']} {self.setting} {self.spec['recipe']}{goal}{stock}"

    @property
    def goal(self) -> str:
        """``accuracy`` (also for runs made before goals existed) or ``slowdown``."""
        return str(self.spec.get("goal") or "accuracy")

    @property
    def goal_target(self) -> int:
        """The exit layer a slowdown run had to reach (L unless set); L for accuracy runs, where reaching L
        is what the slowdown metrics measure."""
        return int(self.spec.get("goal_target") or self.num_layers)


def spec_setting(spec: dict[str, Any]) -> str:
    """The canonical setting label of a spec.json (``setting``, else the older ``patience`` field)."""
    return parse_setting(spec["setting"] if "setting" in spec else spec.get("patience")).label


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"not a run directory (missing {path.name}): {path.parent}")
    return read_json_object(path)


def load_run(run_dir: str | Path) -> Run:
    """Read one run directory; ``ValueError`` if spec.json/run.json are missing or invalid."""
    path = Path(run_dir)
    spec, info = _read_json(path / "spec.json"), _read_json(path / "run.json")
    missing = [k for k in ("model_id", "recipe", "dataset", "num_layers", "head") if k not in spec]
    if missing:
        raise ValueError(f"{path / 'spec.json'} lacks {', '.join(missing)}")
    if spec["head"] not in ("pabee", "full"):
        raise ValueError(f"{path / 'spec.json'}: head must be 'pabee' or 'full', got {spec['head']!r}")
    records = pd.DataFrame(read_records(path / "records.jsonl"), columns=list(RECORD_FIELDS))
    if records["example_id"].duplicated().any():
        raise ValueError(f"{path / 'records.jsonl'} has duplicate example_id values")
    _check_record_count(path, info, len(records))
    return Run(path=path, spec=spec, info=info, records=records)


def _check_record_count(path: Path, info: dict[str, Any], found: int) -> None:
    """A complete run must hold as many whole records as its run.json says (a torn or lost line is refused)."""
    expected = info.get("num_records")
    if info.get("status") == "complete" and isinstance(expected, int) and expected != found:
        raise ValueError(f"{path / 'records.jsonl'} holds {found} whole records but {path / 'run.json'} says "
                         f"{expected}: records were lost or torn; rerun the run with attack --overwrite")


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run directories under ``paths``: each may be a run dir, a ``runs/`` parent, or a suite out dir
    containing ``runs/``. Sorted, without duplicates; ``ValueError`` when nothing is found."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ValueError(f"not a directory: {path}")
        if (path / "spec.json").is_file():
            found.add(path.resolve())
            continue
        parent = path / "runs" if (path / "runs").is_dir() else path
        runs = [p.resolve() for p in parent.iterdir() if (p / "spec.json").is_file()]
        if not runs:
            raise ValueError(f"no run directories (with spec.json) in {path}")
        found.update(runs)
    if not found:
        raise ValueError("no run directories given")
    return sorted(found)


def load_runs(paths: str | Path | Iterable[str | Path], include_incomplete: bool = False) -> list[Run]:
    """Load every run under ``paths``; runs whose status is not ``complete`` are dropped unless
    ``include_incomplete`` (summaries then flag them in the ``complete`` column)."""
    runs = [load_run(p) for p in find_runs(paths)]
    runs = [r for r in runs if r.spec.get("kind") != "transfer"]  # replays: robustness.analysis.transfer
    kept = [r for r in runs if include_incomplete or r.complete]
    if not kept:
        raise ValueError(f"none of the {len(runs)} runs is complete (pass include_incomplete to see them)")
    return kept


def validate_runs(runs: Sequence[Run]) -> None:
    """Refuse a run set that cannot be summarised as one: runs of a dataset drawing different samples (split,
    n, seed, or an example id mapped to another dataset index), or several runs of one setting (see
    :data:`KEY`). Raises ``ValueError`` naming the runs."""
    by_dataset: dict[str, dict[tuple, list[str]]] = {}
    for run in runs:
        sample = (run.spec.get("split"), run.spec.get("n"), run.spec.get("seed"))
        by_dataset.setdefault(run.spec["dataset"], {}).setdefault(sample, []).append(run.run_id)
    for dataset, samples in by_dataset.items():
        if len(samples) > 1:
            described = "; ".join(f"split={k[0]} n={k[1]} seed={k[2]}: {', '.join(v)}" for k, v in samples.items())
            raise ValueError(f"runs on {dataset} draw different samples, report them separately ({described})")
        indices: dict[int, tuple[int, str]] = {}
        for run in (r for r in runs if r.spec["dataset"] == dataset):
            for example_id, index in zip(run.records["example_id"], run.records["dataset_index"], strict=True):
                seen = indices.setdefault(int(example_id), (int(index), run.run_id))
                if seen[0] != int(index):
                    raise ValueError(f"runs {seen[1]} and {run.run_id} map example {example_id} to different "
                                     f"{dataset} examples ({seen[0]} vs {index})")
    keys = pd.DataFrame([{**{k: r.spec.get(k) for k in KEY}, "setting": r.setting, "goal": r.goal,
                          "stock": bool(r.spec.get("stock", False)), "run_id": r.run_id} for r in runs])
    dup = keys[keys.astype(str).duplicated(KEY, keep=False)]
    if len(dup):
        raise ValueError(f"several runs share a setting, pass run directories explicitly: {', '.join(dup['run_id'])}")


def run_metrics(records: pd.DataFrame, num_layers: int, seed: int = 0, target: int | None = None
                ) -> dict[str, float]:
    """Every metric of :mod:`robustness.analysis.metrics` for one run's records (unrounded).

    Proportions carry exact (Clopper-Pearson) 95% intervals, mean queries a BCa bootstrap interval. The exit
    columns are paired: ``orig_*`` and ``adv_*`` cover the same attacked examples, so ``exit_shift`` =
    ``adv_mean_exit_layer`` − ``orig_mean_exit_layer``."""
    results = list(records["result"])
    attacked = records[records["result"] != "skipped"]
    won = records[records["result"] == "succeeded"]
    labels = list(records["label"])
    clean = m.clean_correct(list(records["orig_pred"]), labels)
    kept = m.still_correct(list(records["orig_pred"]), list(records["adv_pred"]), labels)
    row: dict[str, float] = {
        "n": len(records), "succeeded": len(won), "failed": len(attacked) - len(won),
        "skipped": m.skipped_count(results),
        "original_accuracy": m.proportion(clean), "accuracy_under_attack": m.proportion(kept),
        "attack_success_rate": m.attack_success_rate(results),
    }
    for name, hits, total in (("original_accuracy", clean.sum(), len(clean)),
                              ("accuracy_under_attack", kept.sum(), len(kept)),
                              ("attack_success_rate", len(won), len(attacked))):
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = m.proportion_ci(int(hits), int(total))
    row["mean_queries"] = m.mean_or_nan(list(attacked["num_queries"]))
    row["mean_queries_ci_low"], row["mean_queries_ci_high"] = m.bootstrap_mean_ci(list(attacked["num_queries"]),
                                                                                  seed=seed)
    row["mean_forward_passes"] = m.mean_or_nan(list(attacked["num_forward_passes"]))
    # deployed cost (NaN for v1 records, which did not record it) and what this process encoded
    row["mean_layers_computed"] = m.mean_or_nan(list(attacked["layers_computed"]))
    row["mean_layers_encoded"] = m.mean_or_nan(list(attacked["layers_encoded"]))
    row["mean_query_exit_layer"] = m.mean_or_nan(list(attacked["query_mean_exit_layer"]))
    row["words_perturbed"] = m.words_perturbed(list(won["words_changed"]), list(won["words_total"]))
    orig_exits, adv_exits = list(attacked["orig_exit_layer"]), list(attacked["adv_exit_layer"])
    row["orig_mean_exit_layer"] = m.mean_exit_layer(orig_exits)
    row["adv_mean_exit_layer"] = m.mean_exit_layer(adv_exits)
    row["exit_shift"] = row["adv_mean_exit_layer"] - row["orig_mean_exit_layer"]
    row["orig_speedup"] = m.layer_speedup(num_layers, row["orig_mean_exit_layer"])
    row["adv_speedup"] = m.layer_speedup(num_layers, row["adv_mean_exit_layer"])
    row["orig_efficacy"] = m.efficacy(orig_exits, num_layers)
    row["adv_efficacy"] = m.efficacy(adv_exits, num_layers)
    attacked_labels = list(attacked["label"])
    for prefix, preds, gold in (("clean", list(records["orig_layer_preds"]), labels),
                                ("adv", list(attacked["adv_layer_preds"]), attacked_labels)):
        rates = m.overthinking(preds, gold)._asdict()
        row.update({f"{prefix}_{name}": value for name, value in rates.items()})
    row["rescued_rate"], row["hurt_rate"] = m.exit_vs_last_layer(
        list(attacked["adv_layer_preds"]), list(attacked["adv_pred"]), attacked_labels)
    row.update(slowdown_metrics(records, num_layers, target or num_layers))
    return row


def slowdown_metrics(records: pd.DataFrame, num_layers: int, target: int) -> dict[str, float]:
    """Efficiency under attack over all n examples (any goal, so accuracy and slowdown attacks compare):
    clean and final mean exit, mean exit increase, slowdown success rate (exit ≥ ``target``), efficiency
    gain left and accuracy at the actual exit (:mod:`robustness.analysis.metrics`)."""
    orig, adv = list(records["orig_exit_layer"]), list(records["adv_exit_layer"])
    clean_mean, final_mean = m.mean_exit_layer(orig), m.mean_exit_layer(list(m.final_exits(orig, adv)))
    return {
        "goal_target": target, "clean_mean_exit_all": clean_mean, "final_mean_exit_all": final_mean,
        "mean_exit_increase": m.mean_exit_increase(orig, adv),
        "slowdown_success_rate": m.slowdown_success_rate(adv, target),
        "efficiency_gain_left": m.efficiency_gain_left(num_layers, clean_mean, final_mean),
        "accuracy_at_exit": m.accuracy_at_exit(list(records["orig_pred"]), list(records["adv_pred"]),
                                               list(records["label"])),
    }


def summarize(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per setting (model_id, head, setting, recipe, dataset, stock) with every metric, CI bounds, n
    and L; the run set is checked by :func:`validate_runs` first.

    ``setting`` is the canonical label (``patience:2``, ``entropy:0.35``, ``full``). Rows are sorted by
    dataset, recipe, head (baselines first), model and setting (:func:`~robustness.suite.specs.setting_order`)."""
    if not runs:
        raise ValueError("no runs to summarize")
    validate_runs(runs)
    rows = []
    for run in runs:
        spec = run.spec
        row: dict[str, Any] = {k: spec.get(k) for k in KEY}
        row.update(setting=run.setting, goal=run.goal, stock=bool(spec.get("stock", False)), num_layers=run.num_layers,
                   split=spec.get("split"), seed=spec.get("seed"), n_requested=spec.get("n"),
                   query_budget=spec.get("query_budget"), run_id=run.run_id, complete=run.complete)
        row.update(run_metrics(run.records, run.num_layers, seed=int(spec.get("seed") or 0), target=run.goal_target))
        timings = run.info.get("timings") or {}
        row.update(wall_time_s=timings.get("wall_time_s"), attack_time_s=timings.get("attack_time_s"))
        rows.append(row)
    df = pd.DataFrame(rows)
    ranks = {label: i for i, label in enumerate(setting_order(df["setting"]))}
    order = df.assign(_base=df["head"] != "full", _p=df["setting"].map(ranks))
    order = order.sort_values(["dataset", "recipe", "_base", "model_id", "_p", "goal"])
    return df.loc[order.index].reset_index(drop=True)


def exit_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Long table of exit-layer distributions: run_id, run (readable run name), setting (exit setting label),
    goal, layer, clean_frac and adv_frac, both over the attacked examples (paired: the original and the adversarial
    text of the same examples)."""
    rows = []
    for run in runs:
        attacked = run.records[run.records["result"] != "skipped"]
        clean = m.exit_distribution(list(attacked["orig_exit_layer"]), run.num_layers)
        adv = m.exit_distribution(list(attacked["adv_exit_layer"]), run.num_layers)
        for layer in range(run.num_layers):
            rows.append({"run_id": run.run_id, "run": run.label, "setting": run.setting, "goal": run.goal,
                         "layer": layer + 1, "clean_frac": clean[layer], "adv_frac": adv[layer]})
    return pd.DataFrame(rows, columns=["run_id", "run", "setting", "goal", "layer", "clean_frac", "adv_frac"])


def flip_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Long table: run_id, run, setting, layer, flip_rate over attacked examples (a single-head model's only
    prediction is placed at layer L)."""
    rows = []
    for run in runs:
        attacked = run.records[run.records["result"] != "skipped"]
        rates = m.flip_rates(list(attacked["orig_layer_preds"]), list(attacked["adv_layer_preds"]))
        first = run.num_layers - len(rates) + 1
        for offset, rate in enumerate(rates):
            rows.append({"run_id": run.run_id, "run": run.label, "setting": run.setting, "layer": first + offset,
                         "flip_rate": rate})
    return pd.DataFrame(rows, columns=["run_id", "run", "setting", "layer", "flip_rate"])


# --- tables ---------------------------------------------------------------------------------------------------

_SETTING = [("model_id", "model"), ("head", "head"), ("setting", "setting"), ("goal", "goal"),
            ("recipe", "recipe"), ("dataset", "dataset")]
_CI = ("original_accuracy", "accuracy_under_attack", "attack_success_rate")
#: table name -> (column, header) pairs shown in the rounded Markdown / HTML views.
VIEWS: dict[str, list[tuple[str, str]]] = {
    "summary": _SETTING + [
        ("n", "n"), ("num_layers", "L"), ("original_accuracy", "clean acc [95% CI]"),
        ("accuracy_under_attack", "acc under attack [95% CI]"), ("attack_success_rate", "success rate [95% CI]"),
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
        ("n", "n"), ("num_layers", "L"), ("goal_target", "target"), ("clean_mean_exit_all", "clean exit"),
        ("final_mean_exit_all", "exit under attack"), ("mean_exit_increase", "exit increase"),
        ("slowdown_success_rate", "slowdown success"), ("efficiency_gain_left", "efficiency gain left"),
        ("accuracy_at_exit", "acc at exit"), ("mean_query_exit_layer", "query exit layer"),
        ("mean_layers_computed", "deployed layers"),
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
    """A rounded, all-string view of ``summary`` for Markdown/HTML (rates with CIs as ``x [lo, hi]``)."""
    if name not in VIEWS:
        raise ValueError(f"unknown table {name!r}; choose from {sorted(VIEWS)}")
    out = pd.DataFrame(index=summary.index)
    for column, header in VIEWS[name]:
        cells = [format_value(v) for v in summary[column]]
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
