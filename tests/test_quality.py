"""The quality stage on a tiny random GPT-2 (2 layers, hidden 32) with the MiniLM tokenizer."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch

from robustness.cli import main
from robustness.quality import QUALITY_FILE, load_lm, perplexities, read_quality, score_run

TEXTS = ["a gripping , beautifully acted film", "dull", "the plot is thin but the jokes land well enough"]


@pytest.fixture(scope="module")
def tiny_lm_dir(tiny_gpt2_dir) -> Path:
    return tiny_gpt2_dir


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_dir):
    return load_lm(tiny_lm_dir)


def test_perplexity_is_exp_mean_nll_and_padding_invariant(tiny_lm) -> None:
    batched = perplexities(tiny_lm, TEXTS, batch_size=3)
    alone = [perplexities(tiny_lm, [t], batch_size=1)[0] for t in TEXTS]
    assert batched == pytest.approx(alone, rel=1e-5)
    ids = tiny_lm.tokenizer(TEXTS[0], return_tensors="pt").input_ids
    with torch.no_grad():
        expected = math.exp(tiny_lm.model(ids, labels=ids).loss.item())  # transformers' own shifted mean NLL
    assert batched[0] == pytest.approx(expected, rel=1e-5)


def test_uniform_lm_has_perplexity_vocab_size(tiny_lm_dir) -> None:
    lm = load_lm(tiny_lm_dir)
    with torch.no_grad():
        lm.model.lm_head.weight.zero_()  # tied to the input embedding: every logit is 0, the softmax uniform
    assert perplexities(lm, TEXTS) == pytest.approx([lm.model.config.vocab_size] * 3, rel=1e-4)


@pytest.fixture()
def run_dir(tmp_path, make_record) -> Path:
    run = tmp_path / "runs" / "m-p1_pwws_sst2_abcdef"
    run.mkdir(parents=True)
    _record = functools.partial(make_record, words_total=4)
    records = [_record(0, "succeeded", TEXTS[0], "a gripping , beautifully acted movie"),
               _record(1, "failed", TEXTS[1], TEXTS[1]), _record(2, "skipped", TEXTS[2], None),
               _record(3, "succeeded", TEXTS[2], TEXTS[2])]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "spec.json").write_text(json.dumps({"run_id": run.name}))  # a finished run: quality scores only those
    (run / "run.json").write_text(json.dumps({"run_id": run.name, "status": "complete"}))
    return run


def test_score_run_scores_succeeded_examples_and_resumes(tiny_lm, run_dir) -> None:
    assert score_run(run_dir, tiny_lm, batch_size=1) == 2
    rows = read_quality(run_dir / QUALITY_FILE)
    assert [r["example_id"] for r in rows] == [0, 3]
    assert rows[1]["similarity"] == pytest.approx(1.0, abs=1e-5)  # unchanged text
    assert rows[1]["orig_perplexity"] == pytest.approx(rows[1]["adv_perplexity"], rel=1e-6)
    assert 0 < rows[0]["similarity"] < 1 and rows[0]["lm"] == tiny_lm.name
    assert rows[0]["orig_perplexity"] == pytest.approx(perplexities(tiny_lm, [TEXTS[0]])[0], rel=1e-5)
    assert score_run(run_dir, tiny_lm) == 0  # resumed: nothing left
    text = (run_dir / QUALITY_FILE).read_text()
    (run_dir / QUALITY_FILE).write_text(text[: text.index("\n") + 5])  # killed while writing the second line
    assert score_run(run_dir, tiny_lm) == 1
    assert [r["example_id"] for r in read_quality(run_dir / QUALITY_FILE)] == [0, 3]
    other = type(tiny_lm)(name="another-lm", model=tiny_lm.model, tokenizer=tiny_lm.tokenizer)
    with pytest.raises(ValueError, match="scored with another LM"):
        score_run(run_dir, other)




def test_known_perplexities_are_not_computed_again(tiny_lm, run_dir, tmp_path) -> None:
    import shutil

    runs = [shutil.copytree(run_dir, tmp_path / name) for name in ("first", "second", "alone")]
    known: dict[str, float] = {}
    assert score_run(runs[0], tiny_lm, batch_size=2, known=known) == 2
    assert set(known) == {TEXTS[0], "a gripping , beautifully acted movie", TEXTS[2]}

    class Refuses:  # every perplexity of the second run is known: the LM must not run
        def __call__(self, *args, **kwargs):
            raise AssertionError("the LM ran for a known text")

    silent = type(tiny_lm)(name=tiny_lm.name, model=Refuses(), tokenizer=tiny_lm.tokenizer)
    assert score_run(runs[1], silent, batch_size=2, known=known) == 2
    assert score_run(runs[2], tiny_lm, batch_size=2) == 2  # without the shared dict
    first, second, alone = (read_quality(r / QUALITY_FILE) for r in runs)
    assert first == second
    for key in ("orig_perplexity", "adv_perplexity", "similarity"):
        assert [r[key] for r in first] == pytest.approx([r[key] for r in alone], rel=1e-5)


def test_quality_cli(tiny_lm_dir, run_dir, capsys) -> None:
    (run_dir / "spec.json").write_text(json.dumps({"run_id": run_dir.name}))  # what makes it a run directory
    assert main(["quality", str(run_dir.parent), "--lm", str(tiny_lm_dir)]) == 0
    assert f"{run_dir.name}: 2 adversarial texts scored" in capsys.readouterr().out
    assert len(read_quality(run_dir / QUALITY_FILE)) == 2
    assert main(["quality", str(run_dir), "--lm", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no config.json and 0 .gguf files" in err


def test_perplexities_keep_the_given_order_whatever_the_lengths(tiny_lm) -> None:
    texts = ["a much longer sentence than the others , with many more words in it", "short", "", "mid length text"]
    assert perplexities(tiny_lm, [], batch_size=2) == []
    together = perplexities(tiny_lm, texts, batch_size=2)  # batched by length: short+empty, mid+long
    alone = [perplexities(tiny_lm, [t], batch_size=1)[0] for t in texts]
    assert together == pytest.approx(alone, rel=1e-5, nan_ok=True)
    assert together[0] != pytest.approx(together[1], rel=1e-3)
