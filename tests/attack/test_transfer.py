"""Transfer: replaying a run against itself reproduces its successes; records, resume, the matrix, the CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from robustness.attack.records import read_records  # noqa: E402
from robustness.attack.runner import run_attack  # noqa: E402
from robustness.attack.transfer import TransferSpec, run_transfer  # noqa: E402
from robustness.suite.specs import RunSpec  # noqa: E402


@pytest.fixture(scope="module")
def source_run(tmp_path_factory, tiny_pabee_dir, tiny_texts) -> Path:
    """A finished deepwordbug run of the tiny PABEE model at patience 1 on the tiny texts."""
    import pandas as pd

    root = tmp_path_factory.mktemp("transfer")
    (root / "data" / "sst2").mkdir(parents=True)
    pd.DataFrame({"sentence": tiny_texts, "label": [i % 2 for i in range(len(tiny_texts))],
                  "idx": range(len(tiny_texts))}).to_parquet(root / "data" / "sst2" / "validation.parquet")
    spec = RunSpec(model_id="tiny", model_dir=str(tiny_pabee_dir), recipe="deepwordbug", dataset="sst2",
                   setting="patience:1", n=len(tiny_texts), query_budget=30, batch_size=4,
                   data_dir=str(root / "data"))
    return run_attack(spec, root / "runs" / spec.run_id, progress=False)


def transfer_spec(source: Path, model_dir: Path, setting: str) -> TransferSpec:
    return TransferSpec(source_run=str(source), source_run_id=source.name, model_id="tiny", model_dir=str(model_dir),
                        setting=setting)


def test_self_transfer_reproduces_every_success(source_run, tiny_pabee_dir, tmp_path):
    spec = transfer_spec(source_run, tiny_pabee_dir, "patience:1")
    out = run_transfer(spec, tmp_path / "self")
    source = {r["example_id"]: r for r in read_records(source_run / "records.jsonl")}
    records = read_records(out / "records.jsonl")
    assert [r["example_id"] for r in records] == sorted(source)
    assert any(r["result"] == "succeeded" for r in source.values())  # the check below is not vacuous
    for r in records:
        src = source[r["example_id"]]
        assert r["source_run_id"] == source_run.name and r["goal"] == "accuracy"
        assert (r["orig_pred"], r["orig_exit_layer"]) == (src["orig_pred"], src["orig_exit_layer"])
        # same model and setting: the source's successes transfer, everything else is skipped
        assert r["result"] == ("succeeded" if src["result"] == "succeeded" else "skipped")
        if r["result"] == "succeeded":
            assert (r["adv_pred"], r["adv_exit_layer"]) == (src["adv_pred"], src["adv_exit_layer"])
            assert r["num_forward_passes"] == 2 and r["layers_computed"] == r["orig_exit_layer"] + r["adv_exit_layer"]
    written = json.loads((out / "spec.json").read_text())
    assert written["kind"] == "transfer" and written["source_setting"] == "patience:1"
    assert written["recipe"] == "deepwordbug" and spec.run_id.startswith(f"tiny-p1_from_{source_run.name}_")


def test_transfer_resumes_and_feeds_the_matrix(source_run, tiny_pabee_dir, tmp_path):
    from robustness.analysis.plots import plot_transfer_matrix
    from robustness.analysis.transfer import transfer_table

    spec = transfer_spec(source_run, tiny_pabee_dir, "full")
    out = run_transfer(spec, tmp_path / "transfers" / spec.run_id)
    whole = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(whole[:2]) + whole[2][:10])  # killed mid-write
    run_transfer(spec, out)
    strip = [{k: v for k, v in json.loads(line).items() if k != "attack_time_s"} for line in whole]
    assert [{k: v for k, v in r.items() if k != "attack_time_s"} for r in read_records(out / "records.jsonl")] == strip
    table = transfer_table([tmp_path])
    row = table.iloc[0]
    assert len(table) == 1 and (row["source_setting"], row["target_setting"]) == ("patience:1", "full")
    results = [r["result"] for r in read_records(out / "records.jsonl")]
    replayed = results.count("succeeded") + results.count("failed")
    assert table.loc[0, "replayed"] == replayed and table.loc[0, "succeeded"] == results.count("succeeded")
    assert math.isnan(table.loc[0, "success_rate"]) if not replayed else 0 <= table.loc[0, "success_rate"] <= 1
    assert len(plot_transfer_matrix(table).axes) == 1
    with pytest.raises(ValueError, match="describes another run"):
        run_transfer(transfer_spec(source_run, tiny_pabee_dir, "patience:1"), out)


def test_transfer_cli_and_refusals(source_run, tiny_pabee_dir, tiny_full_dir, tmp_path, capsys):
    from robustness.cli import main

    out = tmp_path / "cli"
    assert main(["transfer", str(source_run), "--model", str(tiny_full_dir), "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert main(["transfer", str(source_run), "--model", str(tiny_full_dir), "--setting", "patience:1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "full-depth baseline" in capsys.readouterr().err
    assert main(["transfer", str(out), "--model", str(tiny_pabee_dir), "--out", str(tmp_path / "again")]) == 2
    assert "is a transfer, not an attack run" in capsys.readouterr().err


def test_shared_cache_encodes_each_text_once_and_changes_no_record(source_run, tiny_pabee_dir, tmp_path):
    from robustness.attack.wrapper import LayerLogitsCache

    def strip(out: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "attack_time_s"} for r in read_records(out / "records.jsonl")]

    from robustness.models.pabee import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)  # as bench does: one load, one cache per model
    cache, settings = LayerLogitsCache(), ("patience:1", "entropy:0.5", "full")
    shared = [run_transfer(transfer_spec(source_run, tiny_pabee_dir, settings[0]), tmp_path / "shared" / "0",
                           model=model, tokenizer=tokenizer, cache=cache)]
    first = cache.misses
    shared += [run_transfer(transfer_spec(source_run, tiny_pabee_dir, s), tmp_path / "shared" / str(i), model=model,
                            tokenizer=tokenizer, cache=cache) for i, s in enumerate(settings[1:], 1)]
    alone = [run_transfer(transfer_spec(source_run, tiny_pabee_dir, s), tmp_path / "alone" / str(i))
             for i, s in enumerate(settings)]
    assert [strip(a) for a in shared] == [strip(a) for a in alone]
    # the other settings replay the same texts: nothing more is encoded, every lookup is a hit
    assert first > 0 and cache.misses == first and cache.hits >= 2 * first


def test_accuracy_under_a_transferred_attack_counts_every_example_on_its_replayed_text(
        source_run, tiny_pabee_dir, tmp_path):
    """Four hand-set outcomes: attacked and flipped (wrong), source attack failed and the original right (right),
    the target already wrong on the original (wrong), attacked but still right (right): 2 of 4."""
    from robustness.analysis.transfer import transfer_table

    spec = transfer_spec(source_run, tiny_pabee_dir, "full")
    out = run_transfer(spec, tmp_path / "transfers" / spec.run_id)
    template = read_records(out / "records.jsonl")[0]
    outcomes = [("succeeded", 1, 1, 0), ("skipped", 0, 0, None), ("skipped", 1, 0, None), ("failed", 0, 0, 0)]
    rows = [{**template, "example_id": i, "result": result, "label": label, "orig_pred": orig, "adv_pred": adv}
            for i, (result, label, orig, adv) in enumerate(outcomes)]
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = transfer_table([tmp_path]).iloc[0]
    assert row["accuracy_under_attack"] == 0.5 and (row["n"], row["replayed"], row["succeeded"]) == (4, 2, 1)


def test_a_folder_of_transfers_only_is_reported_beside_the_runs_it_replays(source_run, tiny_pabee_dir, tmp_path):
    """Exploratory transfers kept in their own output (transfers/ only) join the report of the study's runs; on
    their own they are refused in one line that says why."""
    from robustness.report import write_report

    spec = transfer_spec(source_run, tiny_pabee_dir, "full")
    run_transfer(spec, tmp_path / "extra" / "transfers" / spec.run_id)
    write_report([source_run.parent, tmp_path / "extra"], tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "tables" / "transfer.csv")
    assert list(table["run_id"]) == [spec.run_id]
    with pytest.raises(ValueError, match=r"no attack run directories in .*extra; a report shows transfers beside"):
        write_report([tmp_path / "extra"], tmp_path / "alone")


def test_the_fixed_text_script_pairs_every_target_with_the_reference_on_the_same_texts(
        source_run, tiny_pabee_dir, tmp_path):
    """scripts/fixed_text_transfers.py on two hand-set transfers of one source: the reference keeps examples 0 and
    1, the other target 1 and 3, both lose the rest (2 of n each; one discordant pair each way, McNemar p = 1)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "fixed_text_transfers.py"
    module_spec = importlib.util.spec_from_file_location("fixed_text_transfers", path)
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)
    kept = {"full": [True, True, False, False], "patience:1": [False, True, False, True]}
    for setting, flags in kept.items():
        spec = transfer_spec(source_run, tiny_pabee_dir, setting)
        out = run_transfer(spec, tmp_path / "transfers" / spec.run_id)
        records = read_records(out / "records.jsonl")  # every example keeps its id; the outcomes are set by hand
        rows = [{**r, "label": 1, "orig_pred": 1, "adv_pred": 1 if right else 0,
                 "result": "failed" if right else "succeeded"}
                for r, right in zip(records, flags + [False] * (len(records) - len(flags)), strict=True)]
        (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = script.fixed_text_table([str(tmp_path)], "tiny", "tiny@full").set_index("target")
    assert list(table.index) == ["tiny@patience:1", "tiny@full"]
    target = table.loc["tiny@patience:1"]
    assert target["accuracy_under_attack"] == table.loc["tiny@full", "accuracy_under_attack"] == 2 / len(rows)
    assert (target["only_target_right"], target["only_reference_right"], target["p_value"]) == (1, 1, 1.0)
    assert math.isnan(table.loc["tiny@full", "p_value"])
    with pytest.raises(ValueError, match="no transfer from tiny to the reference tiny@patience:2"):
        script.fixed_text_table([str(tmp_path)], "tiny", "tiny@patience:2")
