"""The bad-input matrix: every case is one tiny fixture and one command; each must exit with code 2, print one
line naming the problem, and leave every file that existed before exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from robustness.cli import main  # noqa: E402

SENTENCES = ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic", "so bored"]


def _frame(sentences=SENTENCES, labels=(1, 0, 1, 0)) -> pd.DataFrame:
    return pd.DataFrame({"sentence": list(sentences), "label": list(labels), "idx": range(len(labels))})


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_pabee_dir, tiny_full_dir) -> Path:
    """data/ (SST-2 train + validation), model/ (tiny PABEE), full/ (tiny baseline), run/ (a complete run)."""
    from robustness.attack.runner import run_attack
    from robustness.suite.specs import RunSpec

    root = tmp_path_factory.mktemp("world")
    (root / "data" / "sst2").mkdir(parents=True)
    _frame().to_parquet(root / "data" / "sst2" / "validation.parquet")
    _frame(SENTENCES * 2, (1, 0, 1, 0) * 2).to_parquet(root / "data" / "sst2" / "train.parquet")
    shutil.copytree(tiny_pabee_dir, root / "model")
    shutil.copytree(tiny_full_dir, root / "full")
    spec = RunSpec(model_id="model", model_dir=str(root / "model"), recipe="deepwordbug", dataset="sst2",
                   setting="patience:1", n=2, query_budget=5, batch_size=4, data_dir=str(root / "data"))
    run_attack(spec, root / "run", progress=False)
    return root


def _attack(w: Path, *extra: str, model: str = "model", out: str = "out") -> list[str]:
    return ["attack", "--model", str(w / model), "--recipe", "deepwordbug", "--patience", "1", "--n", "2",
            "--query-budget", "5", "--data-dir", str(w / "data"), "--out", str(w / out), *extra]


def _suite(w: Path, body: str = "", models: str | None = None, suite: str = "") -> list[str]:
    models = models if models is not None else (f'[[models]]\nid = "m"\npath = "{w / "model"}"\n'
                                                'settings = [1, "full"]\n')
    text = ('[suite]\nname = "bad"\ndataset = "glue/sst2"\nn = 2\nquery_budget = 5\n'
            f'recipes = ["deepwordbug"]\n{suite}{body}\n{models}')
    (w / "suite.toml").write_text(text)
    return ["bench", str(w / "suite.toml"), "--out", str(w / "bench"), "--data-dir", str(w / "data")]


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _records(w: Path) -> Path:
    return w / "run" / "records.jsonl"


# --- data -------------------------------------------------------------------------------------------------
def empty_split(w):
    _frame([], []).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w), "has no rows"


def n_larger_than_split(w):
    return _attack(w)[:-2] + ["--n", "9", "--out", str(w / "out")], "fewer than the 9 examples"


def null_text(w):
    _frame([None, "b", "c", "d"]).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w)[:-2] + ["--n", "4", "--out", str(w / "out")], "empty or not text"


def empty_text(w):
    _frame(["  ", "b", "c", "d"]).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w)[:-2] + ["--n", "4", "--out", str(w / "out")], "empty or not text"


def string_labels(w):
    _frame(labels=["pos", "neg", "pos", "neg"]).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w), "labels must be integers"


def labels_out_of_range(w):
    _frame(labels=[1, 0, 7, 0]).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w)[:-2] + ["--n", "4", "--out", str(w / "out")], "outside 0..1"


def missing_column(w):
    pd.DataFrame({"text": SENTENCES, "label": [1, 0, 1, 0]}).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w), "missing columns ['sentence']"


def corrupt_parquet(w):
    _write(w / "data" / "sst2" / "validation.parquet", b"PAR1 not really parquet")
    return _attack(w), "validation.parquet: cannot read it as parquet"


def non_utf8_csv(w):
    (w / "data" / "sst2" / "validation.parquet").unlink()
    _write(w / "data" / "sst2" / "validation.csv", b"sentence,label\n\xff\xfe bad bytes,1\nok,0\n")
    return _attack(w), "validation.csv: cannot read it as csv"


def overlong_text(w):
    _frame(["word " * 5000, "b", "c", "d"]).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _attack(w)[:-2] + ["--n", "4", "--out", str(w / "out")], "more than the limit of 20000"


def missing_data_dir(w):
    return _attack(w)[:-4] + ["--data-dir", str(w / "nope"), "--out", str(w / "out")], "data directory not found"


def unknown_dataset(w):
    return _attack(w, "--dataset", "nope"), "unknown dataset 'nope'"


def missing_split(w):
    return _attack(w, "--split", "test"), "split 'test' of glue/sst2 not found"


# --- models -----------------------------------------------------------------------------------------------
def missing_model(w):
    return _attack(w, model="nomodel"), "no model at"


def half_saved_model(w):
    (w / "model" / "model.safetensors").unlink()
    return _attack(w), "half-saved model (model.safetensors missing)"


def partial_model_dir(w):
    shutil.copytree(w / "model", w / ".model.partial-4242")
    return _attack(w, model=".model.partial-4242"), "half-saved model left by an interrupted save"


def corrupt_safetensors(w):
    _write(w / "model" / "model.safetensors", b"\x00" * 64)
    return _attack(w), "cannot load the model"


def truncated_safetensors(w):
    data = (w / "model" / "model.safetensors").read_bytes()
    _write(w / "model" / "model.safetensors", data[: len(data) // 2])
    return _attack(w), "cannot load the model"


def config_is_a_list(w):
    _write(w / "model" / "config.json", "[1, 2]")
    return _attack(w), "must hold a JSON object, not a list"


def config_not_json(w):
    _write(w / "model" / "config.json", "{not json")
    return _attack(w), "config.json is not valid JSON"


def foreign_model_config(w):
    _write(w / "model" / "config.json", json.dumps({"model_type": "bert", "hidden_size": 32}))
    return _attack(w), "is not a saved PABEE model"


# --- attack -----------------------------------------------------------------------------------------------
def unknown_recipe(w):
    argv = _attack(w)
    argv[argv.index("deepwordbug")] = "nosuch"
    return argv, "unknown recipe 'nosuch'"


def patience_at_least_layers(w):
    argv = _attack(w)
    argv[argv.index("--patience") + 1] = "2"
    return argv, "needs patience < the model's 2 layers"


def attack_out_is_a_file(w):
    _write(w / "out", "a file")
    return _attack(w), "is a file"


def attack_into_foreign_dir(w):
    _write(w / "out" / "run.json", '{"mine": 1}')
    return _attack(w), "no spec.json: not a run of robustness"


def baseline_with_patience(w):
    return _attack(w, model="full"), "full-depth baseline"


def attack_other_spec(w):
    argv = _attack(w, out="run")
    argv[argv.index("--query-budget") + 1] = "6"
    return argv, "describes another run"


def attack_spec_not_json(w):
    _write(w / "run" / "spec.json", "{")
    (w / "run" / "run.json").unlink()
    return _attack(w, out="run"), "spec.json is not valid JSON"


def attack_resume_other_weights(w):
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(w / "model" / "model.safetensors")
    save_file({k: v + 1 if v.dtype == torch.float32 else v for k, v in weights.items()},
              w / "model" / "model.safetensors", metadata={"format": "pt"})
    info = json.loads((w / "run" / "run.json").read_text())
    _write(w / "run" / "run.json", json.dumps({**info, "status": "interrupted"}))
    return _attack(w, out="run"), "the run was made by model"


# --- evaluate / train --------------------------------------------------------------------------------------
def evaluate_out_exists(w):
    _write(w / "eval.csv", "mine")
    return ["evaluate", "--model", str(w / "model"), "--data-dir", str(w / "data"), "--out", str(w / "eval.csv")], \
        "exists; pass --overwrite"


def evaluate_out_is_dir(w):
    (w / "evaldir").mkdir()
    return ["evaluate", "--model", str(w / "model"), "--data-dir", str(w / "data"), "--out", str(w / "evaldir")], \
        "is a directory"


def _train(w: Path, out: str, *extra: str) -> list[str]:
    return ["train", "--backbone", str(w / "model"), "--data-dir", str(w / "data"), "--out", str(w / out), *extra]


def train_out_is_file(w):
    _write(w / "trained", "a file")
    return _train(w, "trained"), "is a file"


def train_out_foreign_dir(w):
    _write(w / "trained" / "notes.txt", "mine")
    return _train(w, "trained", "--overwrite"), "non-empty directory that holds no model"


def train_out_holds_model(w):
    return _train(w, "model"), "already holds a model"


def train_zero_epochs(w):
    return _train(w, "trained", "--epochs", "0"), "epochs must be >= 1"


def train_under_a_file(w):
    _write(w / "afile", "x")
    return _train(w, "afile/model"), "is a file"


# --- suites / bench ---------------------------------------------------------------------------------------
def suite_unknown_recipe_second(w):
    argv = _suite(w)
    text = (w / "suite.toml").read_text().replace('recipes = ["deepwordbug"]', 'recipes = ["deepwordbug", "nosuch"]')
    (w / "suite.toml").write_text(text)
    return argv, "suite.toml: unknown recipe 'nosuch'"


def suite_id_dotdot(w):
    return _suite(w, models='[[models]]\nid = "../evil"\nhead = "full"\n'), "model id '../evil'"


def suite_id_absolute(w):
    return _suite(w, models='[[models]]\nid = "/tmp/evil"\nhead = "full"\n'), "model id '/tmp/evil'"


def suite_id_mathtext(w):
    return _suite(w, models='[[models]]\nid = "$x^2$"\nhead = "full"\n'), "model id '$x^2$'"


def suite_n_is_text(w):
    argv = _suite(w)
    (w / "suite.toml").write_text((w / "suite.toml").read_text().replace("n = 2", 'n = "five"'))
    return argv, "n must be an integer, got 'five'"


def suite_invalid_toml(w):
    argv = _suite(w)
    _write(w / "suite.toml", "[suite\n")
    return argv, "invalid TOML"


def suite_not_utf8(w):
    argv = _suite(w)
    _write(w / "suite.toml", b"[suite]\nname = \"\xff\"\n")
    return argv, "invalid TOML"


def suite_missing(w):
    return ["bench", str(w / "nosuite.toml"), "--out", str(w / "bench")], "suite file not found"


def bench_foreign_report(w):
    _write(w / "bench" / "report.md", "my own notes")
    return _suite(w), "refusing to overwrite"


def bench_out_is_file(w):
    _write(w / "bench", "a file")
    return _suite(w), "is not a directory"


def suite_patience_at_least_layers(w):
    models = f'[[models]]\nid = "m"\npath = "{w / "model"}"\nsettings = [2]\n'
    return _suite(w, models=models), "needs patience < the model's 2 layers"


def suite_train_value_type(w):
    models = '[[models]]\nid = "m"\n[models.train]\nepochs = "two"\n'
    return _suite(w, models=models), "invalid [models.train] value"


def suite_n_larger_than_split(w):
    argv = _suite(w)
    (w / "suite.toml").write_text((w / "suite.toml").read_text().replace("n = 2", "n = 50"))
    return argv, "fewer than the 50 examples"


def bench_model_changed(w):
    bench_runs = w / "bench" / "runs"
    from robustness.suite.suite_file import load_suite

    argv = _suite(w)
    suite = load_suite(w / "suite.toml")
    spec = next(s for s in suite.run_specs({"m": str(w / "model")}) if s.setting == "patience:1")
    shutil.copytree(w / "run", bench_runs / spec.run_id)
    content = json.loads((bench_runs / spec.run_id / "spec.json").read_text())
    _write(bench_runs / spec.run_id / "spec.json", json.dumps({**content, "model_fingerprint": "0123456789abcdef"}))
    return argv, "were made by other weights"


# --- aggregate / report / compare / ls ----------------------------------------------------------------------
def torn_complete_run(w):
    data = _records(w).read_bytes()
    _write(_records(w), data[: data.rstrip(b"\n").rfind(b"\n") + 1] + b'{"schema_version": 2, "exam')
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "holds 1 whole records but"


def garbage_record_line(w):
    lines = _records(w).read_text().splitlines(keepends=True)
    _write(_records(w), lines[0] + "garbage\n" + "".join(lines[1:]))
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "records.jsonl, line 2: not a valid record"


def records_not_utf8(w):
    _write(_records(w), _records(w).read_bytes() + b"\xff\xfe\n")
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "line 3: not a valid record"


def run_json_not_json(w):
    _write(w / "run" / "run.json", "{")
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "run.json is not valid JSON"


def aggregate_foreign_table(w):
    _write(w / "agg" / "tables" / "summary.csv", "mine")
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "refusing to overwrite"


def aggregate_not_a_run(w):
    (w / "empty").mkdir()
    return ["aggregate", str(w / "empty"), "--out", str(w / "agg")], "no run directories"


def report_foreign_report(w):
    _write(w / "rep" / "report.html", "<html>mine</html>")
    return ["report", str(w / "run"), "--out", str(w / "rep")], "refusing to overwrite"


def report_foreign_figure(w):
    _write(w / "rep" / "figures" / "tradeoff.png", b"\x89PNG mine")
    return ["report", str(w / "run"), "--out", str(w / "rep")], "refusing to overwrite"


def report_out_is_file(w):
    _write(w / "rep", "a file")
    return ["report", str(w / "run"), "--out", str(w / "rep")], "is not a directory"


def compare_with_itself(w):
    return ["compare", str(w / "run"), str(w / "run")], "with itself"


def compare_out_exists(w):
    _write(w / "cmp.csv", "mine")
    return ["compare", str(w / "run"), str(w / "run"), "--out", str(w / "cmp.csv")], "exists; pass --overwrite"


def ls_runs_missing(w):
    return ["ls", "runs", str(w / "nowhere")], "not a directory"


# --- third campaign (issue 28): ownership of every run directory ---------------------------------------------
def _transfer(w: Path, *extra: str, out: str = "T", model: str = "model", setting: str = "full") -> list[str]:
    return ["transfer", str(w / "run"), "--model", str(w / model), "--setting", setting, "--out", str(w / out),
            *extra]


def transfer_into_users_records(w):
    _write(w / "T" / "records.jsonl", '{"mine": 1}\n{"mine": 2}')  # a torn-looking last line: must stay
    return _transfer(w), "holds records.jsonl but no spec.json"


def transfer_into_foreign_files(w):
    _write(w / "T" / "notes.txt", "mine")
    return _transfer(w), "holds notes.txt but no spec.json"


def transfer_out_is_a_file(w):
    _write(w / "T", "a file")
    return _transfer(w), "T is a file; choose another --out"


def transfer_into_another_run(w):
    return _transfer(w, out="run"), "describes another run"


def transfer_source_still_running(w):
    info = json.loads((w / "run" / "run.json").read_text())
    _write(w / "run" / "run.json", json.dumps({**info, "status": "running"}))
    return _transfer(w), "is not a complete attack run"


def transfer_source_spec_edited(w):
    spec = json.loads((w / "run" / "spec.json").read_text())
    _write(w / "run" / "spec.json", json.dumps({**spec, "n": 3}))
    return _transfer(w), "spec.json: edited after the run"


def transfer_onto_unreachable_setting(w):
    return _transfer(w, setting="patience:2"), "needs patience < the model's 2 layers"


def transfer_onto_baseline_patience(w):
    return _transfer(w, model="full", setting="patience:1"), "full-depth baseline"


def transfer_setting_malformed(w):
    return _transfer(w, setting="patience:two"), "--setting patience:two: patience must be a positive integer"


def attack_setting_malformed(w):
    argv = _attack(w)
    argv[argv.index("--patience") + 1] = "soon"
    return argv, "--patience soon: patience must be a positive integer"


def evaluate_match_patience_malformed(w):
    return _evaluate(w, "--match-patience", "deep"), "--match-patience deep ("


def transfer_batch_size_zero(w):
    return _transfer(w, "--batch-size", "0"), "--batch-size must be >= 1"


def quality_run_still_running(w):
    info = json.loads((w / "run" / "run.json").read_text())
    _write(w / "run" / "run.json", json.dumps({**info, "status": "running"}))
    return ["quality", str(w / "run"), "--lm", str(w / "model")], "is not complete (run.json status 'running')"


def quality_run_without_records(w):
    (w / "run" / "records.jsonl").unlink()
    return ["quality", str(w / "run"), "--lm", str(w / "model")], "has no records.jsonl"


def quality_users_quality_file(w):
    _write(w / "run" / "quality.jsonl", "my notes\nmore notes\n")
    return ["quality", str(w / "run"), "--lm", str(w / "model")], "quality.jsonl, line 1: not a quality record"


def quality_lm_missing_path(w):
    return ["quality", str(w / "run"), "--lm", str(w / "no" / "lm")], "/no/lm: no such file or directory"


def quality_lm_not_causal(w):
    return ["quality", str(w / "run"), "--lm", str(w / "model")], "is not a causal language model"


def quality_batch_size_zero(w):
    return ["quality", str(w / "run"), "--batch-size", "0"], "--batch-size must be >= 1"


# --- impossible requests -------------------------------------------------------------------------------------
def _evaluate(w: Path, *extra: str, model: str = "model") -> list[str]:
    return ["evaluate", "--model", str(w / model), "--data-dir", str(w / "data"), "--out", str(w / "eval.csv"),
            *extra]


def evaluate_match_patience_unreachable(w):
    return _evaluate(w, "--match-patience", "patience:9"), "--match-patience patience:9"


def evaluate_match_speedup_impossible(w):
    return _evaluate(w, "--match-speedup", "5"), "--match-speedup 5.0"


def evaluate_match_on_baseline(w):
    return _evaluate(w, "--match-patience", "full", model="full"), "thresholds are calibrated on a multi-exit"


def evaluate_batch_size_zero(w):
    return _evaluate(w, "--batch-size", "0"), "--batch-size must be >= 1"


def evaluate_timing_repeats_negative(w):
    return _evaluate(w, "--timing-repeats", "-1"), "--timing-repeats must be >= 0"


def evaluate_limit_zero(w):
    return _evaluate(w, "--limit", "0"), "--limit must be >= 1"


def evaluate_max_length_zero(w):
    return _evaluate(w, "--max-length", "0"), "--max-length must be >= 1"


def attack_slowdown_at_full(w):
    argv = _attack(w, "--goal", "slowdown")
    argv[argv.index("--patience") + 1] = "full"
    return argv, "the slowdown goal needs an early-exit setting"


def attack_slowdown_on_baseline(w):
    argv = _attack(w, "--goal", "slowdown", model="full")
    argv[argv.index("--patience") + 1] = "full"
    return argv, "the slowdown goal needs an early-exit setting"


def attack_goal_target_too_deep(w):
    return _attack(w, "--goal", "slowdown", "--goal-target", "9"), "slowdown goal target 9 is outside 2..2"


def attack_goal_target_one(w):
    return _attack(w, "--goal", "slowdown", "--goal-target", "1"), "slowdown goal target 1 is outside 2..2"


def attack_n_zero(w):
    argv = _attack(w)
    argv[argv.index("--n") + 1] = "0"
    return argv, "--n must be >= 1"


def attack_query_budget_zero(w):
    argv = _attack(w)
    argv[argv.index("--query-budget") + 1] = "0"
    return argv, "--query-budget must be >= 1"


def foreign_config_without_weights(w):
    _write(w / "model" / "config.json", json.dumps({"model_type": "bert", "hidden_size": 32}))
    (w / "model" / "model.safetensors").unlink()
    return _attack(w), "config.json has model_type 'bert', not pabee"


def spec_n_edited(w):
    spec = json.loads((w / "run" / "spec.json").read_text())
    _write(w / "run" / "spec.json", json.dumps({**spec, "n": 4}))
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "spec.json: edited after the run"


def spec_setting_edited(w):
    spec = json.loads((w / "run" / "spec.json").read_text())
    _write(w / "run" / "spec.json", json.dumps({**spec, "setting": "full"}))
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "spec.json: edited after the run"


def spec_bad_field(w):
    spec = json.loads((w / "run" / "spec.json").read_text())
    _write(w / "run" / "spec.json", json.dumps({**spec, "n": "five"}))
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "spec.json: not a valid run spec (field n is 'five'"


def report_setting_never_run(w):
    return ["report", str(w / "run"), "--out", str(w / "rep"), "--setting", "patience:9"], \
        "--setting patience:9 is never run; choose one of patience:1"


def report_min_n_zero(w):
    return ["report", str(w / "run"), "--out", str(w / "rep"), "--min-n", "0"], "--min-n must be >= 1"


def report_equivalence_margin_out_of_range(w):
    return ["report", str(w / "run"), "--out", str(w / "rep"), "--equivalence-margin", "5"], \
        "equivalence_margin (report --equivalence-margin) must be a fraction in (0, 1), e.g. 0.05 = 5 points; got 5.0"


def _verdict_study(w: Path, name: str, verdict: str) -> Path:
    """A suite output ``w/name`` holding a copy of the run and a verdict.json."""
    shutil.copytree(w / "run", w / name / "runs" / "run")
    _write(w / name / "verdict.json", verdict)
    return w / name


def report_verdict_files_disagree(w):
    a = _verdict_study(w, "a", '{"margin": 0.01, "equivalence_margin": 0.05}')
    b = _verdict_study(w, "b", '{"margin": 0.01, "equivalence_margin": 0.1}')
    return ["report", str(a), str(b / "runs"), "--out", str(w / "rep"), "--margin", "0.02"], \
        (f"verdict options disagree: {a / 'verdict.json'} has equivalence_margin 0.05, {b / 'verdict.json'} has 0.1; "
         "pass --equivalence-margin or report them separately")


def report_verdict_file_out_of_range(w):
    a = _verdict_study(w, "a", '{"equivalence_margin": 5}')
    return ["report", str(a), "--out", str(w / "rep")], \
        f"{a / 'verdict.json'}: verdict equivalence_margin (report --equivalence-margin) must be a fraction in (0, 1)"


def suite_equivalence_margin_text(w):
    return _suite(w, body='[verdict]\nequivalence_margin = "5%"\n'), \
        "suite.toml: verdict equivalence_margin (report --equivalence-margin) must be a fraction in (0, 1)"


def clean_eval_not_utf8(w):
    _write(w / "clean.csv", b"model_id,setting\n\xff\xfe,1\n")
    return ["report", str(w / "run"), "--out", str(w / "rep"), "--clean-eval", str(w / "clean.csv")], \
        "--clean-eval " + str(w / "clean.csv")


def quality_file_not_utf8(w):
    _write(w / "run" / "quality.jsonl", b'{"example_id": 0, "lm": "\xff"}\n')
    return ["aggregate", str(w / "run"), "--out", str(w / "agg")], "quality.jsonl, line 1: not a quality record"


# --- bench: everything checked before the first model loads ---------------------------------------------------
def bench_shard_size_zero(w):
    return _suite(w) + ["--shard-size", "0"], "--shard-size must be >= 1"


def bench_workers_negative(w):
    return _suite(w) + ["--workers", "-1"], "--workers must be >= 1"


def bench_workers_zero(w):
    return _suite(w) + ["--workers", "0"], "--workers must be >= 1"


def bench_address_without_ray(w):
    return _suite(w) + ["--address", "auto"], "--address names a Ray cluster; add --engine ray"


def bench_ray_nothing_listening(w):
    return _suite(w) + ["--engine", "ray", "--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster"


def bench_ray_address_malformed(w):
    return _suite(w) + ["--engine", "ray", "--address", "somewhere"], "--address somewhere: expected HOST:PORT"


def suite_transfer_unreachable_target(w):
    return _suite(w, suite='transfers = [["m@patience:1", "m@patience:5"]]\n'), \
        "needs patience < the model's 2 layers"


def suite_transfer_source_not_run(w):
    return _suite(w, suite='transfers = [["m@entropy:0.5", "m@full"]]\n'), "the suite never runs m@entropy:0.5"


def suite_transfer_onto_itself(w):
    return _suite(w, suite='transfers = [["m@patience:1", "m@patience:1"]]\n'), "replays a run onto itself"


def suite_verdict_setting_never_run(w):
    return _suite(w, body='[verdict]\nsetting = "entropy:0.3"\n'), "[verdict] setting entropy:0.3 is never run"


def suite_goal_target_unreachable(w):
    return _suite(w, suite='goals = ["accuracy", "slowdown"]\ngoal_target = 5\n'), \
        "slowdown goal target 5 is outside 2..2"


def suite_calibrated_unreachable(w):
    models = f'[[models]]\nid = "m"\npath = "{w / "model"}"\nsettings = [1]\ncalibrated = ["entropy@patience:9"]\n'
    return _suite(w, models=models), "calibrated 'entropy@patience:9'"


def suite_overlong_text_outside_sample(w):
    _frame(["word " * 5000, *SENTENCES[1:]]).to_parquet(w / "data" / "sst2" / "validation.parquet")
    return _suite(w), "more than the limit of 20000"  # n = 2, seed 0 samples rows 1 and 3: row 0 is outside


def suite_calibration_poisoned(w):
    entry = {"reference": "entropy@patience:1", "setting": "entropy:0.0", "layer_speedup": float("nan")}
    _write(w / "model" / "calibration.json", json.dumps({"entropy@patience:1": entry}))
    models = f'[[models]]\nid = "m"\npath = "{w / "model"}"\nsettings = [1]\ncalibrated = ["entropy@patience:1"]\n'
    return _suite(w, models=models), "calibration.json: entry entropy@patience:1 is unusable"


def calibration_not_utf8(w):
    _write(w / "model" / "calibration.json", b'{"entropy@patience:1": "\xff"}')
    models = f'[[models]]\nid = "m"\npath = "{w / "model"}"\nsettings = [1]\ncalibrated = ["entropy@patience:1"]\n'
    return _suite(w, models=models), "calibration.json is not valid JSON"


NEW_CASES: list[Callable[[Path], tuple[list[str], str]]] = [
    transfer_into_users_records, transfer_into_foreign_files, transfer_out_is_a_file, transfer_into_another_run,
    transfer_source_still_running, transfer_source_spec_edited, transfer_onto_unreachable_setting,
    transfer_onto_baseline_patience, transfer_batch_size_zero, transfer_setting_malformed, attack_setting_malformed,
    evaluate_match_patience_malformed,
    quality_run_still_running, quality_run_without_records, quality_users_quality_file, quality_lm_missing_path,
    quality_lm_not_causal, quality_batch_size_zero,
    evaluate_match_patience_unreachable, evaluate_match_speedup_impossible, evaluate_match_on_baseline,
    evaluate_batch_size_zero, evaluate_timing_repeats_negative, evaluate_limit_zero, evaluate_max_length_zero,
    attack_slowdown_at_full, attack_slowdown_on_baseline, attack_goal_target_too_deep, attack_goal_target_one,
    attack_n_zero, attack_query_budget_zero, foreign_config_without_weights,
    spec_n_edited, spec_setting_edited, spec_bad_field, report_setting_never_run, report_min_n_zero,
    report_equivalence_margin_out_of_range, suite_equivalence_margin_text, report_verdict_files_disagree,
    report_verdict_file_out_of_range,
    clean_eval_not_utf8, quality_file_not_utf8,
    bench_shard_size_zero, bench_workers_negative, bench_workers_zero, bench_address_without_ray,
    bench_ray_nothing_listening, bench_ray_address_malformed, suite_transfer_unreachable_target,
    suite_transfer_source_not_run, suite_transfer_onto_itself, suite_verdict_setting_never_run,
    suite_goal_target_unreachable, suite_calibrated_unreachable, suite_overlong_text_outside_sample,
    suite_calibration_poisoned, calibration_not_utf8,
]


CASES: list[Callable[[Path], tuple[list[str], str]]] = [
    empty_split, n_larger_than_split, null_text, empty_text, string_labels, labels_out_of_range, missing_column,
    corrupt_parquet, non_utf8_csv, overlong_text, missing_data_dir, unknown_dataset, missing_split,
    missing_model, half_saved_model, partial_model_dir, corrupt_safetensors, truncated_safetensors,
    config_is_a_list, config_not_json, foreign_model_config,
    unknown_recipe, patience_at_least_layers, attack_out_is_a_file, attack_into_foreign_dir, baseline_with_patience,
    attack_other_spec, attack_spec_not_json, attack_resume_other_weights,
    evaluate_out_exists, evaluate_out_is_dir, train_out_is_file, train_out_foreign_dir, train_out_holds_model,
    train_zero_epochs, train_under_a_file,
    suite_unknown_recipe_second, suite_id_dotdot, suite_id_absolute, suite_id_mathtext, suite_n_is_text,
    suite_invalid_toml, suite_not_utf8, suite_missing, bench_foreign_report, bench_out_is_file,
    suite_patience_at_least_layers, suite_train_value_type, suite_n_larger_than_split, bench_model_changed,
    torn_complete_run, garbage_record_line, records_not_utf8, run_json_not_json, aggregate_foreign_table,
    aggregate_not_a_run, report_foreign_report, report_foreign_figure, report_out_is_file, compare_with_itself,
    compare_out_exists, ls_runs_missing,
    *NEW_CASES,
]


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, world, tmp_path, capsys):
    w = tmp_path / "w"
    shutil.copytree(world, w)
    argv, expected = case(w)
    before = checksums(w)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(f"robustness {argv[0]}: error: "), err
    assert expected in err, err
    after = checksums(w)
    assert {k: after.get(k) for k in before} == before  # nothing that existed was changed or removed


def test_matrix_is_large_enough():
    assert len(CASES) >= 40 and len(NEW_CASES) >= 40
