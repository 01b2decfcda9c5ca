"""One consistent selection in bench: the split divided into the attack sample and the selection set (seeded,
disjoint, recorded in selection.json before any attack), a select rule applied on the selection set, and the
verdict's eligibility read on that same set."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from robustness.cli import main
from robustness.suite.selection import draw_selection
from robustness.suite.suite_file import load_suite

RULE = "smallest-patience-within-margin"


def _suite(root: Path, body: str = "", verdict: str = f'select = "{RULE}"', models: str = "") -> Path:
    path = root / "suite.toml"
    path.write_text(f'[suite]\nname = "sel"\ndataset = "glue/sst2"\nn = 4\nseed = 3\nquery_budget = 10\n'
                    f'batch_size = 4\nrecipes = ["deepwordbug"]\npatience = [1, "full"]\n{body}'
                    f"{models}[verdict]\nmargin = 0.05\n{verdict}\n")
    return path


def _models(pabee: Path, full: Path) -> str:
    return (f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{pabee}"\n'
            f'[[models]]\nid = "tf"\nhead = "full"\npath = "{full}"\n')


def test_the_division_is_disjoint_deterministic_for_a_seed_and_covers_the_split(tmp_path, write_sst2, reviews):
    from robustness.data import load_examples

    write_sst2(tmp_path, reviews)
    data = str(tmp_path / "data")
    suite = replace(load_suite(_suite(tmp_path, models='[[models]]\nid = "m"\npath = "x"\n')), data_dir=data)
    division, examples, positions = draw_selection(suite)
    assert len(division.attack_sample) == 4 and len(division.selection_set) == 6 and division.seed == 3
    assert not set(division.attack_sample) & set(division.selection_set)
    assert sorted(division.attack_sample + division.selection_set) == list(range(10))
    assert [examples.indices[i] for i in positions] == list(division.selection_set)
    attacked = load_examples("glue/sst2", "validation", data_dir=data, limit=4, seed=3).indices  # as runs draw it
    assert list(division.attack_sample) == attacked
    assert draw_selection(suite)[0] == division  # the same seed, the same division
    other = draw_selection(replace(suite, seed=4))[0]
    assert other.attack_sample != division.attack_sample and other.digest != division.digest
    # a declared selection split: all of its examples, whatever the attack sample
    pd.DataFrame({"sentence": reviews[:7], "label": [1, 0] * 3 + [1], "idx": range(7)}).to_parquet(
        tmp_path / "data" / "sst2" / "train.parquet")
    declared, examples, positions = draw_selection(replace(suite, selection_split="train"))
    assert declared.selection_split == "train" and declared.selection_set == tuple(range(7)) == tuple(positions)
    assert declared.attack_sample == division.attack_sample and examples.split == "train"


def test_setting_and_select_together_are_one_line_naming_the_field(tmp_path, capsys):
    suite = _suite(tmp_path, verdict=f'setting = 1\nselect = "{RULE}"', models='[[models]]\nid = "m"\npath = "x"\n')
    assert main(["bench", str(suite), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(suite) in err and "verdict select: give either a pre-registered setting" in err
    (tmp_path / "bad.toml").write_text(suite.read_text().replace("setting = 1\n", "").replace(RULE, "best"))
    assert main(["bench", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "select must be one of smallest-patience-within-margin, got 'best'" in capsys.readouterr().err


def test_a_select_rule_needs_a_selection_set(tmp_path, write_sst2, tiny_pabee_dir, tiny_full_dir, capsys, reviews):
    write_sst2(tmp_path, reviews[:4])  # n = 4 takes the whole split
    suite = _suite(tmp_path, models=_models(tiny_pabee_dir, tiny_full_dir))
    argv = ["bench", str(suite), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a selection set, but n = 4 takes the whole validation split" in err and "\n" not in err
    assert not (tmp_path / "o" / "selection.json").exists()


def test_bench_records_the_selection_before_the_attacks_and_the_verdict_uses_it(
        tmp_path, write_sst2, tiny_pabee_dir, tiny_full_dir, capsys, reviews, offline_bench):
    write_sst2(tmp_path, reviews)
    suite = _suite(tmp_path, models=_models(tiny_pabee_dir, tiny_full_dir))
    out = tmp_path / "out"
    argv = offline_bench(suite, out, tmp_path / "data")
    assert main(argv) == 0
    recorded = json.loads((out / "selection.json").read_text())
    division = recorded["division"]
    assert (division["seed"], division["n"], division["split"]) == (3, 4, "validation")
    assert sorted(division["attack_sample"] + division["selection_set"]) == list(range(10))
    # the runs attacked exactly the attack sample, and the selection file was written before any run began
    for run in (out / "runs").iterdir():
        indices = [json.loads(line)["dataset_index"] for line in (run / "records.jsonl").read_text().splitlines()]
        assert sorted(indices) == division["attack_sample"]
        assert (out / "selection.json").stat().st_mtime_ns <= (run / "spec.json").stat().st_mtime_ns
    # the rule's choice, from the clean tables on the selection set (6 examples) that it records
    tp, tf = pd.read_csv(out / "clean" / "tp.csv"), pd.read_csv(out / "clean" / "tf.csv")
    assert set(tp["n"]) == set(tf["n"]) == {6} and set(tp["selection_set"]) == {f"validation outside the attack "
                                                                                f"sample (n=4 seed=3): 6 examples, "
                                                                                f"{division['digest']}"}
    (choice,) = recorded["choices"]
    base = float(tf.set_index("setting").loc["full", "accuracy"])
    p1 = float(tp.set_index("setting").loc["patience:1", "accuracy"])
    assert p1 >= base - 0.05  # the seeded tiny models: patience 1 is within the margin
    assert (choice["model"], choice["baseline"], choice["setting"]) == ("tp", "tf", "patience:1")
    assert choice["table"] == [{"setting": "patience:1", "n": 6, "accuracy": p1, "baseline_accuracy": base,
                                "within_margin": True}]
    # the verdict pre-registers the same setting and judges its eligibility on the same table (whatever the
    # outcome: n = 4 is below min_n and the tiny baseline is degenerate)
    assert pd.read_csv(out / "tables" / "verdict.csv").iloc[0]["setting"] == "patience:1"
    judged = pd.read_csv(out / "tables" / "verdict_candidates.csv").set_index("setting").loc["patience:1"]
    assert judged["clean_off_sample"] and (judged["clean_accuracy"], judged["baseline_clean_accuracy"]) == (p1, base)
    # a rerun reuses the clean tables and leaves the record as it was
    before = (out / "selection.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    assert "clean evaluation of" not in capsys.readouterr().out
    assert (out / "selection.json").read_bytes() == before


def test_selection_split_must_name_a_split(tmp_path, write_sst2, tiny_pabee_dir, tiny_full_dir, capsys, reviews):
    write_sst2(tmp_path, reviews)
    bad = _suite(tmp_path, body="selection_split = 3\n", models=_models(tiny_pabee_dir, tiny_full_dir))
    with pytest.raises(ValueError, match=r"\[suite\] selection_split must be a string, got 3"):
        load_suite(bad)
    missing = _suite(tmp_path, body='selection_split = "test"\n', models=_models(tiny_pabee_dir, tiny_full_dir))
    assert main(["bench", str(missing), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "split 'test' of glue/sst2 not found" in err


def test_a_part_of_a_study_divides_the_split_as_the_whole_study_does(tmp_path, write_sst2, reviews):
    write_sst2(tmp_path, reviews)
    data = str(tmp_path / "data")
    model = '[[models]]\nid = "m"\npath = "x"\n'
    whole = replace(load_suite(_suite(tmp_path, models=model)), data_dir=data)  # n = 4
    part = replace(load_suite(_suite(tmp_path, body="study_n = 4\n", models=model)), data_dir=data, n=2)
    division, _, positions = draw_selection(part)
    assert division == draw_selection(whole)[0] and len(positions) == 6  # the same selection set of 6
    from robustness.data import load_examples

    attacked = load_examples("glue/sst2", "validation", data_dir=data, limit=2, seed=3).indices
    assert set(attacked) <= set(division.attack_sample)
    with pytest.raises(ValueError, match=r"study_n \(3\) is the study's attack sample, of which this suite attacks "
                                         r"n = 4: it must be >= n"):
        load_suite(_suite(tmp_path, body="study_n = 3\n", models=model))
