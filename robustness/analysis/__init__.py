"""Analysis of attack runs: loading (runs), metrics (each defined once), aggregation, tables, comparisons, plots.

``robustness.analysis.plots`` imports matplotlib and is not imported here.
"""

from __future__ import annotations

from robustness.analysis.aggregate import exit_table, flip_table, run_metrics, summarize
from robustness.analysis.compare import compare, findings, format_comparison, paired_test, select_run
from robustness.analysis.runs import Run, find_runs, load_run, load_runs
from robustness.analysis.tables import write_tables

__all__ = [
    "Run", "compare", "exit_table", "find_runs", "findings", "flip_table", "format_comparison", "load_run",
    "load_runs", "paired_test", "run_metrics", "select_run", "summarize", "write_tables",
]
