"""Packing a suite output (robustness.schema.packing) and reading the packed copy: every table from the packed
copy equals the table from the original, for hand-made runs with quality, re-validation, a transfer, a trigger
and clean tables."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from fake_runs import fake_records

import robustness as rb
from robustness.analysis.runs import load_runs
from robustness.report import write_report
from robustness.schema.packing import MANIFEST_FILE, pack_output
from robustness.schema.specs import VerdictOptions

CLEAN = ("model_id,setting,n,accuracy,min_class_recall,max_pred_share\n"
         "{model},{setting},50,0.9,0.85,0.55\n")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _succeeded(records: list[dict]) -> list[int]:
    return [r["example_id"] for r in records if r["result"] == "succeeded"]


def _revalidation(example_id: int, valid: bool) -> dict:
    return {"schema_version": 1, "example_id": example_id, "adv_text": f"adv | {example_id}", "preset": "morris2020",
            "swaps": [], "unaligned_words": 0, "oov_words": [], "similarity": 0.9, "orig_perplexity": 10.0,
            "adv_perplexity": 12.0, "ppl_ratio": 1.2, "valid": valid, "lm": "lm", "encoder": "enc",
            "word_cosine_ok": True, "pos_ok": valid, "similarity_ok": True, "ppl_ratio_ok": True}


def _transfer(out: Path, source: Path) -> Path:
    source_spec = json.loads((source / "spec.json").read_text())
    path = out / "transfers" / "pabee-p1_from_base"
    path.mkdir(parents=True)
    records = fake_records(1)
    spec = {"kind": "transfer", "run_id": path.name, "source_run_id": source_spec["run_id"], "dataset": "sst2",
            "recipe": "textfooler", "goal": "accuracy", "source_model_id": "bert-base", "source_setting": "full",
            "model_id": "pabee", "setting": "patience:1", "num_layers": 3, "head": "pabee", "n": len(records)}
    (path / "spec.json").write_text(json.dumps(spec))
    (path / "run.json").write_text(json.dumps({"status": "complete", "num_records": len(records)}))
    _jsonl(path / "records.jsonl", records)
    return path


def _trigger(out: Path) -> Path:
    path = out / "triggers" / "pabee-p1_trigger3_sst2_abc123"
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"kind": "trigger", "run_id": path.name, "model_id": "pabee"}))
    (path / "run.json").write_text(json.dumps({"status": "complete"}))
    row = {"trigger_id": path.name, "prefix": "zebra zebra zebra", "length": 3, "source_model_id": "pabee",
           "source_setting": "patience:1", "model_id": "pabee", "setting": "patience:1", "replayed": False,
           "dataset": "sst2", "n": 4, "clean_mean_exit": 2.0, "trigger_mean_exit": 2.5, "exit_shift": 0.5,
           "efficiency_gain_left": 0.5, "clean_accuracy": 0.75, "trigger_accuracy": 0.5,
           "trigger_at_last_layer": 0.5, "prediction_changed": 0.25}
    (path / "evaluation.jsonl").write_text(json.dumps(row) + "\n" + '{"torn')  # a torn tail stays torn
    return path


@pytest.fixture
def study(tmp_path: Path, make_run) -> Path:
    """A suite output: baseline and PABEE at patience 1 and 2, quality scores on two runs, one run re-validated,
    a transfer, a trigger, clean tables, and the files packing leaves out (a lock, a model)."""
    out = tmp_path / "study"
    base = make_run(out, "bert-base", "full", None, "textfooler")
    p1 = make_run(out, "pabee", "pabee", 1, "textfooler")
    make_run(out, "pabee", "pabee", 2, "textfooler")
    for run, records in ((base, fake_records(None, single_head=True)), (p1, fake_records(1))):
        _jsonl(run / "quality.jsonl", [{"schema_version": 1, "example_id": i, "orig_perplexity": 10.0,
                                        "adv_perplexity": 20.0 + i, "similarity": 0.8, "lm": "tiny-lm"}
                                       for i in _succeeded(records)])
    _jsonl(p1 / "revalidation.jsonl", [_revalidation(i, k == 0) for k, i in enumerate(_succeeded(fake_records(1)))])
    (p1 / ".lock").write_text("")
    _transfer(out, base)
    _trigger(out)
    (out / "clean").mkdir()
    (out / "clean" / "bert-base.csv").write_text(CLEAN.format(model="bert-base", setting="full"))
    (out / "clean" / "pabee.csv").write_text(CLEAN.format(model="pabee", setting="patience:1")
                                             + "pabee,patience:2,50,0.88,0.8,0.6\n")
    (out / "selection.json").write_text('{"split": "validation", "n": 4, "seed": 0}\n')
    (out / "verdict.json").write_text('{"alpha": 0.05, "equivalence_margin": 0.1, "margin": 0.02, "min_n": 2}\n')
    (out / "models" / "pabee").mkdir(parents=True)
    (out / "models" / "pabee" / "model.safetensors").write_bytes(b"weights")
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_packed_copy_holds_every_record_byte_for_byte(study: Path, tmp_path: Path) -> None:
    packed = pack_output(study, tmp_path / "packed")
    assert packed.runs["runs"] == sorted(p.name for p in (study / "runs").iterdir())
    assert len(packed.runs["transfers"]) == 1 and len(packed.runs["triggers"]) == 1
    assert packed.clean == ["bert-base.csv", "pabee.csv"]
    original, stored = _files(study), _files(tmp_path / "packed")
    assert not any(name.endswith(".jsonl") or name.endswith(".lock") or name.startswith("models")
                   for name in stored)
    recovered = {name.removesuffix(".gz"): gzip.decompress(data) if name.endswith(".gz") else data
                 for name, data in stored.items() if name != MANIFEST_FILE}
    kept = {name: data for name, data in original.items() if not name.endswith(".lock")
            and not name.startswith("models")}
    assert recovered == kept  # every file of every run, and nothing else, exactly as the run wrote it
    assert stored["verdict.json"] == original["verdict.json"]  # the verdict options, as they are
    manifest = json.loads(stored[MANIFEST_FILE])
    assert {n: e["sha256"] for n, e in manifest["files"].items()} == {
        n: hashlib.sha256(d).hexdigest() for n, d in kept.items()}
    assert manifest["original_bytes"] == packed.original_bytes == sum(map(len, kept.values()))
    assert packed.packed_bytes == sum(len(d) for n, d in stored.items() if n != MANIFEST_FILE)
    pack_output(study, tmp_path / "again")  # reproducible: the same stored bytes
    assert {n: d for n, d in _files(tmp_path / "again").items() if n != MANIFEST_FILE} == {
        n: d for n, d in stored.items() if n != MANIFEST_FILE}


def test_tables_from_the_packed_copy_equal_the_original(study: Path, tmp_path: Path) -> None:
    pack_output(study, tmp_path / "packed")
    for source, name in ((study, "a"), (tmp_path / "packed", "b")):
        write_report(source, tmp_path / name, provenance={"command": "same"})
        rb.aggregate(source, out=tmp_path / f"agg-{name}")
    tables = _files(tmp_path / "a" / "tables")
    assert {"quality.csv", "revalidation.csv", "transfer.csv", "triggers.csv", "verdict.csv"} <= set(tables)
    assert _files(tmp_path / "b" / "tables") == tables
    assert (tmp_path / "b" / "report.md").read_text() == (tmp_path / "a" / "report.md").read_text()
    assert _files(tmp_path / "agg-b") == _files(tmp_path / "agg-a")
    # the clean tables were read: the verdict judged eligibility off the attack sample
    assert "0.88" in tables["verdict_candidates.csv"].decode()
    for packed, run in zip(load_runs(tmp_path / "packed"), load_runs(study), strict=True):
        assert (packed.spec, packed.info) == (run.spec, run.info)
        pd.testing.assert_frame_equal(packed.records, run.records)


def test_rb_report_of_the_packed_copy_is_judged_by_its_verdict_options(study: Path, tmp_path: Path) -> None:
    pack_output(study, tmp_path / "packed")
    recorded = VerdictOptions(margin=0.02, min_n=2, equivalence_margin=0.1)  # study's verdict.json
    write_report(study, tmp_path / "bench", verdict_options=recorded)  # as bench wrote its report
    write_report(study, tmp_path / "defaults")
    md, _ = rb.report(tmp_path / "packed", out=tmp_path / "packed-report")
    tables = {n: _files(tmp_path / f / "tables") for n, f in (("bench", "bench"), ("defaults", "defaults"),
                                                               ("packed", "packed-report"))}
    for name in ("verdict.csv", "verdict_candidates.csv"):
        assert tables["packed"][name] == tables["bench"][name] != tables["defaults"][name], name
    assert f"verdict options: {tmp_path / 'packed' / 'verdict.json'}: margin 0.02, min_n 2" in md.read_text()
    md, _ = rb.report(tmp_path / "packed", out=tmp_path / "flag", min_n=100)  # one field replaced
    write_report(study, tmp_path / "expected", verdict_options=VerdictOptions(margin=0.02, equivalence_margin=0.1))
    flagged, expected = _files(tmp_path / "flag" / "tables"), _files(tmp_path / "expected" / "tables")
    assert flagged["verdict_candidates.csv"] == expected["verdict_candidates.csv"] != tables["bench"][
        "verdict_candidates.csv"]
    assert "margin 0.02, min_n 100" in md.read_text() and "(with --min-n given)" in md.read_text()


def test_unfinished_runs_and_existing_folders_are_refused(study: Path, tmp_path: Path, make_run) -> None:
    into = tmp_path / "packed"
    into.mkdir()
    (into / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        pack_output(study, into)
    assert (into / "mine.txt").read_text() == "keep"
    pack_output(study, into, overwrite=True)  # replaced whole: nothing of the old folder stays
    assert not (into / "mine.txt").exists() and (into / "runs").is_dir()
    with pytest.raises(ValueError, match="would hold the output it packs"):
        pack_output(study, study, overwrite=True)
    with pytest.raises(ValueError, match="would hold the output it packs"):
        pack_output(study, tmp_path, overwrite=True)
    with pytest.raises(ValueError, match="is not a bench output"):
        pack_output(study / "clean", tmp_path / "x")
    make_run(study, "pabee", "pabee", None, "textfooler", status="running", records=fake_records(None)[:2])
    with pytest.raises(ValueError, match=r"pabee-pfull_textfooler_sst2_\w+ is not complete \(status running\)"):
        pack_output(study, tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_a_packed_copy_packs_again_and_a_written_to_one_is_refused(study: Path, tmp_path: Path) -> None:
    pack_output(study, tmp_path / "packed")
    pack_output(tmp_path / "packed", tmp_path / "twice")
    first, second = _files(tmp_path / "packed"), _files(tmp_path / "twice")
    assert {n: d for n, d in second.items() if n != MANIFEST_FILE} == {
        n: d for n, d in first.items() if n != MANIFEST_FILE}
    run = next((tmp_path / "packed" / "runs").iterdir())
    (run / "records.jsonl").write_text("")  # an attack resumed into the packed copy
    with pytest.raises(ValueError, match="holds both records.jsonl and records.jsonl.gz"):
        load_runs(tmp_path / "packed")
