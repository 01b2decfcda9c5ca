"""`robustness bench` end to end on tiny models, then aggregate / report / compare / ls on its output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)

from robustness.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def suite_out(tmp_path_factory, tiny_pabee_dir, tiny_full_dir, write_sst2):
    root = tmp_path_factory.mktemp("bench")
    write_sst2(root, ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
                      "i have never been so bored", "warm and funny", "a tedious mess"])
    suite = root / "tiny.toml"
    suite.write_text(
        '[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 4\nquery_budget = 10\nbatch_size = 4\n'
        'recipes = ["deepwordbug"]\npatience = [1, "full"]\n'
        f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{tiny_pabee_dir}"\n'
        f'[[models]]\nid = "tf"\nhead = "full"\npath = "{tiny_full_dir}"\n'
    )
    out = root / "out"
    argv = ["bench", str(suite), "--out", str(out), "--data-dir", str(root / "data"),
            "--nltk-data", str(SHARED / "nltk_data")]
    assert main(argv) == 0
    return suite, out, argv


def test_bench_writes_runs_and_report(suite_out):
    _, out, _ = suite_out
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 3 and runs[0].startswith("tf-pfull_deepwordbug_sst2_")
    for run in (out / "runs").iterdir():
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
        assert len((run / "records.jsonl").read_text().splitlines()) == 4
    summary = pd.read_csv(out / "tables" / "summary.csv")
    assert len(summary) == 3
    # clean evaluation on the 2 validation examples outside the 4 attacked, at each model's settings
    clean = pd.read_csv(out / "clean" / "tp.csv")
    assert list(clean["setting"]) == ["patience:1", "full"] and set(clean["n"]) == {2}
    assert list(pd.read_csv(out / "clean" / "tf.csv")["setting"]) == ["full"]
    assert (out / "tables" / "verdict.csv").is_file()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and 'src="http' not in html


def test_bench_rerun_skips_complete_runs(suite_out, capsys):
    _, out, argv = suite_out
    before = {p: p.read_bytes() for p in (out / "runs").glob("*/records.jsonl")}
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 of 3 runs already complete" in printed and "clean evaluation of" not in printed  # both reused
    assert {p: p.read_bytes() for p in before} == before


def test_aggregate_report_compare_ls(suite_out, tmp_path, capsys):
    _, out, _ = suite_out
    assert main(["aggregate", str(out), "--out", str(tmp_path / "agg")]) == 0
    assert (tmp_path / "agg" / "tables" / "summary.csv").is_file()
    assert main(["report", str(out / "runs"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").is_file()
    capsys.readouterr()
    assert main(["compare", "--from", str(out), "tp@1", "tf@full"]) == 0
    text = capsys.readouterr().out
    assert "attack_success_rate" in text and "tp-p1_deepwordbug" in text
    assert main(["ls", "runs", str(out)]) == 0
    assert capsys.readouterr().out.count("complete") == 3
    assert main(["compare", "--from", str(out), "tp@7", "tf@full"]) == 2
    assert "found none" in capsys.readouterr().err


def test_bench_rejects_unknown_train_keys(tmp_path, capsys):
    suite = tmp_path / "bad.toml"
    suite.write_text('[suite]\nname = "b"\ndataset = "glue/sst2"\nrecipes = ["pwws"]\n'
                     '[[models]]\nid = "m"\n[models.train]\nepochz = 3\n')
    assert main(["bench", str(suite), "--out", str(tmp_path / "o")]) == 2
    assert "unknown train keys ['epochz']" in capsys.readouterr().err


def test_missing_nltk_data_is_one_line(tmp_path, capsys):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update(HOME=str(tmp_path), HF_HUB_OFFLINE="1")  # no ~/nltk_data either
    proc = subprocess.run([sys.executable, "-m", "robustness.cli", "attack", "--model", "m", "--recipe", "pwws",
                           "--out", str(tmp_path / "r")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    # (a first import under a new HOME also logs TextAttack's own "post-install" lines before ours)
    assert proc.stderr.strip().splitlines()[-1] == (
        "robustness attack: error: TextAttack needs NLTK data (stopwords, wordnet, tagger): pass --nltk-data DIR or "
        "set NLTK_DATA")


def test_bench_runs_the_quality_stage_when_the_suite_asks(suite_out, tiny_gpt2_dir, tmp_path):
    suite, out, argv = suite_out
    asking = tmp_path / "quality.toml"
    asking.write_text(suite.read_text().replace("[suite]\n", f'[suite]\nquality = true\nlm = "{tiny_gpt2_dir}"\n', 1))
    assert main(["bench", str(asking), *argv[2:]]) == 0  # the runs are complete: only the stage and the report
    scored = 0
    for run in (out / "runs").iterdir():
        records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        quality = [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]
        assert [q["example_id"] for q in quality] == [r["example_id"] for r in records if r["result"] == "succeeded"]
        scored += len(quality)
    assert scored > 0
    assert "## Quality of adversarial text" in (out / "report.md").read_text()
    assert len(pd.read_csv(out / "tables" / "quality.csv")) >= 1


def test_bench_runs_the_revalidation_stage_when_the_suite_asks(suite_out, tiny_gpt2_dir, tmp_path, monkeypatch):
    """The stage's wiring: every success re-checked, strict columns in the tables and a report section. The
    checkers are the test's (building the full counter-fitted vocabulary takes minutes): their vocabulary holds
    none of DeepWordBug's typos, so every success is invalid and the strict success rate is 0."""
    import robustness.revalidate as reval
    from robustness.quality import load_lm
    from robustness.resources.sentence_encoder import minilm
    from robustness.resources.textattack_compat import import_textattack

    words = ["film", "movie"]
    embedding = import_textattack().shared.WordEmbedding(np.eye(2, dtype=np.float32), {w: i for i, w in
                                                         enumerate(words)}, dict(enumerate(words)), None)
    asked = {}

    def checkers(lm=None, **paths):
        asked.update(paths, lm=lm)
        return reval.Checkers(embedding=embedding, tag=reval.nltk_universal_tagger(paths["nltk_data"]),
                              encoder=minilm(), encoder_name="minilm", lm=load_lm(lm))

    monkeypatch.setattr(reval, "load_checkers", checkers)
    suite, out, argv = suite_out
    asking = tmp_path / "revalidate.toml"
    asking.write_text(suite.read_text().replace("[suite]\n", f'[suite]\nrevalidate = "morris2020"\nlm = '
                                                f'"{tiny_gpt2_dir}"\n', 1))
    assert main(["bench", str(asking), *argv[2:]]) == 0
    assert asked["lm"] == str(tiny_gpt2_dir) and asked["nltk_data"] == str(SHARED / "nltk_data")
    checked = 0
    for run in (out / "runs").iterdir():
        records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        lines = [json.loads(line) for line in (run / "revalidation.jsonl").read_text().splitlines()]
        assert [q["example_id"] for q in lines] == [r["example_id"] for r in records if r["result"] == "succeeded"]
        assert not any(q["valid"] for q in lines) and all(q["oov_words"] for q in lines if q["swaps"])
        checked += len(lines)
    assert checked > 0
    summary = pd.read_csv(out / "tables" / "summary.csv")
    assert summary["revalidated"].notna().all()  # every run, those without a success too
    assert ((summary["strict_attack_success_rate"] == 0) | summary["attack_success_rate"].isna()).all()
    assert (summary["strict_accuracy_under_attack"] >= summary["accuracy_under_attack"]).all()
    assert "## Strict re-validation" in (out / "report.md").read_text()


def test_bench_refuses_an_unknown_revalidation_preset(tmp_path, capsys):
    suite = tmp_path / "bad.toml"
    suite.write_text('[suite]\nname = "b"\ndataset = "glue/sst2"\nrecipes = ["pwws"]\nrevalidate = "strict"\n'
                     '[[models]]\nid = "m"\npath = "/nowhere"\n')
    assert main(["bench", str(suite), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown re-validation preset 'strict'; choose from morris2020" in err


def test_pack_gives_the_same_tables_and_report(suite_out, tiny_gpt2_dir, tmp_path, capsys):
    """The bench output (with quality and re-validation files when the tests above ran first), packed: aggregate
    and report read the packed copy directly and compute the same tables; stages that append refuse it."""
    _, out, _ = suite_out
    packed = tmp_path / "records"
    capsys.readouterr()
    assert main(["pack", str(out), "--into", str(packed)]) == 0
    assert f"packed {out} into {packed} (runs: 3, clean tables: 2)" in capsys.readouterr().out
    assert not list(packed.rglob("*.jsonl")) and len(list(packed.glob("runs/*/records.jsonl.gz"))) == 3
    for source, name in ((out, "a"), (packed, "b")):
        assert main(["aggregate", str(source), "--out", str(tmp_path / f"agg-{name}")]) == 0
        assert main(["report", str(source), "--out", str(tmp_path / name)]) == 0
    for folder, table in (("agg-{}/tables", "summary.csv"), ("{}/tables", "verdict.csv")):
        a, b = (sorted((tmp_path / folder.format(n)).iterdir()) for n in "ab")
        assert [p.name for p in a] == [p.name for p in b] and table in [p.name for p in a]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    capsys.readouterr()
    assert main(["pack", str(out), "--into", str(packed)]) == 2
    assert capsys.readouterr().err.strip() == (f"robustness pack: error: {packed} exists; pass --overwrite to replace "
                                              "it (the whole folder), or pack elsewhere")
    assert main(["quality", str(packed), "--lm", str(tiny_gpt2_dir)]) == 2
    assert "is a packed copy (" in capsys.readouterr().err
