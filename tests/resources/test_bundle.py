from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from robustness.cli import main
from robustness.jobs import located
from robustness.resources.bundle import RESOURCES_ENV, ResourceBundle, find_bundle


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    for part in ("data", "nltk_data", "lexicons", "models/mlm"):
        (root / part).mkdir(parents=True)
    return root


def test_parts_and_missing(bundle: Path, tmp_path: Path) -> None:
    b = ResourceBundle.open(bundle)
    assert b.part("nltk_data") == str(bundle / "nltk_data") and b.part("mlm") == str(bundle / "models/mlm")
    assert b.part("lm") is None and b.missing() == []
    (bundle / "lexicons").rmdir()
    assert ResourceBundle.open(bundle).missing() == ["lexicons"]
    with pytest.raises(ValueError, match="is not a directory"):
        ResourceBundle.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has none of data, nltk_data"):
        ResourceBundle.open(tmp_path / "empty")


def test_flag_beats_suite_beats_env(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    monkeypatch.delenv(RESOURCES_ENV, raising=False)
    assert find_bundle() is None
    monkeypatch.setenv(RESOURCES_ENV, str(other))
    assert find_bundle().root == other
    assert find_bundle(suite_value=bundle).root == bundle
    assert find_bundle(bundle, suite_value=other).root == bundle


def test_individual_settings_override_the_bundle(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RESOURCES_ENV, raising=False)
    suite = argparse.Namespace(resources=None, data_dir=None, nltk_data=None, lexicons="/suite-lex")
    found, offline = located(str(bundle), suite, data_dir=None, nltk_data="/mine", lexicons=None, mlm=None)
    assert found["data_dir"] == str(bundle / "data") and found["nltk_data"] == "/mine"
    assert found["lexicons"] == "/suite-lex" and found["mlm"] == str(bundle / "models/mlm")
    assert offline is True
    assert located(None, data_dir=None, nltk_data=None) == ({"data_dir": None, "nltk_data": None}, False)


def test_doctor_reports_the_bundle(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "models/mlm").rmdir()
    (bundle / "models/lm").mkdir()
    (bundle / "lexicons").rmdir()
    assert main(["doctor", "--resources", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert f"[ok] quality_lm: {bundle / 'models/lm'}" in out
    assert f"[--] bundle: {bundle} lacks lexicons" in out
    assert f"[--] stopwords: {bundle / 'nltk_data'}: lacks stopwords" in out
    assert main(["doctor", "--resources", str(bundle / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
