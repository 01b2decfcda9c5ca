"""The ``robustness`` program exits with :func:`robustness.cli.main`'s code after freezing the collector (its
final collection is most of a heavy process's exit); ``main`` itself, which tests call in-process, does not.
The subprocess tests of ``tests/test_interrupts.py`` run the program this way and find every file intact."""

from __future__ import annotations

import gc

import pytest

from robustness import cli


@pytest.mark.parametrize("code", [0, 2, 130])
def test_entry_exits_with_the_code_of_main_and_freezes_the_collector(code, monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: code)
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.entry()
        assert exit_info.value.code == code
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_main_leaves_the_collector_alone(capsys):
    gc.unfreeze()
    with pytest.raises(SystemExit):  # argparse: --version exits
        cli.main(["--version"])
    assert gc.get_freeze_count() == 0 and "robustness 0.1.0" in capsys.readouterr().out
