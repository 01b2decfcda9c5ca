"""Fixtures shared by the bench tests of one consistent selection (``test_selection.py``,
``test_selected_setting.py``): ten labelled reviews, and a bench command line that runs offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


@pytest.fixture(scope="session")
def reviews() -> list[str]:
    """Ten short reviews; ``write_sst2`` labels them 1, 0, 1, ..."""
    return ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
            "i have never been so bored", "warm and funny", "a tedious mess", "a joy from start to finish",
            "a waste of two hours", "smart , sharp and moving", "flat , predictable and long"]


@pytest.fixture(scope="session")
def offline_bench():
    """``argv(suite, out, data)``: bench on a local split with the offline NLTK data (skips without it)."""

    def argv(suite: Path, out: Path, data: Path) -> list[str]:
        if not (SHARED / "nltk_data").is_dir():
            pytest.skip(f"offline NLTK data not found under {SHARED}")
        return ["bench", str(suite), "--out", str(out), "--data-dir", str(data), "--nltk-data",
                str(SHARED / "nltk_data")]

    return argv
