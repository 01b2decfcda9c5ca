"""Universal slowdown triggers: a planted trigger that a tiny model is trained to react to, exact evaluation
numbers on hand-made exits, resume after an interruption, replay, ownership and bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustness.attack.trigger import TriggerSpec, evaluate_prefix, read_rows, replay_trigger, run_trigger
from robustness.attack.trigger_search import PrefixScorer, candidate_words, search_cost, search_trigger, with_prefix
from robustness.models.exits import setting_exit
from robustness.schema.settings import parse_setting

FILLERS = "movie story actor scene plot music camera ending script dialogue film cast".split()
DECOYS = "apple river window garden pencil ocean".split()
MARKER = "zebra"


def _sentence(rng: random.Random, marker: bool) -> str:
    words = [rng.choice(FILLERS + DECOYS) for _ in range(rng.randint(3, 7))]
    if marker:
        words.insert(0 if rng.random() < 0.8 else rng.randint(1, len(words)), MARKER)
    elif rng.random() < 0.5:  # what the search starts from ("the") and the decoys, in front, change nothing
        words.insert(0, rng.choice(["the", *DECOYS]))
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, minilm_tokenizer):
    """A 3-layer PABEE model (hidden 32) trained so that layer 1 predicts class 1 exactly when MARKER is in the
    text and layers 2-3 always predict class 0: at patience 1, a clean text exits at layer 2 (layers 1 and 2
    agree), a text with MARKER at layer 3. Plus a data dir (sst2 train/validation of filler sentences, no
    MARKER) and a vocabulary file of MARKER among decoys the model was trained to ignore."""
    import torch.nn.functional as F
    from transformers import BertConfig

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(0)
    rng = random.Random(0)
    config = BertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        vocab_size=30522)
    model = PabeeModel.from_backbone_config(config, "pabee", num_labels=2, label_names=["negative", "positive"])
    model.backbone.embeddings.word_embeddings.weight.requires_grad_(False)  # random embeddings suffice; fast
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(300):
        flags = [rng.random() < 0.5 for _ in range(32)]
        layer_logits = model(**minilm_tokenizer([_sentence(rng, f) for f in flags], padding=True,
                                                return_tensors="pt")).layer_logits
        zeros = torch.zeros(32, dtype=torch.long)
        loss = (F.cross_entropy(layer_logits[0], torch.tensor([int(f) for f in flags]))
                + F.cross_entropy(layer_logits[1], zeros) + F.cross_entropy(layer_logits[2], zeros))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    root = tmp_path_factory.mktemp("planted")
    model.save_pretrained(root / "model")
    minilm_tokenizer.save_pretrained(root / "model")
    (root / "data" / "sst2").mkdir(parents=True)
    for split, n in (("train", 24), ("validation", 20)):
        pd.DataFrame({"sentence": [_sentence(rng, False) for _ in range(n)],
                      "label": [i % 2 for i in range(n)]}).to_csv(root / "data" / "sst2" / f"{split}.csv", index=False)
    (root / "words.txt").write_text("\n".join([*DECOYS, MARKER]) + "\n")
    return root


def _spec(planted, **kw) -> TriggerSpec:
    base = dict(model_id="planted", model_dir=str(planted / "model"), setting="patience:1", length=1,
                train_n=16, n=20, candidates=10, iterations=1, vocabulary=str(planted / "words.txt"),
                data_dir=str(planted / "data"), batch_size=64)
    return TriggerSpec(**{**base, **kw})


def test_search_finds_the_planted_word_and_its_exit_shift(planted, tmp_path):
    out = run_trigger(_spec(planted), tmp_path / "t", progress=False)
    trigger = json.loads((out / "trigger.json").read_text())
    assert trigger["prefix"] == [MARKER]
    assert trigger["forward_passes"] == search_cost(16, 1, 7, 1, 1) == 16 + 7 * 16  # "the", then 7 candidates
    assert [e["position"] for e in trigger["trace"]] == [None, 1]
    assert trigger["train_mean_exit"] == 3.0 and trigger["trace"][0]["mean_exit"] == 2.0
    (row,) = read_rows(out)
    assert (row["clean_mean_exit"], row["trigger_mean_exit"], row["exit_shift"]) == (2.0, 3.0, 1.0)
    assert row["efficiency_gain_left"] == 0.0 and row["trigger_at_last_layer"] == 1.0 and not row["replayed"]
    assert row["clean_accuracy"] == row["trigger_accuracy"] == 0.5  # layers 2-3 say 0; labels alternate
    assert pd.read_csv(out / "evaluation.csv")["prefix"].tolist() == [MARKER]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_beam_search_over_two_positions_places_the_marker(planted, tmp_path):
    out = run_trigger(_spec(planted, length=2, beam=2, iterations=2), tmp_path / "t", progress=False)
    trigger = json.loads((out / "trigger.json").read_text())
    assert MARKER in trigger["prefix"] and trigger["train_mean_exit"] == 3.0
    scores = [e["score"] for e in trigger["trace"]]
    assert scores == sorted(scores) and len(scores) == 1 + 2 * 2  # the start, then 2 passes over 2 positions


class _HandMadeModel:
    """Stands in for a 3-layer PABEE model: layers 2-3 say class 0; layer 1 says 1 when the text holds 'slow',
    or both the trigger word 'zebra' and 'movie' (so the trigger slows some texts only)."""

    num_layers, head, num_labels = 3, "pabee", 2

    def __init__(self, tokenizer):
        self.ids = {w: tokenizer.convert_tokens_to_ids(w) for w in ("slow", "zebra", "movie")}

    def parameters(self):  # where inputs go (robustness.models.evaluate.model_device): the CPU
        return iter([torch.zeros(1)])

    def all_layer_logits(self, input_ids, attention_mask=None, token_type_ids=None):
        has = {w: (input_ids == i).any(dim=1) for w, i in self.ids.items()}
        first = has["slow"] | (has["zebra"] & has["movie"])
        logits = torch.tensor([2.0, 0.0]).repeat(3, input_ids.shape[0], 1)
        logits[0, first] = torch.tensor([0.0, 2.0])
        return logits

    def exit_from_layer_logits(self, layer_logits, setting):
        return setting_exit(layer_logits, parse_setting(setting))


def test_evaluation_numbers_on_hand_made_exits(minilm_tokenizer):
    model = _HandMadeModel(minilm_tokenizer)
    texts, labels = ["a movie", "the movie", "a book", "slow book"], [0, 1, 0, 0]
    # clean exits 2, 2, 2, 3 (mean 2.25); with "zebra": 3, 3, 2, 3 (mean 2.75); every exit predicts class 0
    row = evaluate_prefix(model, minilm_tokenizer, texts, labels, ["zebra"], parse_setting("patience:1"))
    assert row["clean_mean_exit"] == 2.25 and row["trigger_mean_exit"] == 2.75 and row["exit_shift"] == 0.5
    assert row["efficiency_gain_left"] == pytest.approx((3 / 2.75 - 1) / (3 / 2.25 - 1))
    assert row["clean_accuracy"] == row["trigger_accuracy"] == 0.75 and row["prediction_changed"] == 0.0
    assert (row["clean_at_last_layer"], row["trigger_at_last_layer"]) == (0.25, 0.75)
    scorer = PrefixScorer(model, minilm_tokenizer, texts, labels, parse_setting("patience:1"))
    assert [m for _, m in scorer([[], ["zebra"], ["apple"]])] == [2.25, 2.75, 2.25]
    assert scorer.forward_passes == 12
    assert with_prefix(("q", "s"), ["a", "b"]) == ("a b q", "s")


def test_candidates_are_a_deterministic_sorted_sample():
    words = [f"w{c}" for c in "abcdefghij"]
    assert candidate_words(words, 4, 1) == candidate_words(list(reversed(words)), 4, 1)
    sample = candidate_words(words, 4, 1)
    assert sample == sorted(sample) and len(sample) == 4
    assert candidate_words(words, 99, 1) == words


def test_search_resumes_from_its_state_after_an_interruption(minilm_tokenizer):
    model = _HandMadeModel(minilm_tokenizer)
    scorer = lambda: PrefixScorer(model, minilm_tokenizer, ["a movie", "the movie", "a book"], [0, 1, 0],  # noqa: E731
                                  parse_setting("patience:1"))
    words = ["apple", "movie", "zebra"]
    whole = search_trigger(scorer(), words, 2, iterations=2)
    saved = []

    def stop_after_two(state):
        saved.append(json.loads(json.dumps(state)))
        if state["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search_trigger(scorer(), words, 2, iterations=2, on_step=stop_after_two)
    resumed = search_trigger(scorer(), words, 2, iterations=2, state=saved[-1])
    assert resumed == whole and whole["beam"][0]["words"] in (["zebra", "movie"], ["movie", "zebra"])
    with pytest.raises(ValueError, match="candidate words differ"):
        search_trigger(scorer(), ["apple", "zebra"], 2, iterations=2, state=saved[-1])
    # hand-made exits: pass 1 finds the best prefix, pass 2 cannot raise its score, and the search stops early
    long = search_trigger(scorer(), words, 2, iterations=5)
    assert long["trace"] == whole["trace"] and long["done"] and long["step"] == 4


def test_run_resumes_after_interruption_and_refuses_foreign_dirs(planted, tmp_path, monkeypatch):
    spec = _spec(planted, length=2, iterations=2)
    whole = json.loads((run_trigger(spec, tmp_path / "whole", progress=False) / "trigger.json").read_text())
    calls = {"n": 0}
    original = PrefixScorer.__call__

    def flaky(self, prefixes):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, prefixes)

    monkeypatch.setattr(PrefixScorer, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_trigger(spec, tmp_path / "cut", progress=False)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "failed"
    assert json.loads((tmp_path / "cut" / "search_state.json").read_text())["step"] == 1
    monkeypatch.setattr(PrefixScorer, "__call__", original)
    resumed = json.loads((run_trigger(spec, tmp_path / "cut", progress=False) / "trigger.json").read_text())
    assert resumed == whole
    run_trigger(spec, tmp_path / "cut", progress=False)  # complete: nothing added
    assert len(read_rows(tmp_path / "cut")) == 1
    with pytest.raises(ValueError, match="describes another run"):
        run_trigger(_spec(planted, length=3), tmp_path / "cut", progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a run of robustness"):
        run_trigger(spec, tmp_path / "foreign", progress=False)


def test_replay_on_other_settings_appends_rows_once(planted, tmp_path):
    out = run_trigger(_spec(planted), tmp_path / "t", progress=False)
    rows = replay_trigger(out, planted / "model", ["patience:2", "full", "patience:2"])
    assert [r["setting"] for r in rows] == ["patience:2", "full"] and all(r["replayed"] for r in rows)
    # patience 2 on 3 layers: a clean text exits at 3 already (layers 1-3 agree), so the trigger cannot slow it
    assert rows[0]["clean_mean_exit"] == rows[0]["trigger_mean_exit"] == 3.0
    assert rows[1]["exit_shift"] == 0.0 and rows[1]["efficiency_gain_left"] != rows[1]["efficiency_gain_left"]
    assert replay_trigger(out, planted / "model", ["patience:2"]) == []
    assert len(read_rows(out)) == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robustness.cli", "trigger", *args], capture_output=True, text=True)


def test_cli_searches_and_replays(planted, tmp_path):
    common = ["--model", str(planted / "model"), "--data-dir", str(planted / "data")]
    done = _cli(*common, "--setting", "patience:1", "--setting", "full", "--length", "1", "--train-n", "8", "--n",
                "10", "--candidates", "7", "--iterations", "1", "--vocabulary", str(planted / "words.txt"),
                "--out", str(tmp_path / "t"))
    assert done.returncode == 0, done.stderr
    assert f"prefix '{MARKER}'" in done.stdout and len(read_rows(tmp_path / "t")) == 2
    replayed = _cli(*common, "--replay", str(tmp_path / "t"), "--setting", "patience:2")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 new setting(s)" in replayed.stdout


@pytest.mark.parametrize("extra, message", [
    (["--length", "0", "--out", "OUT"], "--length must be an integer >= 1"),
    (["--vocabulary", "/nonexistent/words.txt", "--out", "OUT"], "vocabulary file"),
    (["--score", "bogus", "--out", "OUT"], "unknown trigger score"),
    (["--replay", "OUT"], "holds no finished trigger"),
    (["--replay", "OUT", "--out", "OUT"], "drop --out"),
    (["--n", "5"], "needs --out DIR"),
    (["--setting", "patience:3", "--out", "OUT"], "needs patience < the model's 3 layers"),
])
def test_bad_input_is_one_line_and_exit_2(planted, tmp_path, extra, message):
    extra = [str(tmp_path / "o") if a == "OUT" else a for a in extra]
    setting = [] if "--setting" in extra else ["--setting", "patience:1"]
    done = _cli("--model", str(planted / "model"), "--data-dir", str(planted / "data"), *setting, *extra)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def _suite(planted, tmp_path, triggers: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(f"""[suite]
name = "t"
dataset = "glue/sst2"
recipes = ["textfooler"]
n = 10
data_dir = "{planted / 'data'}"
settings = ["patience:1", "patience:2"]
triggers = {triggers}

[[models]]
id = "planted"
path = "{planted / 'model'}"
""")
    return path


def test_suite_triggers_run_as_a_bench_stage(planted, tmp_path):
    from robustness.suite import stages
    from robustness.suite.suite_file import load_suite

    suite = load_suite(_suite(planted, tmp_path, f'[{{model = "planted", setting = "patience:1", length = 1, '
                              f'train_n = 8, candidates = 7, iterations = 1, vocabulary = "{planted / "words.txt"}", '
                              f'replay_on = ["planted@full"]}}]'))
    logged: list[str] = []
    stages.run_triggers(suite, {"planted": str(planted / "model")}, tmp_path / "out", None, log=logged.append)
    (where,) = (tmp_path / "out" / "triggers").iterdir()
    assert logged == [f"[bench] trigger 1/1: {where.name}"]
    rows = read_rows(where)
    assert [(r["setting"], r["replayed"]) for r in rows] == [("patience:1", False), ("patience:2", True),
                                                             ("full", True)]
    assert rows[0]["prefix"] == MARKER and rows[0]["n"] == 10 and rows[0]["exit_shift"] == 1.0
    stages.run_triggers(suite, {"planted": str(planted / "model")}, tmp_path / "out", None, log=logged.append)
    assert len(read_rows(where)) == 3  # resumed: nothing evaluated twice


@pytest.mark.parametrize("triggers, message", [
    ('[{model = "other", setting = "patience:1"}]', "needs a model of the suite"),
    ('[{model = "planted", setting = "patience:1", length = "3"}]', "trigger length must be int"),
    ('[{model = "planted", setting = "patience:1", bogus = 1}]', "unknown trigger keys"),
    ('[{model = "planted", setting = "patience:1", replay_on = ["nobody@full"]}]', "must be MODEL@SETTING"),
    ('{model = "planted"}', "triggers must be a list of tables"),
])
def test_bad_suite_triggers_name_the_file(planted, tmp_path, triggers, message):
    from robustness.suite.suite_file import load_suite

    with pytest.raises(ValueError, match=message) as caught:
        load_suite(_suite(planted, tmp_path, triggers))
    assert "suite.toml" in str(caught.value) and "\n" not in str(caught.value)


def test_python_api_searches_and_replays_like_the_command(planted, tmp_path):
    import robustness as rb

    args = dict(length=1, train_n=8, n=10, candidates=7, iterations=1, vocabulary=str(planted / "words.txt"),
                data_dir=str(planted / "data"))
    rows = rb.trigger(planted / "model", ["patience:1", "full"], out=tmp_path / "api", **args)
    assert rows["setting"].tolist() == ["patience:1", "full"] and rows["prefix"].tolist() == [MARKER] * 2
    assert rows.loc[0, "exit_shift"] == 1.0
    more = rb.trigger(planted / "model", "patience:2", replay=tmp_path / "api", data_dir=str(planted / "data"))
    assert more["setting"].tolist() == ["patience:1", "full", "patience:2"] and more.attrs["added"] == 1
    again = rb.trigger(planted / "model", "patience:2", replay=tmp_path / "api", data_dir=str(planted / "data"))
    assert again.attrs["added"] == 0 and len(again) == 3  # already evaluated there: skipped
    with pytest.raises(ValueError, match="needs out"):
        rb.trigger(planted / "model", "patience:1", **args)
