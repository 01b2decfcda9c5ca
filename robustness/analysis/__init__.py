"""Analysis of attack runs: metrics (each defined once), aggregation into tables, comparisons, plots.

``robustness.analysis.plots`` imports matplotlib and is not imported here.
"""

from __future__ import annotations

from robustness.analysis.aggregate import (
    Run,
    exit_table,
    find_runs,
    flip_table,
    load_run,
    load_runs,
    run_metrics,
    summarize,
    write_tables,
)
from robustness.analysis.compare import compare, findings, format_comparison, paired_test, select_run

__all__ = [
    "Run", "compare", "exit_table", "find_runs", "findings", "flip_table", "format_comparison", "load_run",
    "load_runs", "paired_test", "run_metrics", "select_run", "summarize", "write_tables",
]
