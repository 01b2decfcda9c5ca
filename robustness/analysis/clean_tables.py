"""Clean evaluation tables (``<out>/clean/*.csv``): one row per model and setting, measured off the attack
sample (on a study's selection set). The verdict judges eligibility on them and a select rule chooses its setting
on them; several suite outputs of one study may carry the same table, which is kept once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from robustness.schema.rundir import output_folders

#: Columns of a clean evaluation table (one row per model and setting, off the attack sample).
CLEAN_COLUMNS = ["model_id", "setting", "n", "accuracy", "min_class_recall", "max_pred_share"]


def read_clean_tables(paths: Sequence[Path]) -> pd.DataFrame:
    """Concatenate clean evaluation CSVs (columns :data:`CLEAN_COLUMNS`); ``ValueError`` naming a bad file."""
    tables = []
    for path in paths:
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError) as exc:  # ParserError, EmptyDataError, UnicodeDecodeError are ValueErrors
            message = " ".join(str(exc).split())[:120]
            raise ValueError(f"--clean-eval {path}: cannot read it as a clean evaluation table ({message})") from None
        missing = [c for c in CLEAN_COLUMNS if c not in table]
        if missing:
            raise ValueError(f"{path} lacks columns {', '.join(missing)}")
        tables.append(table.assign(_file=str(path)))
    return _one_row_per_setting(pd.concat(tables, ignore_index=True))


def _one_row_per_setting(table: pd.DataFrame) -> pd.DataFrame:
    """Several suite outputs of one study hold the same clean evaluation (same model, same excluded sample): keep
    one copy; two different measurements of one model and setting are a ``ValueError`` naming their files (the
    verdict must not pick one silently)."""
    values = [c for c in table.columns if c != "_file"]
    unique = table.drop_duplicates(subset=values)
    clash = unique[unique.duplicated(subset=["model_id", "setting"], keep=False)]
    if len(clash):
        first = clash.iloc[0]
        files = clash[(clash["model_id"] == first["model_id"]) & (clash["setting"] == first["setting"])]["_file"]
        raise ValueError(f"clean evaluation tables disagree on {first['model_id']} {first['setting']}: "
                         f"{' vs '.join(sorted(set(files)))}")
    return unique.drop(columns="_file").reset_index(drop=True)


def find_clean_tables(sources: str | Path | Iterable[str | Path]) -> pd.DataFrame | None:
    """The ``clean/*.csv`` tables of the suite outputs among ``sources`` (a suite out dir, or its ``runs/``)."""
    found = []
    for folder in output_folders(sources, parts=("runs",)):
        if (folder / "clean").is_dir():
            found += sorted((folder / "clean").glob("*.csv"))
    return read_clean_tables(found) if found else None
