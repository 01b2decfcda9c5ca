"""The attack record schema, now in :mod:`robustness.schema.records` (the contract between stages); re-exported
here so the former import path keeps working."""

from __future__ import annotations

from robustness.schema.records import (
    RECORD_FIELDS,
    SCHEMA_VERSION,
    V2_FIELDS,
    AttackRecord,
    Result,
    append_record,
    read_records,
    truncate_torn_tail,
    upgrade_record,
    validate_record,
)

__all__ = ["RECORD_FIELDS", "SCHEMA_VERSION", "V2_FIELDS", "AttackRecord", "Result", "append_record", "read_records",
           "truncate_torn_tail", "upgrade_record", "validate_record"]
