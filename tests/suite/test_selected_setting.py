"""The ``selected`` setting: a suite attacks only the setting its select rule pre-registers (and thresholds
calibrated to it), while its ``candidates`` are evaluated clean on the selection set for the rule to choose from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robustness.cli import main
from robustness.schema.settings import calibrated_setting, parse_setting, resolve_calibrated
from robustness.suite.suite_file import load_suite

RULE = "smallest-patience-within-margin"


def _suite(root: Path, pabee: str | Path = "p", full: str | Path = "f", *, select: bool = True,
           pabee_keys: str = 'settings = ["selected"]\ncandidates = ["patience:1"]\n'
                             'calibrated = ["entropy@selected"]\n', full_keys: str = "") -> Path:
    path = root / "suite.toml"
    verdict = f'[verdict]\nmargin = 0.99\nselect = "{RULE}"\n' if select else ""
    path.write_text('[suite]\nname = "chosen"\ndataset = "glue/sst2"\nn = 4\nseed = 3\nquery_budget = 10\n'
                    'batch_size = 4\nrecipes = ["deepwordbug"]\n'
                    f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{pabee}"\n{pabee_keys}'
                    f'[[models]]\nid = "tf"\nhead = "full"\npath = "{full}"\n{full_keys}{verdict}')
    return path


def test_selected_settings_and_candidates_are_read_and_made_concrete_by_the_rules_choice(tmp_path):
    suite = load_suite(_suite(tmp_path, pabee_keys='settings = ["patience:4", "selected"]\n'
                                                   'candidates = ["patience:1", "patience:2", "patience:3"]\n'
                                                   'calibrated = ["entropy@selected", "maxprob@patience:4"]\n'))
    tp = suite.models[0]
    assert tp.selected and tp.awaits_choice and [s.label for s in tp.settings] == ["patience:4"]
    assert [s.label for s in tp.candidates] == ["patience:1", "patience:2", "patience:3"]
    assert tp.fixed_calibrated == ("maxprob@patience:4",)
    assert calibrated_setting("entropy@selected") == ("entropy", "selected")
    with pytest.raises(ValueError, match="known only once bench has recorded the rule's choice"):
        resolve_calibrated("entropy@selected", tmp_path)
    chosen = suite.with_choices([{"model": "tp", "baseline": "tf", "setting": "patience:2"}]).models
    assert [s.label for s in chosen[0].settings] == ["patience:4", "patience:2"]
    assert chosen[0].calibrated == ("maxprob@patience:4", "entropy@patience:2") and not chosen[0].awaits_choice
    assert chosen[1] == suite.models[1]  # the baseline has nothing to choose
    # the rule's choice may coincide with a listed setting: it is run once
    same = suite.with_choices([{"model": "tp", "baseline": "tf", "setting": "patience:4"}]).models[0]
    assert [s.label for s in same.settings] == ["patience:4"]
    assert same.calibrated == ("maxprob@patience:4", "entropy@patience:4")
    # no setting qualified: the model runs its other settings only, and nothing is calibrated to a choice
    none = suite.with_choices([{"model": "tp", "baseline": "tf", "setting": None}]).models[0]
    assert [s.label for s in none.settings] == ["patience:4"] and none.calibrated == ("maxprob@patience:4",)
    assert none.candidates == tp.candidates and not none.awaits_choice


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"select": False}, "model 'tp' names the 'selected' setting, which needs a pre-registered select rule"),
    ({"full_keys": 'candidates = ["patience:1"]\n'}, "model 'tf': a full-depth model has no 'selected' setting"),
    ({"pabee_keys": 'settings = ["selected"]\ncandidates = "patience:1"\n'}, "'candidates' must be a list"),
    ({"pabee_keys": 'settings = ["selected"]\ncandidates = ["patience:x"]\n'}, "candidates: patience must be"),
    ({"pabee_keys": 'settings = ["selected"]\ncalibrated = ["entropy@chosen"]\n'}, "got 'chosen'"),
])
def test_bad_selected_settings_are_one_line_naming_the_file(tmp_path, kwargs, message):
    path = _suite(tmp_path, **kwargs)
    with pytest.raises(ValueError) as caught:
        load_suite(path)
    assert message in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreachable_candidate_is_refused_before_any_work(tmp_path, tiny_pabee_dir, tiny_full_dir, capsys):
    suite = _suite(tmp_path, tiny_pabee_dir, tiny_full_dir,
                   pabee_keys='settings = ["selected"]\ncandidates = ["patience:1", "patience:2"]\n')
    assert main(["bench", str(suite), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model 'tp': setting patience:2 needs patience < the model's 2 layers" in err and "\n" not in err
    assert not (tmp_path / "o" / "selection.json").exists()


def test_bench_attacks_only_the_chosen_setting_and_thresholds_matched_to_it(
        tmp_path, write_sst2, tiny_pabee_dir, tiny_full_dir, capsys, reviews, offline_bench):
    write_sst2(tmp_path, reviews)
    pabee = Path(shutil.copytree(tiny_pabee_dir, tmp_path / "tp"))  # bench writes its calibration.json
    suite = _suite(tmp_path, pabee, tiny_full_dir)
    out = tmp_path / "out"
    argv = offline_bench(suite, out, tmp_path / "data")
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "pre-registered by smallest-patience-within-margin for tp vs tf: patience:1" in said
    (choice,) = json.loads((out / "selection.json").read_text())["choices"]
    assert choice["setting"] == "patience:1"
    # the entropy threshold is calibrated to the chosen patience's clean speed-up, on the selection set
    calibration = json.loads((pabee / "calibration.json").read_text())
    assert calibration["entropy@patience:1"]["n"] == 6
    entropy = parse_setting(calibration["entropy@patience:1"]["setting"])
    runs = sorted(json.loads((run / "spec.json").read_text())["setting"] for run in (out / "runs").iterdir()
                  if json.loads((run / "spec.json").read_text())["model_id"] == "tp")
    assert runs == sorted(["patience:1", entropy.label])  # the candidate itself was not attacked otherwise
    clean = pd.read_csv(out / "clean" / "tp.csv")
    assert {"patience:1", entropy.label} <= set(clean["setting"])
    assert pd.read_csv(out / "tables" / "verdict.csv").iloc[0]["setting"] == "patience:1"
    # a rerun finds the same choice and every run complete
    assert main(argv) == 0
    assert f"{len(runs) + 1} of {len(runs) + 1} runs already complete" in capsys.readouterr().out
