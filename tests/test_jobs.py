"""What the one-call jobs share: where resource paths come from, and the stage progress bars."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from robustness.jobs import StageBars, check_out_file, located


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "bundle"
    for part in ("data", "nltk_data", "lexicons"):
        (root / part).mkdir(parents=True)
    monkeypatch.delenv("ROBUSTNESS_RESOURCES", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return root


def test_given_then_suite_then_bundle(bundle: Path, tmp_path: Path) -> None:
    suite = SimpleNamespace(resources=None, data_dir="/suite/data", nltk_data=None)
    paths, offline = located(bundle, suite, data_dir=None, nltk_data=tmp_path / "mine", lexicons=None, mlm=None)
    assert paths == {"data_dir": "/suite/data", "nltk_data": os.fspath(tmp_path / "mine"),
                     "lexicons": os.fspath(bundle.absolute() / "lexicons"), "mlm": None}  # the bundle has no mlm
    assert offline and os.environ["HF_HUB_OFFLINE"] == "1"


def test_suite_bundle_and_environment(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert located(None, None, data_dir=None) == ({"data_dir": None}, False)
    assert "HF_HUB_OFFLINE" not in os.environ  # no bundle: nothing forced offline
    suite = SimpleNamespace(resources=str(bundle), data_dir=None)
    assert located(None, suite, data_dir=None)[0] == {"data_dir": os.fspath(bundle.absolute() / "data")}
    monkeypatch.setenv("ROBUSTNESS_RESOURCES", str(bundle))
    assert located(None, None, nltk_data=None) == ({"nltk_data": os.fspath(bundle.absolute() / "nltk_data")}, True)
    with pytest.raises(ValueError, match="is not a directory"):
        located(bundle / "absent", None, data_dir=None)


def test_check_out_file(tmp_path: Path) -> None:
    check_out_file(tmp_path / "new" / "table.csv", overwrite=False)
    (tmp_path / "table.csv").write_text("x")
    with pytest.raises(ValueError, match="exists"):
        check_out_file(tmp_path / "table.csv", overwrite=False)
    check_out_file(tmp_path / "table.csv", overwrite=True)
    with pytest.raises(ValueError, match="is a directory"):
        check_out_file(tmp_path, overwrite=True)


def test_stage_bars(capfd: pytest.CaptureFixture[str]) -> None:
    assert StageBars(enabled=False).counter("stage", 3, "ex") is None
    with StageBars() as bars:
        first, second = bars.counter("first", 3, "ex"), bars.counter("second", 2, "rep")
        first(2)
        assert bars._desc == "first" and bars._bar.n == 2
        second(1)  # the next stage closes the first bar
        assert bars._desc == "second"
        second(1)  # its total: closed
        assert bars._bar is None
    err = capfd.readouterr().err
    assert "first" in err and "second" in err
