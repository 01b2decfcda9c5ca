"""Strict re-validation of hand-made swaps: counter-fitted vectors made by hand (cosines known), NLTK's real
tagger from the bundle, a tiny random GPT-2 for the perplexity ratio and MiniLM for the sentence similarity."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from robustness.cli import main
from robustness.quality import load_lm, perplexities
from robustness.revalidate import (
    PRESETS,
    REVALIDATION_FILE,
    Checkers,
    Preset,
    align_words,
    check_preset,
    check_swaps,
    nltk_universal_tagger,
    read_revalidation,
    revalidate_run,
)

SHARED = Path(os.environ.get("ROBUSTNESS_RESOURCES", "/work/shared"))
pytestmark = pytest.mark.skipif(not (SHARED / "nltk_data" / "taggers").is_dir(), reason="shared NLTK data absent")
MORRIS = PRESETS["morris2020"]
ORIG = "the acting is superb and the story moves"
S = math.sqrt(1 - 0.95**2)
VECTORS = {  # unit vectors with known cosines: superb~wonderful 0.95, superb~terrible -1, acting~went 0.95
    "superb": [1, 0, 0], "wonderful": [0.95, S, 0], "terrible": [-1, 0, 0], "acting": [0, 1, 0],
    "went": [0, 0.95, S], "the": [0, 0, 1], "is": [0.6, 0.8, 0], "and": [0.8, 0, 0.6], "story": [0, 0.6, 0.8],
    "moves": [0.6, 0, 0.8],
}


@pytest.fixture(scope="module")
def embedding():
    from robustness.resources.textattack_compat import import_textattack

    words = list(VECTORS)
    matrix = np.asarray([VECTORS[w] for w in words], dtype=np.float32)
    return import_textattack(str(SHARED / "nltk_data")).shared.WordEmbedding(
        matrix, {w: i for i, w in enumerate(words)}, dict(enumerate(words)), None)


@pytest.fixture(scope="module")
def tag():
    return nltk_universal_tagger(SHARED / "nltk_data")


def _one(adv: str, embedding, tag) -> dict:
    swaps, unaligned = check_swaps(ORIG, adv, embedding, tag, MORRIS)
    assert unaligned == 0 and len(swaps) == 1
    return swaps[0]


def test_a_synonym_with_high_cosine_passes(embedding, tag) -> None:
    swap = _one("the acting is wonderful and the story moves", embedding, tag)
    assert (swap["index"], swap["orig_word"], swap["adv_word"]) == (3, "superb", "wonderful")
    assert swap["cosine"] == pytest.approx(0.95, abs=1e-6) and swap["cosine_ok"]
    assert swap["orig_pos"] == swap["adv_pos"] == "ADJ" and swap["pos_ok"]


def test_an_antonym_fails_the_embedding_check_not_the_pos_check(embedding, tag) -> None:
    swap = _one("the acting is terrible and the story moves", embedding, tag)
    assert swap["cosine"] == pytest.approx(-1.0, abs=1e-6) and not swap["cosine_ok"]
    assert swap["pos_ok"]


def test_a_noun_to_verb_swap_fails_pos_only(embedding, tag) -> None:
    swap = _one("the went is superb and the story moves", embedding, tag)
    assert swap["cosine_ok"]  # 0.95: only the part of speech is wrong
    assert (swap["orig_pos"], swap["adv_pos"], swap["pos_ok"]) == ("NOUN", "VERB", False)


def test_a_character_typo_is_out_of_vocabulary_and_fails(embedding, tag) -> None:
    swap = _one("the actign is superb and the story moves", embedding, tag)  # a DeepWordBug swap
    assert swap["cosine"] is None and not swap["cosine_ok"]
    assert swap["pos_ok"]  # tagged NOUN in context all the same


def test_words_are_aligned_position_wise_else_by_difflib() -> None:
    assert align_words(["a", "b", "c"], ["a", "x", "c"]) == ([(1, 1)], 0)
    assert align_words(["a", "b", "c"], ["a", "x", "c", "d"]) == ([(1, 1)], 1)  # one inserted word
    assert align_words(["a", "b", "c"], ["a", "c"]) == ([], 1)  # one deleted word
    assert align_words(["a", "b"], ["a", "b"]) == ([], 0)


def test_unknown_preset_is_refused() -> None:
    assert check_preset("morris2020") is MORRIS
    with pytest.raises(ValueError, match="unknown re-validation preset 'strict'; choose from morris2020"):
        check_preset("strict")


@pytest.fixture()
def run_dir(tmp_path, make_record) -> Path:
    run = tmp_path / "runs" / "m-p1_textfooler_sst2_abcdef"
    run.mkdir(parents=True)
    records = [make_record(0, "succeeded", ORIG, "the acting is wonderful and the story moves"),
               make_record(1, "failed", ORIG, ORIG), make_record(2, "skipped", ORIG, None),
               make_record(3, "succeeded", ORIG, "the actign is superb and the story moves"),
               make_record(4, "succeeded", ORIG, "the acting is superb, and the story moves!")]  # same words
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "spec.json").write_text(json.dumps({"run_id": run.name}))
    return run


@pytest.fixture(scope="module")
def checkers(embedding, tag, tiny_gpt2_dir) -> Checkers:
    from robustness.resources.sentence_encoder import minilm

    return Checkers(embedding=embedding, tag=tag, encoder=minilm(), encoder_name="minilm", lm=load_lm(tiny_gpt2_dir))


def test_revalidate_run_checks_every_success_and_resumes(run_dir, checkers) -> None:
    assert revalidate_run(run_dir, checkers, MORRIS, batch_size=2) == 3
    rows = read_revalidation(run_dir / REVALIDATION_FILE)
    assert [r["example_id"] for r in rows] == [0, 3, 4]
    synonym, typo, same = rows
    assert synonym["word_cosine_ok"] and synonym["pos_ok"] and synonym["oov_words"] == []
    assert synonym["ppl_ratio"] == pytest.approx(synonym["adv_perplexity"] / synonym["orig_perplexity"])
    assert synonym["orig_perplexity"] == pytest.approx(perplexities(checkers.lm, [ORIG])[0], rel=1e-5)
    assert synonym["similarity_ok"] == (synonym["similarity"] >= 0.98)
    assert synonym["ppl_ratio_ok"] == (synonym["ppl_ratio"] <= 1.5)
    assert synonym["valid"] == (synonym["similarity_ok"] and synonym["ppl_ratio_ok"])
    assert not typo["word_cosine_ok"] and typo["oov_words"] == ["actign"] and not typo["valid"]
    assert same["swaps"] == [] and same["word_cosine_ok"] and same["pos_ok"]  # punctuation only: no word swapped
    assert (same["lm"], same["encoder"], same["preset"]) == (checkers.lm.name, "minilm", "morris2020")

    assert revalidate_run(run_dir, checkers, MORRIS) == 0  # resumed: nothing left
    text = (run_dir / REVALIDATION_FILE).read_text()
    (run_dir / REVALIDATION_FILE).write_text(text[: text.index("\n") + 7])  # killed while writing line two
    assert revalidate_run(run_dir, checkers, MORRIS) == 2
    assert read_revalidation(run_dir / REVALIDATION_FILE) == rows


def test_a_file_of_another_preset_or_lm_is_refused(run_dir, checkers) -> None:
    revalidate_run(run_dir, checkers, MORRIS)
    other = Preset(name="other", min_word_cosine=0.5, pos_unchanged=False, min_similarity=0.5, max_ppl_ratio=9,
                   source="test")
    with pytest.raises(ValueError, match="another preset \\(morris2020\\); refusing to mix"):
        revalidate_run(run_dir, checkers, other)
    with pytest.raises(ValueError, match="another lm"):
        revalidate_run(run_dir, Checkers(**{**checkers.__dict__, "lm": type(checkers.lm)(
            name="another-lm", model=checkers.lm.model, tokenizer=checkers.lm.tokenizer)}), MORRIS)


def test_a_stale_or_foreign_file_is_refused(run_dir, checkers) -> None:
    revalidate_run(run_dir, checkers, MORRIS)
    records = (run_dir / "records.jsonl").read_text().replace("the actign is", "the actnig is")  # the run redone
    (run_dir / "records.jsonl").write_text(records)
    with pytest.raises(ValueError, match="is stale: example 3's adversarial text differs"):
        revalidate_run(run_dir, checkers, MORRIS)
    (run_dir / REVALIDATION_FILE).write_text('{"example_id": 0}\n')
    with pytest.raises(ValueError, match=f"{REVALIDATION_FILE}, line 1: not a re-validation record \\(lacks adv_text"):
        revalidate_run(run_dir, checkers, MORRIS)
    (run_dir / REVALIDATION_FILE).write_text("not json\n")
    with pytest.raises(ValueError, match="line 1: not JSON"):
        read_revalidation(run_dir / REVALIDATION_FILE)


def test_looser_thresholds_pass_what_morris_rejects(run_dir, checkers) -> None:
    loose = Preset(name="loose", min_word_cosine=-1.0, pos_unchanged=False, min_similarity=-1.0,
                   max_ppl_ratio=math.inf, source="test")
    revalidate_run(run_dir, checkers, loose)
    rows = {r["example_id"]: r for r in read_revalidation(run_dir / REVALIDATION_FILE)}
    assert rows[0]["valid"] and rows[4]["valid"]
    assert not rows[3]["valid"]  # out of vocabulary fails whatever the threshold


@pytest.mark.parametrize(("argv", "message"), [
    (["--preset", "strict"], "unknown re-validation preset 'strict'"),
    (["--batch-size", "0"], "--batch-size must be >= 1 (an integer), got 0"),
])
def test_cli_bad_inputs_exit_2_with_one_line(run_dir, capsys, argv, message) -> None:
    assert main(["revalidate", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and err.startswith("robustness revalidate: error:")


def test_cli_without_runs_exits_2(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["revalidate", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no run" in err
    assert main(["revalidate", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_rb_revalidate_is_the_module_made_callable(run_dir, checkers, monkeypatch) -> None:
    import robustness as rb
    import robustness.revalidate as reval

    assert rb.revalidate is reval
    monkeypatch.setattr(reval, "load_checkers", lambda lm=None, **paths: checkers)  # the full vocabulary takes minutes
    assert rb.revalidate(run_dir.parent) == {run_dir.resolve(): 3}
    assert rb.revalidate([run_dir]) == {run_dir.resolve(): 0}  # resumed
    with pytest.raises(ValueError, match="unknown re-validation preset"):
        rb.revalidate(run_dir, preset="strict")


def test_the_sentence_check_uses_use_m3_unless_minilm_or_a_directory_is_asked_for(monkeypatch):
    import robustness.quality as quality
    import robustness.resources as resources
    from robustness.resources.sentence_encoder import get_encoder, sentence_encoder_path
    from robustness.revalidate import load_checkers

    monkeypatch.setattr(resources, "counter_fitted_embedding", lambda *args: "embedding")  # minutes to build
    monkeypatch.setattr(quality, "load_lm", lambda lm: "lm")
    default = load_checkers(nltk_data=SHARED / "nltk_data")
    assert (default.encoder_name, default.encoder) == ("use-m3", get_encoder("use-m3"))
    chosen = load_checkers(nltk_data=SHARED / "nltk_data", sentence_encoder="minilm")
    assert chosen.encoder_name == sentence_encoder_path() and chosen.encoder.dim == 384
