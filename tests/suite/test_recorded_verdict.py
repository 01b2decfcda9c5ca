"""The verdict options travel with a study: bench records its suite's ``[verdict]`` in ``<out>/verdict.json``
before the report, ``robustness pack`` carries it, and ``robustness report`` on the packed folder is judged by it
(so it reproduces bench's verdict), an explicit flag replacing one field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from robustness.cli import main

RULE = "smallest-patience-within-margin"


def _suite(root: Path, pabee: Path, full: Path, verdict: str) -> Path:
    path = root / "suite.toml"
    path.write_text('[suite]\nname = "vf"\ndataset = "glue/sst2"\nn = 4\nseed = 3\nquery_budget = 10\n'
                    'batch_size = 4\nrecipes = ["deepwordbug"]\npatience = [1, "full"]\n'
                    f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{pabee}"\n'
                    f'[[models]]\nid = "tf"\nhead = "full"\npath = "{full}"\n[verdict]\n{verdict}')
    return path


def _table(folder: Path, name: str) -> bytes:
    return (folder / "tables" / f"{name}.csv").read_bytes()


def test_bench_records_its_verdict_options_pack_carries_them_and_report_is_judged_by_them(
        tmp_path, write_sst2, tiny_pabee_dir, tiny_full_dir, capsys, reviews, offline_bench):
    write_sst2(tmp_path, reviews)
    verdict = f'margin = 0.05\nselect = "{RULE}"\nequivalence_margin = 0.3\nmin_n = 2\nalpha = 0.2\n'
    suite = _suite(tmp_path, tiny_pabee_dir, tiny_full_dir, verdict)
    out, packed = tmp_path / "out", tmp_path / "records"
    argv = offline_bench(suite, out, tmp_path / "data")
    assert main(argv) == 0
    assert f"[bench] verdict options recorded in {out / 'verdict.json'}" in capsys.readouterr().out
    recorded = (out / "verdict.json").read_bytes()
    assert json.loads(recorded) == {"margin": 0.05, "select": RULE, "setting": None, "equivalence_margin": 0.3,
                                    "min_n": 2, "alpha": 0.2}
    bench_report = (out / "report.md").read_text()
    assert f"pre-registered by the rule {RULE}" in bench_report
    assert f"verdict options: the suite's [verdict], recorded in {out / 'verdict.json'}" in bench_report

    # pack carries the file, byte for byte, with its hash in packed.json
    assert main(["pack", str(out), "--into", str(packed)]) == 0
    assert (packed / "verdict.json").read_bytes() == recorded
    entry = json.loads((packed / "packed.json").read_text())["files"]["verdict.json"]
    assert entry["sha256"] == hashlib.sha256(recorded).hexdigest() and entry["stored_as"] == "verdict.json"

    # report on the packed folder, no flags: bench's verdict, said to be the rule's choice, options named
    assert main(["report", str(packed), "--out", str(tmp_path / "again")]) == 0
    for name in ("verdict", "verdict_candidates"):
        assert _table(tmp_path / "again", name) == _table(out, name), name
    assert pd.read_csv(out / "tables" / "verdict.csv").iloc[0]["setting"] == "patience:1"
    text = (tmp_path / "again" / "report.md").read_text()
    assert f"the setting pre-registered by the rule {RULE} on the selection set" in text
    assert f"verdict options: {packed / 'verdict.json'}: margin 0.05, min_n 2, alpha 0.2, select {RULE}" in text

    # without the file the same records are judged by the defaults: another verdict (the check can fail)
    (packed / "verdict.json").rename(tmp_path / "kept.json")
    assert main(["report", str(packed), "--out", str(tmp_path / "bare")]) == 0
    assert _table(tmp_path / "bare", "verdict") != _table(out, "verdict")
    assert pd.isna(pd.read_csv(tmp_path / "bare" / "tables" / "verdict.csv").iloc[0]["setting"])
    bare = (tmp_path / "bare" / "report.md").read_text()
    assert "the eligible setting with the highest accuracy under attack" in bare
    assert "verdict options: the defaults (no verdict.json)" in bare
    (tmp_path / "kept.json").rename(packed / "verdict.json")

    # an explicit flag replaces that field only: the rule still chooses, the equivalence test uses the flag
    assert main(["report", str(packed / "runs"), "--out", str(tmp_path / "flag"), "--equivalence-margin", "0.05"]) == 0
    mine, theirs = (pd.read_csv(f / "tables" / "verdict_candidates.csv").set_index("setting").loc["patience:1"]
                    for f in (tmp_path / "flag", out))
    assert mine["p_value"] == theirs["p_value"] and mine["tost_p_value"] != theirs["tost_p_value"]
    assert pd.read_csv(tmp_path / "flag" / "tables" / "verdict.csv").iloc[0]["setting"] == "patience:1"
    flagged = (tmp_path / "flag" / "report.md").read_text()
    assert f"pre-registered by the rule {RULE}" in flagged and "(with --equivalence-margin given)" in flagged

    # a resumed bench whose suite changed [verdict] rewrites the record its report is judged by
    suite.write_text(suite.read_text().replace("equivalence_margin = 0.3", "equivalence_margin = 0.05"))
    capsys.readouterr()
    assert main(argv) == 0
    assert f"[bench] verdict options changed: rewritten in {out / 'verdict.json'}" in capsys.readouterr().out
    assert json.loads((out / "verdict.json").read_text())["equivalence_margin"] == 0.05
    assert _table(out, "verdict_candidates") == _table(tmp_path / "flag", "verdict_candidates")

