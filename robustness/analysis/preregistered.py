"""The verdict's reading of a pre-registered selection rule (``[verdict] select``,
:mod:`robustness.schema.selection`): the setting the rule chose, for one early-exit model and its baseline, on the
same clean table (accuracy on the selection set) that decides the verdict's eligibility. bench applied the same
rule to the same table before any attack and recorded its choice in ``selection.json``."""

from __future__ import annotations

import dataclasses

import pandas as pd

from robustness.schema.selection import select_setting
from robustness.schema.specs import VerdictOptions

__all__ = ["registered_options"]


def registered_options(options: VerdictOptions, clean: pd.DataFrame | None, model_id: str,
                       baseline_id: str) -> tuple[VerdictOptions, dict | None]:
    """The options comparing ``model_id`` with ``baseline_id`` is judged by: without a select rule, ``options``
    itself; with one, ``options`` with the rule's setting as the pre-registered ``setting``. When no setting
    qualifies (or ``clean`` lacks the two models), ``options`` unchanged (the verdict then treats no setting as
    confirmatory) and the verdict row to report instead: ``no_eligible_setting`` with the reason."""
    rule = options.select
    if rule is None:
        return options, None
    rows = pd.DataFrame() if clean is None else clean[clean["model_id"] == model_id]
    base = pd.DataFrame() if clean is None else clean[(clean["model_id"] == baseline_id) & (clean["setting"] == "full")]
    if not len(rows) or not len(base):
        reason = (f"the select rule {rule} needs clean accuracy on the selection set of {model_id} and "
                  f"{baseline_id} (bench's clean/*.csv)")
    else:
        chosen = select_setting(rule, rows.to_dict(orient="records"), float(base["accuracy"].iloc[0]),
                                options.margin)
        if chosen is not None:
            return dataclasses.replace(options, setting=chosen, select=None), None
        reason = (f"by the select rule {rule}, no patience setting is within {100 * options.margin:g} points of the "
                  f"baseline's clean accuracy on the selection set")
    return options, {"setting": "", "eligible": False, "verdict": "no_eligible_setting", "reason_ineligible": reason}
