"""Two runs side by side: every metric, the delta (b − a), and exact McNemar tests on paired examples.

Examples are paired by ``example_id``; two runs that disagree on the ``dataset_index`` of an id drew
different samples and cannot be paired.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from robustness.analysis import metrics as m
from robustness.analysis.aggregate import run_metrics
from robustness.analysis.runs import Run, load_run
from robustness.analysis.tables import format_value, markdown_table
from robustness.schema.settings import parse_setting
from robustness.schema.specs import setting_order

#: Metrics shown by :func:`compare`, in order.
COMPARED = (
    "n", "original_accuracy", "accuracy_under_attack", "attack_success_rate", "skipped", "mean_queries",
    "mean_forward_passes", "mean_layers_computed", "mean_layers_encoded", "mean_query_exit_layer",
    "words_perturbed", "orig_mean_exit_layer", "adv_mean_exit_layer", "exit_shift", "orig_speedup", "adv_speedup",
    "orig_efficacy", "adv_efficacy", "clean_destructive", "clean_destructive_of_wrong", "clean_wasteful",
    "adv_destructive", "adv_destructive_of_wrong", "adv_wasteful", "rescued_rate", "hurt_rate",
)

#: Paired binary outcome per metric: (per-record outcome, restrict to examples attacked in both runs).
_OUTCOMES = {
    "original_accuracy": ("correct on the clean text", False),
    "accuracy_under_attack": ("still correct after the attack", False),
    "attack_success_rate": ("attack succeeded", True),
}


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def _outcome(records: pd.DataFrame, metric: str) -> list[bool]:
    if metric == "original_accuracy":
        return list(m.clean_correct(list(records["orig_pred"]), list(records["label"])))
    if metric == "accuracy_under_attack":
        return list(m.still_correct(list(records["orig_pred"]), list(records["adv_pred"]), list(records["label"])))
    return list(records["result"] == "succeeded")


def select_run(runs: list[Run], model_id: str, setting: int | str | None, recipe: str | None = None,
               dataset: str | None = None) -> Run:
    """The one run of ``runs`` with this model and exit setting (any form ``parse_setting`` reads: ``2``,
    ``patience:2``, ``entropy:0.35``, ``full``/None), optionally narrowed by recipe and dataset; ``ValueError``
    when none or several match."""
    wanted = parse_setting(setting).label
    matches = [r for r in runs if r.spec["model_id"] == model_id and r.setting == wanted
               and recipe in (None, r.spec["recipe"]) and dataset in (None, r.spec["dataset"])]
    if len(matches) != 1:
        found = ", ".join(r.run_id for r in matches) or "none"
        raise ValueError(f"need exactly one run for {model_id} at setting {wanted}, found {found}")
    return matches[0]


_PAIRED = ["label", "result", "orig_pred", "adv_pred"]


def paired_records(a: Run, b: Run) -> pd.DataFrame:
    """The records of runs ``a`` and ``b`` joined on ``example_id`` (columns ``<field>_a`` / ``<field>_b``);
    ``ValueError`` when an id maps to different dataset examples (the runs drew different samples)."""
    columns = ["example_id", "dataset_index", *_PAIRED]
    both = a.records[columns].merge(b.records[columns], on="example_id", suffixes=("_a", "_b"))
    if (both["dataset_index_a"] != both["dataset_index_b"]).any():
        raise ValueError(f"runs {a.run_id} and {b.run_id} drew different examples for the same example_id")
    return both


def paired_test(a: Run, b: Run, metric: str) -> m.McNemar:
    """Exact McNemar test of ``metric``'s per-example outcome between runs ``a`` and ``b``.

    original_accuracy / accuracy_under_attack compare "correct (before / after attack)" over all shared
    example ids; attack_success_rate compares "attack succeeded" over ids attacked (not skipped) in both."""
    if metric not in _OUTCOMES:
        raise ValueError(f"no paired test for {metric!r}; choose from {sorted(_OUTCOMES)}")
    both = paired_records(a, b)
    if _OUTCOMES[metric][1]:
        both = both[(both["result_a"] != "skipped") & (both["result_b"] != "skipped")]
    return m.mcnemar_exact(*(_outcome(both[[f"{c}_{side}" for c in _PAIRED]].set_axis(_PAIRED, axis=1), metric)
                             for side in ("a", "b")))


def compare(a: Run | str | Path, b: Run | str | Path) -> pd.DataFrame:
    """Metrics of runs ``a`` and ``b`` with ``delta = b − a``; rows with a paired outcome also carry the
    exact McNemar ``p_value`` and ``paired_n`` (examples in the test). Run ids are in ``df.attrs``."""
    run_a, run_b = _as_run(a), _as_run(b)
    if run_a.path.resolve() == run_b.path.resolve():
        raise ValueError(f"comparing run {run_a.path} with itself; give two different runs")
    if run_a.spec.get("dataset") != run_b.spec.get("dataset"):
        raise ValueError(f"runs use different datasets: {run_a.spec.get('dataset')} vs {run_b.spec.get('dataset')}")
    values_a = run_metrics(run_a.records, run_a.num_layers, seed=int(run_a.spec.get("seed") or 0))
    values_b = run_metrics(run_b.records, run_b.num_layers, seed=int(run_b.spec.get("seed") or 0))
    rows = []
    for metric in COMPARED:
        va, vb = float(values_a[metric]), float(values_b[metric])
        row = {"metric": metric, "a": va, "b": vb, "delta": vb - va, "p_value": math.nan, "paired_n": math.nan}
        if metric in _OUTCOMES:
            test = paired_test(run_a, run_b, metric)
            row.update(p_value=test.p_value, paired_n=test.n, only_a=test.only_a, only_b=test.only_b)
        rows.append(row)
    df = pd.DataFrame(rows, columns=["metric", "a", "b", "delta", "p_value", "paired_n", "only_a", "only_b"])
    df.attrs.update(a=run_a.run_id, b=run_b.run_id, a_label=run_a.label, b_label=run_b.label)
    return df


def format_comparison(df: pd.DataFrame) -> str:
    """Markdown rendering of :func:`compare`'s table (rounded), headed by the two run ids."""
    shown = df.copy()
    for column in ("paired_n", "only_a", "only_b"):
        shown[column] = [format_value(int(v)) if v == v else "" for v in shown[column]]
    shown["p_value"] = ["" if v != v else f"{v:.3g}" for v in shown["p_value"]]
    header = f"a = {df.attrs.get('a', 'a')}\nb = {df.attrs.get('b', 'b')}\n\n"
    return header + markdown_table(shown)


# --- findings: sentences generated from the numbers --------------------------------------------------------


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def _rate(row: pd.Series, metric: str = "attack_success_rate") -> str:
    return f"{_pct(row[metric])} [95% CI {_pct(row[f'{metric}_ci_low'])}–{_pct(row[f'{metric}_ci_high'])}]"


def _setting(row: pd.Series) -> str:
    if row["head"] == "full":
        return f"baseline {row['model_id']}"
    return f"{row['model_id']} at {row['setting']}"


#: A setting that gives one class to at least this share of its clean texts is flagged as near-constant.
NEAR_CONSTANT_SHARE = 0.95


def _near_constant(where: str, rows: pd.DataFrame, runs: dict[str, Run]) -> list[str]:
    """Flag settings whose clean predictions are (nearly) one class: an attack cannot flip a constant
    classifier, so their low success rate is not robustness."""
    out = []
    for _, row in rows.iterrows():
        share = runs[row["run_id"]].records["orig_pred"].value_counts(normalize=True).max()
        if share >= NEAR_CONSTANT_SHARE:
            out.append(f"{where}: {_setting(row)} predicts one class for {_pct(share)} of the clean texts (clean "
                       f"accuracy {_pct(row['original_accuracy'])}); its success rate of "
                       f"{_pct(row['attack_success_rate'])} reflects a near-constant classifier, not robustness.")
    return out


def _facet_findings(where: str, rows: pd.DataFrame, runs: dict[str, Run]) -> list[str]:
    rated = rows[rows["attack_success_rate"].notna()]
    if rated.empty:
        return [f"{where}: no example was attacked (every clean prediction was already wrong)."]
    low = rated.loc[rated["attack_success_rate"].idxmin()]
    high = rated.loc[rated["attack_success_rate"].idxmax()]
    if low["attack_success_rate"] == high["attack_success_rate"]:
        out = [f"{where}: the attack success rate is {_pct(low['attack_success_rate'])} in all {len(rated)} settings."]
    else:
        out = [f"{where}: the lowest attack success rate is {_rate(low)} for {_setting(low)}; the highest is "
               f"{_rate(high)} for {_setting(high)}."]
    pabee = rated[rated["head"] != "full"]
    for model, group in pabee.groupby("model_id", sort=True):
        if len(group) > 1:
            ranks = {label: i for i, label in enumerate(setting_order(group["setting"]))}
            first, last = group.assign(_r=group["setting"].map(ranks)).sort_values("_r").iloc[[0, -1]].itertuples()
            out.append(f"{where}, {model}: from {first.setting} to {last.setting} the success rate goes from "
                       f"{_pct(first.attack_success_rate)} to {_pct(last.attack_success_rate)}, deployed layers per "
                       f"attacked example (Σ exit layers of its queries) from {first.mean_layers_computed:.1f} to "
                       f"{last.mean_layers_computed:.1f}, TextAttack queries from {first.mean_queries:.1f} to "
                       f"{last.mean_queries:.1f}.")
    out += _near_constant(where, rated, runs)
    shifts = pabee[pabee["exit_shift"].notna() & (pabee["exit_shift"] != 0)]
    if not shifts.empty:
        row = shifts.loc[shifts["exit_shift"].abs().idxmax()]
        side = "later" if row["exit_shift"] > 0 else "earlier"
        out.append(f"{where}: the largest exit shift is for {_setting(row)}: adversarial texts exit "
                   f"{abs(row['exit_shift']):.2f} layers {side} than their clean versions (efficacy "
                   f"{row['orig_efficacy']:.2f} clean vs {row['adv_efficacy']:.2f} adversarial).")
    over = pabee.dropna(subset=["clean_destructive", "adv_destructive"])
    if not over.empty:
        row = over.loc[over["adv_destructive"].idxmax()]
        out.append(f"{where}: destructive overthinking peaks at {_pct(row['adv_destructive'])} on adversarial texts "
                   f"({_setting(row)}; {_pct(row['clean_destructive'])} on its clean texts). Early exit rescued up "
                   f"to {_pct(over['rescued_rate'].max())} of attacked examples, and the attack relied on it (hurt) "
                   f"for up to {_pct(over['hurt_rate'].max())}. On adversarial texts these are consequences of "
                   "the attack optimising the exit prediction, not independent evidence of robustness.")
    return out


def findings(summary: pd.DataFrame, runs: list[Run]) -> list[str]:
    """Descriptive sentences about the numbers of ``summary``, per (dataset, recipe): extremes of the success
    rate, setting trends, near-constant settings, exit shift and overthinking; plus sample-size and
    completeness caveats. The conclusion itself is :mod:`robustness.analysis.verdict`'s."""
    if summary.empty:
        raise ValueError("no settings to report")
    by_id = {run.run_id: run for run in runs}
    out: list[str] = []
    for (dataset, recipe), rows in summary.groupby(["dataset", "recipe"], sort=True):
        out += _facet_findings(f"{recipe} on {dataset}", rows, by_id)
    widths = (summary["attack_success_rate_ci_high"] - summary["attack_success_rate_ci_low"]).dropna()
    if not widths.empty:
        low, high = int(summary["n"].min()), int(summary["n"].max())
        sizes = f"Every run has {low} examples" if low == high else f"Runs have {low} to {high} examples"
        out.append(f"{sizes}; success-rate CIs are up to {100 * widths.max():.1f} percentage points wide, so "
                   "smaller differences are not resolved.")
    if "complete" in summary and not summary["complete"].all():
        out.append(f"{int((~summary['complete']).sum())} run(s) are incomplete; their numbers cover only the "
                   "examples recorded so far.")
    return out


def slowdown_findings(summary: pd.DataFrame) -> list[str]:
    """One sentence per slowdown run: success rate, exit increase, efficiency gain left and accuracy at the
    exit, beside the accuracy attack's exit increase and gain left on the same model, setting and recipe."""
    out = []
    slow = summary[summary["goal"] == "slowdown"]
    accuracy = summary[summary["goal"] == "accuracy"].set_index(["dataset", "recipe", "model_id", "setting"])
    for _, row in slow.iterrows():
        key = (row["dataset"], row["recipe"], row["model_id"], row["setting"])
        where = f"{row['recipe']} on {row['dataset']}, {row['model_id']} at {row['setting']}"
        if row["clean_mean_exit_all"] >= row["goal_target"]:  # e.g. patience L-1: the last layer anyway
            out.append(f"{where}: every example exits at layer {int(row['goal_target'])} or later on clean text "
                       f"already (mean {row['clean_mean_exit_all']:.2f}): there is no efficiency gain to attack.")
            continue
        score = row.get("slowdown_score")
        guided = f" ({score} score)" if isinstance(score, str) and score != "exit" else ""
        text = (f"{where}: the slowdown attack{guided} "
                f"brings {_pct(row['slowdown_success_rate'])} of the attacked examples to layer "
                f"{int(row['goal_target'])}; the mean exit over all {int(row['n'])} examples goes from "
                f"{row['clean_mean_exit_all']:.2f} to {row['final_mean_exit_all']:.2f} "
                f"({row['mean_exit_increase']:+.2f} layers), leaving {_pct(row['efficiency_gain_left'])} of the "
                f"clean efficiency gain; accuracy at the actual exit {_pct(row['accuracy_at_exit'])}.")
        if key in accuracy.index:
            acc = accuracy.loc[key]
            acc = acc.iloc[0] if isinstance(acc, pd.DataFrame) else acc
            text += (f" The accuracy attack on the same setting moves the exit by {acc['mean_exit_increase']:+.2f} "
                     f"layers and leaves {_pct(acc['efficiency_gain_left'])} of the gain.")
        out.append(text)
    return out
