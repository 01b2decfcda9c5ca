"""Slowdown goal: the score on hand-made logits with known answers, the goal function against a tiny model,
and slowdown runs end to end (records carry the goal and reach or miss the target consistently)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from robustness.attack.goals import SlowdownGoalFunction, oavg_score, slowdown_score, waffle_score  # noqa: E402
from robustness.attack.records import read_records  # noqa: E402
from robustness.attack.runner import run_attack  # noqa: E402
from robustness.suite.specs import RunSpec  # noqa: E402


def probs_logits(*p: float) -> list[float]:
    """Two-class logits whose softmax is ``[p, 1 - p]``."""
    return [[math.log(x), math.log(1 - x)] for x in p]


def test_patience_score_uses_the_smallest_margin_of_the_agreeing_layers():
    # preds 0, 0, 1, 1: patience 1 fires at layer 2 (layers 1 and 2 agree); margins 2 and 0.5 -> c = 1 / 1.5
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.5], [0.0, 1.0], [0.0, 3.0]])
    exit_layer, score = slowdown_score(logits, "patience:1")
    assert exit_layer == 2 and score == pytest.approx((2 - 1 + 1 / 1.5) / 4)
    # patience 2 never fires (0,0 then a change, then 1,1): runs out of layers -> exit 4, score 1
    assert slowdown_score(logits, "patience:2") == (4, 1.0)
    # a smaller margin on the agreeing layers scores higher at the same exit layer (greedy has a gradient)
    closer = logits.clone()
    closer[1] = torch.tensor([0.6, 0.5])
    assert slowdown_score(closer, "patience:1")[1] > score


def test_flip_flop_and_full_depth_score_one():
    flip = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert slowdown_score(flip, "patience:1") == (4, 1.0)
    assert slowdown_score(flip, "full") == (4, 1.0)
    assert slowdown_score(flip[-1:], "patience:1", num_layers=4) == (4, 1.0)  # a single-head baseline


def test_maxprob_score_is_the_margin_to_the_threshold():
    logits = torch.tensor(probs_logits(0.6, 0.9, 0.95, 0.99))
    exit_layer, score = slowdown_score(logits, "maxprob:0.8")
    assert exit_layer == 2 and score == pytest.approx((1 + (1 - 0.9) / (1 - 0.8)) / 4)  # c = 0.5
    assert slowdown_score(logits, "maxprob:0.999") == (4, 1.0)  # never confident enough


def test_entropy_score_is_the_entropy_over_the_threshold():
    logits = torch.tensor(probs_logits(0.6, 0.9, 0.95, 0.99))
    h = [-(p * math.log(p) + (1 - p) * math.log(1 - p)) for p in (0.6, 0.9, 0.95, 0.99)]
    exit_layer, score = slowdown_score(logits, "entropy:0.25")  # h = 0.67, 0.33, 0.20, 0.06
    assert exit_layer == 3 and score == pytest.approx((2 + h[2] / 0.25) / 4)


def logits_of(*rows: tuple[float, ...]) -> torch.Tensor:
    """Per-layer logits whose softmax is each row of probabilities (log p; a 0 becomes a very small p)."""
    return torch.tensor([[math.log(max(x, 1e-30)) for x in row] for row in rows], dtype=torch.float64)


def test_waffle_score_is_one_at_uniform_and_one_minus_two_over_c_at_one_hot():
    for classes in (2, 3, 5):
        uniform, one_hot = (1 / classes,) * classes, (1.0,) + (0.0,) * (classes - 1)
        floor = 1 - 2 / classes  # ||one-hot - u||_1 = 2(C-1)/C, divided by C-1
        assert waffle_score(logits_of(uniform, uniform)) == pytest.approx(1.0)
        assert waffle_score(logits_of(one_hot, one_hot[::-1])) == pytest.approx(floor, abs=1e-12)
        assert waffle_score(logits_of(uniform, one_hot)) == pytest.approx((1 + floor) / 2)  # mean over classifiers


def test_waffle_score_on_two_and_three_classes_is_wafffles_own_normalisation():
    # two classes: |0.75 - 0.5| + |0.25 - 0.5| = 0.5, divided by C - 1 = 1 -> 0.5
    assert waffle_score(logits_of((0.75, 0.25))) == pytest.approx(0.5)
    assert waffle_score(logits_of((0.75, 0.25), (0.5, 0.5))) == pytest.approx(0.75)
    # three classes: |1/2 - 1/3| + 2 |1/4 - 1/3| = 1/3, divided by C - 1 = 2 -> 1 - 1/6 = 5/6 (WAFFLE's code)
    assert waffle_score(logits_of((0.5, 0.25, 0.25))) == pytest.approx(5 / 6)


def test_oavg_score_is_the_mean_probability_off_the_label():
    assert oavg_score(logits_of((0.75, 0.25), (0.25, 0.75)), 0) == pytest.approx(0.5)
    assert oavg_score(logits_of((0.9, 0.1), (0.6, 0.4)), 0) == pytest.approx((0.1 + 0.4) / 2)
    assert oavg_score(logits_of((0.2, 0.5, 0.3)), 2) == pytest.approx(0.7)
    assert oavg_score(logits_of((1.0, 0.0, 0.0)), 0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="not one of"):
        oavg_score(logits_of((0.5, 0.5)), 2)
    with pytest.raises(ValueError, match="classes >= 2"):
        waffle_score(torch.zeros(3, 1))


@pytest.fixture(scope="module")
def model(minilm_tokenizer):
    from transformers import BertConfig

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(3)
    config = BertConfig(num_hidden_layers=4, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        vocab_size=minilm_tokenizer.vocab_size, initializer_range=0.5)
    model = PabeeModel.from_backbone_config(config, "pabee", 2, ["negative", "positive"])
    with torch.no_grad():
        for linear in model.classifiers:
            linear.weight.normal_(0.0, 1.0)
    return model.eval()


def test_goal_function_scores_with_the_wrappers_logits(model, minilm_tokenizer, tiny_texts):
    from textattack.goal_function_results import GoalFunctionResultStatus
    from textattack.shared import AttackedText

    from robustness.attack.wrapper import PabeeModelWrapper

    SKIPPED = GoalFunctionResultStatus.SKIPPED
    wrapper = PabeeModelWrapper(model, minilm_tokenizer, "patience:1")
    exits = set()
    for target in (None, 3):
        goal = SlowdownGoalFunction(wrapper, target)
        for text in tiny_texts:
            attacked = AttackedText(text)
            result, _ = goal.init_attack_example(attacked, 0)
            exit_layer, score = slowdown_score(wrapper.layer_logits([text])[:, 0], "patience:1")
            assert result.score == pytest.approx(score)
            exits.add(exit_layer)
            assert (result.goal_status == SKIPPED) == (exit_layer >= (target or 4))  # goal already met
    assert len(exits) >= 2  # texts exit at different layers: the check above is not one trivial case
    with pytest.raises(ValueError, match="deeper than"):
        SlowdownGoalFunction(wrapper, 5)


@pytest.mark.parametrize("score", ["waffle", "oavg"])
def test_other_scores_guide_the_search_but_the_goal_stays_the_exit(model, minilm_tokenizer, tiny_texts, score):
    from textattack.goal_function_results import GoalFunctionResultStatus
    from textattack.shared import AttackedText

    from robustness.attack.wrapper import PabeeModelWrapper

    wrapper = PabeeModelWrapper(model, minilm_tokenizer, "patience:1")
    goal, exit_goal = SlowdownGoalFunction(wrapper, 3, score=score), SlowdownGoalFunction(wrapper, 3)
    differs = False
    for i, text in enumerate(tiny_texts):
        label = i % 2
        result, _ = goal.init_attack_example(AttackedText(text), label)
        reference, _ = exit_goal.init_attack_example(AttackedText(text), label)
        logits = wrapper.layer_logits([text])[:, 0]
        expected = waffle_score(logits) if score == "waffle" else oavg_score(logits, label)
        assert result.score == pytest.approx(expected)
        assert result.goal_status == reference.goal_status  # the same goal: exit layer >= 3
        differs = differs or result.score != pytest.approx(reference.score)
        skipped = result.goal_status == GoalFunctionResultStatus.SKIPPED
        assert skipped == (slowdown_score(logits, "patience:1")[0] >= 3)
    assert differs
    with pytest.raises(ValueError, match="slowdown score must be one of"):
        SlowdownGoalFunction(wrapper, score="entropy")


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory, tiny_texts) -> Path:
    """A local SST-2 validation split of the tiny texts (labels alternate)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("data")
    (root / "sst2").mkdir()
    pd.DataFrame({"sentence": tiny_texts, "label": [i % 2 for i in range(len(tiny_texts))],
                  "idx": range(len(tiny_texts))}).to_parquet(root / "sst2" / "validation.parquet")
    return root


@pytest.mark.parametrize("keep", [False, True])
def test_slowdown_runs_end_to_end(model, minilm_tokenizer, sst2_dir, tmp_path, keep):
    spec = RunSpec(model_id="four", model_dir="four", recipe="deepwordbug", dataset="sst2", setting="patience:1",
                   n=6, query_budget=40, batch_size=4,
                   data_dir=str(sst2_dir), goal="slowdown", keep_prediction=keep)
    assert "_deepwordbug-slowdown_sst2_" in spec.run_id
    run_dir = run_attack(spec, tmp_path / "run", model=model, tokenizer=minilm_tokenizer, progress=False)
    records = read_records(run_dir / "records.jsonl")
    assert len(records) == 6 and {(r["goal"], r["goal_target"]) for r in records} == {("slowdown", 4)}
    for r in records:
        if r["result"] == "skipped":  # already at the target: nothing to do
            assert r["orig_exit_layer"] == 4 and r["adv_exit_layer"] is None
        elif r["result"] == "succeeded":
            assert r["adv_exit_layer"] == 4 and r["adv_exit_layer"] > r["orig_exit_layer"]
            assert not keep or r["adv_pred"] == r["orig_pred"]
        else:
            assert r["adv_exit_layer"] < 4 or (keep and r["adv_pred"] != r["orig_pred"])
    assert any(r["result"] != "skipped" for r in records)  # some texts exit early: the attack had work to do
    assert {r["slowdown_score"] for r in records} == {"exit"}


def test_a_waffle_guided_slowdown_run_records_its_score(model, minilm_tokenizer, sst2_dir, tmp_path):
    spec = RunSpec(model_id="four", model_dir="four", recipe="deepwordbug", dataset="sst2", setting="patience:1",
                   n=6, query_budget=40, batch_size=4, data_dir=str(sst2_dir), goal="slowdown",
                   slowdown_score="waffle")
    assert "_deepwordbug-slowdown-waffle_sst2_" in spec.run_id
    run_dir = run_attack(spec, tmp_path / "run", model=model, tokenizer=minilm_tokenizer, progress=False)
    records = read_records(run_dir / "records.jsonl")
    assert len(records) == 6 and {(r["goal"], r["slowdown_score"]) for r in records} == {("slowdown", "waffle")}
    for r in records:  # the goal is still the exit layer: success means reaching layer 4
        assert (r["result"] == "succeeded") == (r["adv_exit_layer"] == 4)
        assert (r["result"] == "skipped") == (r["orig_exit_layer"] == 4)
    # replayed elsewhere, the texts keep the name of the score that found them
    from robustness.attack.transfer import TransferSpec, run_transfer

    replay = TransferSpec(source_run=str(run_dir), source_run_id=spec.run_id, model_id="four", model_dir="four",
                          setting="patience:2")
    out = run_transfer(replay, tmp_path / "replay", model=model, tokenizer=minilm_tokenizer)
    replayed = read_records(out / "records.jsonl")
    assert len(replayed) == 6 and {(r["goal"], r["slowdown_score"]) for r in replayed} == {("slowdown", "waffle")}


def test_the_cli_refuses_a_slowdown_score_without_the_slowdown_goal(tmp_path, capsys):
    from robustness.cli import main

    base = ["attack", "--model", str(tmp_path / "none"), "--recipe", "pwws", "--out", str(tmp_path / "run")]
    assert main([*base, "--slowdown-score", "waffle"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "robustness attack: error: --slowdown-score waffle needs --goal slowdown"
    with pytest.raises(SystemExit):
        main([*base, "--goal", "slowdown", "--slowdown-score", "uniform"])  # argparse: not a choice


def test_bench_refuses_a_slowdown_score_for_a_suite_without_slowdown_runs(tmp_path, capsys):
    from robustness.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\n[[models]]\nid="p"\n')
    assert main(["bench", str(suite), "--out", str(tmp_path / "out"), "--slowdown-score", "waffle"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robustness bench: error: --slowdown-score needs a suite with slowdown runs")
    assert "\n" not in err and str(suite) in err
