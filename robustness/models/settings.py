"""Exit settings, now in :mod:`robustness.schema.settings` (the contract between stages); re-exported here so
the former import path keeps working."""

from __future__ import annotations

from robustness.schema.settings import (
    CALIBRATION_FILE,
    POLICIES,
    THRESHOLD_POLICIES,
    Setting,
    calibrated_setting,
    check_setting_reachable,
    parse_setting,
    read_calibration,
    resolve_calibrated,
)

__all__ = ["CALIBRATION_FILE", "POLICIES", "THRESHOLD_POLICIES", "Setting", "calibrated_setting",
           "check_setting_reachable", "parse_setting", "read_calibration", "resolve_calibrated"]
