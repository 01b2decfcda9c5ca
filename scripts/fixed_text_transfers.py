"""Analysis (not a test): targets compared on one source's fixed adversarial texts.

Every complete accuracy-goal transfer under the given folders whose source model is ``--source`` is one target
(model @ setting). For each recipe: the transfer success rate, the accuracy under the transferred attack (all n
examples on the texts the source fixed; :func:`robustness.analysis.metrics.still_correct`) and, paired example by
example with the ``--reference`` target on the same texts, the exact McNemar p-value
(:func:`robustness.analysis.compare.paired_test`, as ``robustness compare`` tests it), unadjusted and Holm-adjusted
over every comparison printed (one exploratory family). Prints a markdown table.

    python scripts/fixed_text_transfers.py reports/v3-sst2-mpnet/records reports/v3-sst2-mpnet/exploratory-transfers \
        --source full-mpnet --reference pabee-mpnet@full
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from robustness.analysis.compare import paired_test
from robustness.analysis.runs import load_run
from robustness.analysis.transfer import find_transfers, transfer_table
from robustness.schema.specs import setting_order


def fixed_text_table(paths: list[str], source: str, reference: str) -> pd.DataFrame:
    """One row per (recipe, target) of ``source``'s accuracy transfers, with the paired test against ``reference``
    (``MODEL@SETTING``); ``ValueError`` when a recipe lacks the reference target."""
    table = transfer_table(paths)
    table = table[(table["source_model"] == source) & (table["goal"] == "accuracy")]
    if table.empty:
        raise ValueError(f"no complete accuracy transfer from {source} under {', '.join(paths)}")
    runs = {run.run_id: run for run in map(load_run, find_transfers(paths))}
    table = table.assign(target=table["target_model"] + "@" + table["target_setting"])
    rows = []
    for recipe, group in table.groupby("recipe", sort=True):
        ref = group[group["target"] == reference]
        if ref.empty:
            raise ValueError(f"{recipe}: no transfer from {source} to the reference {reference}")
        ref_run = runs[ref["run_id"].iloc[0]]
        order = setting_order(group["target_setting"])
        for _, row in group.sort_values("target_setting", key=lambda s: s.map(order.index)).iterrows():
            test = (None if row["target"] == reference  # paired by example id, on the same sample
                    else paired_test(runs[row["run_id"]], ref_run, "accuracy_under_attack"))
            rows.append({"recipe": recipe, "target": row["target"], "replayed": row["replayed"],
                         "transfer_success": row["success_rate"], "accuracy_under_attack": row["accuracy_under_attack"],
                         "only_target_right": None if test is None else test.only_a,
                         "only_reference_right": None if test is None else test.only_b,
                         "p_value": np.nan if test is None else test.p_value})
    out = pd.DataFrame(rows)
    tested = out["p_value"].notna()
    out["p_holm"] = np.nan
    if tested.any():
        out.loc[tested, "p_holm"] = multipletests(out.loc[tested, "p_value"], method="holm")[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="suite outputs or packed folders holding transfers/")
    parser.add_argument("--source", required=True, help="the source model id of the transfers")
    parser.add_argument("--reference", required=True, help="MODEL@SETTING every other target is paired with")
    args = parser.parse_args()
    table = fixed_text_table(args.paths, args.source, args.reference)
    print(table.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
