"""verdict.json (robustness.schema.verdict_file): written only when it changes, read strictly, found beside the
runs of a suite output, and resolved field by field against the options given explicitly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustness.schema.specs import VerdictOptions
from robustness.schema.verdict_file import (
    VERDICT_FILE,
    read_verdict_options,
    resolve_verdict_options,
    verdict_files,
    write_verdict_options,
)

RULE = "smallest-patience-within-margin"
RECORDED = VerdictOptions(margin=0.05, min_n=2, alpha=0.1, select=RULE, equivalence_margin=0.2)


def _study(root: Path, options: VerdictOptions | dict) -> Path:
    (root / "runs").mkdir(parents=True)
    data = options if isinstance(options, dict) else None
    if data is None:
        write_verdict_options(root, options)
    else:
        (root / VERDICT_FILE).write_text(json.dumps(data))
    return root


def test_written_once_read_back_and_rewritten_only_when_the_options_change(tmp_path: Path) -> None:
    assert write_verdict_options(tmp_path, RECORDED)
    path = tmp_path / VERDICT_FILE
    assert json.loads(path.read_text()) == {"margin": 0.05, "min_n": 2, "alpha": 0.1, "setting": None,
                                            "select": RULE, "equivalence_margin": 0.2}
    assert VerdictOptions(**read_verdict_options(path)) == RECORDED
    before = path.stat().st_mtime_ns
    assert not write_verdict_options(tmp_path, RECORDED) and path.stat().st_mtime_ns == before
    assert write_verdict_options(tmp_path, VerdictOptions(setting=3))  # the suite's [verdict] changed
    assert read_verdict_options(path)["setting"] == "patience:3" and read_verdict_options(path)["select"] is None
    path.write_text("{")  # not a record: bench's own file, replaced
    assert write_verdict_options(tmp_path, RECORDED) and VerdictOptions(**read_verdict_options(path)) == RECORDED


def test_a_file_lacking_a_field_takes_its_default_and_a_bad_one_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / VERDICT_FILE
    path.write_text('{"margin": 0.02, "setting": 2}')
    assert read_verdict_options(path) == {"margin": 0.02, "min_n": 100, "alpha": 0.05, "setting": "patience:2",
                                          "select": None, "equivalence_margin": 0.05}
    for text, said in (('{"margn": 0.02}', "unknown verdict options ['margn']"),
                       ('{"equivalence_margin": 5}', "equivalence_margin (report --equivalence-margin) must be"),
                       ('{"setting": 2, "select": "' + RULE + '"}', "either a pre-registered setting or a select"),
                       ("[1]", "must hold a JSON object")):
        path.write_text(text)
        with pytest.raises(ValueError) as caught:
            read_verdict_options(path)
        assert said in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_found_in_a_suite_output_or_beside_its_runs_folder_once(tmp_path: Path) -> None:
    out = _study(tmp_path / "out", RECORDED)
    assert verdict_files(out) == [out / VERDICT_FILE]
    assert verdict_files([out / "runs", out, str(out / "runs")]) == [out / VERDICT_FILE]
    assert verdict_files(out / "runs" / "some_run") == []  # a run directory: not a suite output
    assert verdict_files(tmp_path) == []


def test_no_file_gives_the_defaults_and_the_file_gives_its_options(tmp_path: Path) -> None:
    (tmp_path / "bare" / "runs").mkdir(parents=True)
    options, where = resolve_verdict_options(tmp_path / "bare", {"margin": None, "setting": None})
    assert options == VerdictOptions() and where.startswith("the defaults (no verdict.json): margin 0.01")
    options, where = resolve_verdict_options(tmp_path / "bare", {"margin": 0.03})
    assert options == VerdictOptions(margin=0.03) and where.startswith("--margin given, the defaults otherwise")
    out = _study(tmp_path / "out", RECORDED)
    options, where = resolve_verdict_options(out / "runs", {"margin": None, "min_n": None, "alpha": None,
                                                            "setting": None, "equivalence_margin": None})
    assert options == RECORDED
    assert where == (f"{out / VERDICT_FILE}: margin 0.05, min_n 2, alpha 0.1, select {RULE}, "
                     "equivalence_margin 0.2")


def test_an_explicit_option_replaces_one_field_and_a_setting_replaces_the_rule(tmp_path: Path) -> None:
    out = _study(tmp_path / "out", RECORDED)
    options, where = resolve_verdict_options(out, {"equivalence_margin": 0.05, "margin": None})
    assert options == VerdictOptions(margin=0.05, min_n=2, alpha=0.1, select=RULE, equivalence_margin=0.05)
    assert where.startswith(f"{out / VERDICT_FILE} (with --equivalence-margin given): ")
    options, _ = resolve_verdict_options(out, {"setting": "patience:1"})
    assert options == VerdictOptions(margin=0.05, min_n=2, alpha=0.1, setting="patience:1", equivalence_margin=0.2)


def test_files_that_disagree_are_refused_naming_both_unless_the_option_is_given(tmp_path: Path) -> None:
    a = _study(tmp_path / "a", RECORDED)
    b = _study(tmp_path / "b", {**json.loads((a / VERDICT_FILE).read_text()), "equivalence_margin": 0.1})
    agree = _study(tmp_path / "c", RECORDED)
    assert resolve_verdict_options([a, agree], {})[0] == RECORDED  # several files, one set of options
    with pytest.raises(ValueError) as caught:
        resolve_verdict_options([a, b / "runs"], {})
    message = str(caught.value)
    assert message == (f"verdict options disagree: {a / VERDICT_FILE} has equivalence_margin 0.2, {b / VERDICT_FILE} "
                       "has 0.1; pass --equivalence-margin or report them separately")
    options, where = resolve_verdict_options([a, b], {"equivalence_margin": 0.1})
    assert options.equivalence_margin == 0.1 and options.select == RULE
    assert where.startswith(f"{a / VERDICT_FILE}, {b / VERDICT_FILE} (with --equivalence-margin given)")
    c = _study(tmp_path / "d", VerdictOptions(margin=0.05, min_n=2, alpha=0.1, setting=2, equivalence_margin=0.2))
    with pytest.raises(ValueError, match="has setting None, .* has 'patience:2'; pass --setting"):
        resolve_verdict_options([a, c], {})
    assert resolve_verdict_options([a, c], {"setting": 1})[0].setting == "patience:1"
