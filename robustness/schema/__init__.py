"""The contract between stages: what a run is, how a model exits, and what a run directory holds.

Data flows one way -- suite -> attack -> records -> analysis -> report -- and every stage reads what the one
before it wrote through this room, which imports none of them (and no torch, transformers or pandas):

* :mod:`~robustness.schema.settings` -- exit settings (:class:`Setting`, :func:`parse_setting`, :data:`POLICIES`)
  and the calibrated thresholds a model directory records (``calibration.json``);
* :mod:`~robustness.schema.specs` -- :class:`RunSpec` (one attack run), :class:`TransferSpec` (one replay),
  :class:`VerdictOptions`, the attack goals (:data:`GOALS`, :func:`check_goal`) and :func:`setting_order`;
* :mod:`~robustness.schema.records` -- the per-example record (:class:`AttackRecord`, each field documented),
  :data:`RECORD_FIELDS`, :data:`SCHEMA_VERSION`, and safe read/append of ``records.jsonl``;
* :mod:`~robustness.schema.rundir` -- a run directory's files (:data:`SPEC_FILE`, :data:`RUN_FILE`,
  :data:`RECORDS_FILE`) and their readers.
"""

from __future__ import annotations

from robustness.schema.records import (
    RECORD_FIELDS,
    SCHEMA_VERSION,
    AttackRecord,
    append_record,
    read_records,
    truncate_torn_tail,
    upgrade_record,
    validate_record,
)
from robustness.schema.rundir import (
    RECORDS_FILE,
    RUN_FILE,
    SPEC_FILE,
    check_record_count,
    is_run_dir,
    read_run_files,
    read_run_info,
    read_spec,
    spec_setting,
)
from robustness.schema.settings import POLICIES, THRESHOLD_POLICIES, Setting, parse_setting
from robustness.schema.specs import GOALS, RunSpec, TransferSpec, VerdictOptions, check_goal, setting_order

__all__ = [
    "GOALS", "POLICIES", "RECORDS_FILE", "RECORD_FIELDS", "RUN_FILE", "SCHEMA_VERSION", "SPEC_FILE",
    "THRESHOLD_POLICIES", "AttackRecord", "RunSpec", "Setting", "TransferSpec", "VerdictOptions", "append_record",
    "check_goal", "check_record_count", "is_run_dir", "parse_setting", "read_records", "read_run_files",
    "read_run_info", "read_spec", "setting_order", "spec_setting", "truncate_torn_tail", "upgrade_record",
    "validate_record",
]
