"""The façade ``import robustness as rb``: each job on tiny models, compared with what its command writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import robustness as rb
from robustness.cli import main

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
needs_shared = pytest.mark.skipif(not (SHARED / "nltk_data").is_dir(), reason="shared resources absent")
SENTENCES = ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
             "i have never been so bored", "warm and funny", "a tedious mess"]
#: what differs between two runs of the same spec: wall time
TIMING = ("attack_time_s",)


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _bench(suite: Path, out: Path, data_root: Path, **options):
    """``rb.bench`` of a tiny suite on the fixture's data and the shared NLTK data, one worker."""
    return rb.bench(suite, out=out, data_dir=data_root / "data", nltk_data=SHARED / "nltk_data", workers=1, **options)


def _full_depth_accuracy(model_dir: Path) -> float:
    """Accuracy of the last layer's classifier on SENTENCES (labels 1, 0, 1, ... as ``write_sst2`` writes them)."""
    import torch

    from robustness.models.pabee import load_model_and_tokenizer

    net, tokenizer = load_model_and_tokenizer(model_dir)
    with torch.no_grad():
        logits = net.all_layer_logits(**tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    labels = torch.tensor([(i + 1) % 2 for i in range(len(SENTENCES))])
    return float((logits[-1].argmax(-1) == labels).float().mean())


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, write_sst2) -> Path:
    root = tmp_path_factory.mktemp("api")
    write_sst2(root, SENTENCES)
    rows = [{"sentence": f"a {w} film number {i}", "label": int(w in ("good", "great")), "idx": i}
            for i, w in enumerate(["good", "great", "bad", "awful"] * 3)]
    pd.DataFrame(rows).to_parquet(root / "data" / "sst2" / "train.parquet")
    return root


@pytest.fixture(scope="module")
def attacked(data_root, tiny_pabee_dir) -> object:
    return rb.attack(tiny_pabee_dir, "deepwordbug", out=data_root / "runs" / "a", setting=1, n=4, query_budget=10,
                     batch_size=4, data_dir=data_root / "data", nltk_data=SHARED / "nltk_data")


def test_import_is_light_and_jobs_resolve_lazily() -> None:
    code = ("import sys, robustness as rb; heavy = [m for m in ('torch', 'transformers', 'pandas', 'textattack', "
            "'robustness.api') if m in sys.modules]; assert not heavy, heavy; rb.attack; rb.bench; "
            "assert 'robustness.api' in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(rb.JOBS) <= set(dir(rb))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        rb.nothing  # noqa: B018


def test_report_and_quality_are_their_modules_and_callable() -> None:
    import inspect

    import robustness.quality
    import robustness.report

    assert rb.report is robustness.report and rb.quality is robustness.quality
    assert callable(rb.report) and rb.report.write_report is robustness.report.write_report
    assert list(inspect.signature(rb.report).parameters)[:2] == ["runs", "out"]
    assert list(inspect.signature(rb.quality).parameters)[0] == "runs"


def test_train_equals_the_command(tmp_path, tiny_backbone_dir, data_root) -> None:
    options = {"epochs": 1, "batch_size": 4, "seed": 1}
    out = rb.train(tmp_path / "api", backbone=str(tiny_backbone_dir), data_dir=data_root / "data", **options)
    assert out == tmp_path / "api" and (out / "train.json").is_file()
    assert main(["train", "--backbone", str(tiny_backbone_dir), "--out", str(tmp_path / "cli"), "--epochs", "1",
                 "--batch-size", "4", "--seed", "1", "--data-dir", str(data_root / "data")]) == 0
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "cli" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="unknown training option.*epochz"):
        rb.train(tmp_path / "bad", epochz=3)


def test_evaluate_equals_the_command_and_calibrates(tmp_path, tiny_pabee_dir, data_root) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_pabee_dir, model)  # calibration.json is written into the model directory
    table = rb.evaluate(model, data_dir=data_root / "data", timing_repeats=0, out=tmp_path / "api.csv",
                        match_patience=["patience:1"])
    assert list(table["setting"][:2]) == ["patience:1", "full"] and len(table) == 4
    assert [s.split(":")[0] for s in table["setting"][2:]] == ["entropy", "maxprob"]
    assert list(table["calibration"][2:]) == ["entropy@patience:1", "maxprob@patience:1"]
    assert table.set_index("setting").loc["full", "accuracy"] == pytest.approx(_full_depth_accuracy(model))
    assert (tmp_path / "api.csv").read_text() == table.to_csv(index=False)
    calibration = json.loads((model / "calibration.json").read_text())
    assert set(calibration) == {"entropy@patience:1", "maxprob@patience:1"}
    assert main(["evaluate", "--model", str(model), "--data-dir", str(data_root / "data"), "--out",
                 str(tmp_path / "cli.csv"), "--timing-repeats", "0", "--match-patience", "patience:1"]) == 0
    assert (tmp_path / "cli.csv").read_text() == (tmp_path / "api.csv").read_text()
    with pytest.raises(ValueError, match="exists"):
        rb.evaluate(model, data_dir=data_root / "data", timing_repeats=0, out=tmp_path / "api.csv")


@needs_shared
def test_attack_equals_the_command(attacked, data_root, tiny_pabee_dir, tmp_path) -> None:
    assert attacked.complete and attacked.setting == "patience:1" and len(attacked.records) == 4
    assert attacked.path == data_root / "runs" / "a"
    assert main(["attack", "--model", str(tiny_pabee_dir), "--recipe", "deepwordbug", "--patience", "1", "--n", "4",
                 "--query-budget", "10", "--batch-size", "4", "--data-dir", str(data_root / "data"),
                 "--nltk-data", str(SHARED / "nltk_data"), "--out", str(tmp_path / "cli")]) == 0
    assert _records(tmp_path / "cli") == _records(attacked.path)
    assert json.loads((tmp_path / "cli" / "spec.json").read_text())["run_id"] == attacked.run_id


@needs_shared
def test_transfer_equals_the_command(attacked, tiny_full_dir, tmp_path) -> None:
    replay = rb.transfer(attacked.path, tiny_full_dir, out=tmp_path / "api", nltk_data=SHARED / "nltk_data")
    assert replay.complete and replay.spec["kind"] == "transfer" and len(replay.records) == 4
    assert replay.spec["source_run_id"] == attacked.run_id and replay.setting == "full"
    assert main(["transfer", str(attacked.path), "--model", str(tiny_full_dir), "--out", str(tmp_path / "cli"),
                 "--nltk-data", str(SHARED / "nltk_data")]) == 0
    assert _records(tmp_path / "cli") == _records(tmp_path / "api")
    with pytest.raises(ValueError, match="not a run directory"):
        rb.transfer(tmp_path, tiny_full_dir, out=tmp_path / "x")


@needs_shared
def test_quality_aggregate_report(attacked, tiny_gpt2_dir, tmp_path) -> None:
    run_dir = tmp_path / "runs" / attacked.path.name
    shutil.copytree(attacked.path, run_dir)  # the quality stage writes into the run
    succeeded = int((attacked.records["result"] == "succeeded").sum())
    assert rb.quality(tmp_path / "runs", lm=tiny_gpt2_dir) == {run_dir.resolve(): succeeded}
    assert len((run_dir / "quality.jsonl").read_text().splitlines()) == succeeded
    assert rb.quality([run_dir], lm=tiny_gpt2_dir) == {run_dir.resolve(): 0}  # resumed: nothing left to score

    tables = rb.aggregate(tmp_path / "runs")
    assert len(tables.summary) == 1 and tables.summary["n"].iloc[0] == 4 and tables.paths == {}
    assert set(tables.tables) == ({"exits", "flips", "quality"} if succeeded else {"exits", "flips"})
    written = rb.aggregate(tmp_path / "runs", out=tmp_path / "agg")
    # a CSV reads an empty cell (None or "" in memory: an accuracy run's slowdown_score, an unfolded row's same_as)
    # back as NaN
    pd.testing.assert_frame_equal(pd.read_csv(written.paths["summary.csv"]),
                                  written.summary.replace("", np.nan).fillna(np.nan), check_dtype=False)

    md, html = rb.report(tmp_path / "runs", out=tmp_path / "report", min_n=2)
    assert md == tmp_path / "report" / "report.md" and html.is_file() and "## Summary" in md.read_text()
    with pytest.raises(ValueError, match="no complete runs"):
        rb.aggregate(_incomplete(tmp_path))


def _incomplete(root: Path) -> Path:
    """A runs folder holding one run that is still running."""
    run = root / "incomplete" / "r"
    run.mkdir(parents=True)
    from robustness.schema import RunSpec

    spec = RunSpec(model_id="m", model_dir="/m", recipe="pwws", dataset="glue/sst2", setting="patience:1", n=4)
    (run / "spec.json").write_text(json.dumps({**spec.to_dict(), "num_layers": 2, "head": "pabee",
                                               "run_id": spec.run_id}))
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    (run / "records.jsonl").write_text("")
    return run.parent


@needs_shared
def test_bench(tmp_path, tiny_pabee_dir, tiny_full_dir, data_root, capfd) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        '[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 4\nquery_budget = 10\nbatch_size = 4\n'
        'recipes = ["deepwordbug"]\npatience = [1, "full"]\ntransfers = [["tp@1", "tf@full"]]\n'
        f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{tiny_pabee_dir}"\n'
        f'[[models]]\nid = "tf"\nhead = "full"\npath = "{tiny_full_dir}"\n')
    lines: list[str] = []
    capfd.readouterr()
    result = _bench(suite, tmp_path / "out", data_root, log=lines.append)
    assert capfd.readouterr() == ("", "")  # what the stages say goes to log
    assert "[bench] clean evaluation of tp on the selection set" in lines
    assert any(line.startswith("[bench] transfer 1/1: tf-pfull_from_tp-p1_deepwordbug") for line in lines)
    assert [p.name.split("_")[0] for p in result.runs] == ["tp-p1", "tp-pfull", "tf-pfull"]
    assert all(json.loads((p / "run.json").read_text())["status"] == "complete" for p in result.runs)
    assert len(result.transfers) == 1 and (result.transfers[0] / "records.jsonl").is_file()
    assert result.report_md == tmp_path / "out" / "report.md" and result.report_html.is_file()
    assert "[bench] 0 of 3 runs already complete" in lines and lines[-1].startswith("[bench] report:")
    again = _bench(suite, tmp_path / "out", data_root, log=lines.append)
    assert "[bench] 3 of 3 runs already complete" in lines and again.runs == result.runs
    part = _bench(suite, tmp_path / "out", data_root, part=(1, 2))
    assert part.report_md is None and part.runs == result.runs
    with pytest.raises(ValueError, match="--part must look like i/k"):
        rb.bench(suite, out=tmp_path / "out", part=(3, 2))


def test_jobs_named_like_a_module_stay_callable_whichever_is_imported_first():
    """``robustness.attack`` is a package and ``robustness.report``/``.quality`` are modules: importing them (as
    the stages do) binds the attribute to the module, which must still be the job when called."""
    import subprocess
    import sys

    code = ("import robustness.attack.rundir, robustness.report, robustness.quality\n"
            "import robustness as rb\n"
            "print(all(callable(getattr(rb, n)) for n in rb.JOBS), rb.attack.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "robustness.attack"]


def test_bench_revalidates_when_the_suite_asks(tmp_path, tiny_pabee_dir, tiny_gpt2_dir, data_root, monkeypatch,
                                               capfd) -> None:
    import numpy as np

    import robustness.revalidate as reval
    from robustness.quality import load_lm
    from robustness.resources.sentence_encoder import minilm
    from robustness.resources.textattack_compat import import_textattack

    embedding = import_textattack().shared.WordEmbedding(np.eye(2, dtype=np.float32), {"a": 0, "b": 1},
                                                         {0: "a", 1: "b"}, None)
    asked = {}

    def checkers(lm=None, **paths):  # the full counter-fitted vocabulary takes minutes to build
        asked.update(paths, lm=lm)
        return reval.Checkers(embedding=embedding, tag=reval.nltk_universal_tagger(paths["nltk_data"]),
                              encoder=minilm(), encoder_name="minilm", lm=load_lm(lm))

    monkeypatch.setattr(reval, "load_checkers", checkers)
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        f'[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 4\nquery_budget = 10\nbatch_size = 4\nlm = '
        f'"{tiny_gpt2_dir}"\nrevalidate = "morris2020"\nrecipes = ["deepwordbug"]\npatience = [1]\n'
        f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{tiny_pabee_dir}"\n')
    lines: list[str] = []
    capfd.readouterr()
    result = _bench(suite, tmp_path / "out", data_root, log=lines.append)
    assert capfd.readouterr() == ("", "")
    assert asked["lm"] == str(tiny_gpt2_dir) and asked["nltk_data"] == str(SHARED / "nltk_data")
    (run,) = result.runs
    succeeded = sum(r["result"] == "succeeded" for r in _records(run))
    assert f"[bench] revalidate: {run.name}: {succeeded} adversarial texts re-checked" in lines
    assert len((run / "revalidation.jsonl").read_text().splitlines()) == succeeded
