"""Every suite committed under attacks/ reads as a suite (a study's pre-registered design must stay runnable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustness.suite.suite_file import load_suite

SUITES = sorted((Path(__file__).resolve().parents[2] / "attacks").rglob("*.toml"))


def test_the_committed_suites_are_found():
    assert len(SUITES) >= 10 and any(p.parent.name == "v3" for p in SUITES)


@pytest.mark.parametrize("path", SUITES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_a_committed_suite_reads(path):
    suite = load_suite(path)
    assert suite.models and suite.recipes


def test_the_v3_parts_share_one_division_and_one_rule():
    root = Path(__file__).resolve().parents[2] / "attacks" / "v3"
    accuracy, slowdown = load_suite(root / "sst2-accuracy.toml"), load_suite(root / "sst2-slowdown.toml")
    assert (accuracy.n, accuracy.seed, accuracy.split) == (slowdown.study_n, slowdown.seed, slowdown.split)
    assert accuracy.verdict == slowdown.verdict and accuracy.verdict.select is not None
    pabee = {s.id: s for s in accuracy.models}["pabee-mpnet"], {s.id: s for s in slowdown.models}["pabee-mpnet"]
    assert pabee[0].path == pabee[1].path and pabee[0].selected and pabee[1].selected
    # the rule chooses among the same patience settings in both parts
    assert {*pabee[0].settings, *pabee[0].candidates} == {*pabee[1].settings, *pabee[1].candidates}
