from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from robustness import resources as res
from robustness.resources import doctor as doc
from robustness.resources import sentence_encoder as enc

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
needs_shared = pytest.mark.skipif(not (SHARED / "lexicons").is_dir(), reason="shared resources absent")


def make_nltk_dir(root: Path, skip: str | None = None) -> Path:
    parts = {"stopwords": "corpora/stopwords.zip", "wordnet": "corpora/wordnet.zip",
             "pos_tagger": "taggers/averaged_perceptron_tagger_eng/x.json",
             "universal_tagset": "taggers/universal_tagset.zip"}
    for name, rel in parts.items():
        if name != skip:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("x")
    return root


def test_nltk_missing_names_what_a_dir_lacks(tmp_path: Path) -> None:
    good = make_nltk_dir(tmp_path / "good")
    bad = make_nltk_dir(tmp_path / "bad", skip="wordnet")
    assert res.nltk_missing(good) == []
    assert res.nltk_missing(bad) == ["wordnet"]


def test_paths_from_args_env_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "counter-fitting").mkdir()
    (tmp_path / "counter-fitting" / "vocabulary.txt").write_text("a\n")
    monkeypatch.delenv("ROBUSTNESS_LEXICONS", raising=False)
    assert res.lexicons_path() is None
    assert res.lexicons_path(tmp_path) == str(tmp_path / "counter-fitting")  # parent dir accepted
    monkeypatch.setenv("ROBUSTNESS_CACHE", str(tmp_path / "c"))
    assert res.cache_path() == tmp_path / "c"
    assert res.cache_path(tmp_path / "d") == tmp_path / "d"
    monkeypatch.delenv("ROBUSTNESS_CACHE")
    assert res.cache_path() == Path.home() / ".cache" / "robustness"


def test_calibrated_threshold_table() -> None:
    assert enc.calibrated_threshold("textfooler") == pytest.approx(0.840845057)
    assert enc.calibrated_threshold("bae") == pytest.approx(0.936338023)
    assert enc.calibrated_threshold("textbugger") == pytest.approx(0.8)
    # at a grid point the quantile threshold is the stored MiniLM quantile, converted to the metric
    cos10 = enc.MINILM_SWAP_COSINE[None][enc.QUANTILES.index(0.10)]
    assert enc.calibrated_threshold("a2t", quantile=0.10) == pytest.approx(cos10)
    assert enc.calibrated_threshold("textbugger", quantile=0.10) == pytest.approx(1 - math.acos(cos10) / math.pi)
    with pytest.raises(ValueError, match="unknown"):
        enc.calibrated_threshold("deepwordbug")
    with pytest.raises(ValueError, match="quantile"):
        enc.calibrated_threshold("textfooler", quantile=0.9)


def test_doctor_reports_missing_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NLTK_DATA", raising=False)
    monkeypatch.delenv("ROBUSTNESS_LEXICONS", raising=False)
    status = {s.name: s for s in doc.doctor(nltk_data=make_nltk_dir(tmp_path / "n", skip="pos_tagger"))}
    assert status["stopwords"].available and status["wordnet"].available
    assert not status["pos_tagger"].available and "pos_tagger" in status["pos_tagger"].detail
    assert not status["embedding"].available and "ROBUSTNESS_LEXICONS" in status["embedding"].detail
    assert not status["mlm"].available and "--mlm" in status["mlm"].detail
    mlm = tmp_path / "mlm"
    mlm.mkdir()
    (mlm / "config.json").write_text('{"architectures": ["BertForMaskedLM"]}')  # a config without weights
    status = {s.name: s for s in doc.doctor(mlm=mlm)}["mlm"]
    assert not status.available and "does not load as a masked language model" in status.detail


@needs_shared
def test_counter_fitted_embedding_cached_small_vocabulary(tmp_path: Path) -> None:
    emb = res.counter_fitted_embedding(SHARED / "lexicons", tmp_path, max_words=1500)
    matrix = emb.embedding_matrix
    assert matrix.shape == (1500, 50) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert emb.nn_matrix.shape == (1500, res.NN_K + 1)
    np.testing.assert_array_equal(emb.nn_matrix[:, 0], np.arange(1500))  # row itself first
    assert "good" in emb._word2index and "bad" not in emb.nearest_neighbours("good", 20)
    files = list(tmp_path.glob("counterfit-*.npz"))
    assert len(files) == 1
    assert res.counter_fitted_embedding(SHARED / "lexicons", tmp_path, max_words=1500) is emb  # memoised
    res._EMBEDDINGS.clear()
    again = res.counter_fitted_embedding(SHARED / "lexicons", tmp_path, max_words=1500)  # from disk
    np.testing.assert_array_equal(again.embedding_matrix, matrix)


def test_minilm_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["a good movie", "the plot was thin and the acting worse ."]
    ours = enc.minilm().encode(texts).numpy()
    ref = SentenceTransformer(enc.sentence_encoder_path(), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(enc.minilm().encode(texts[:1]).numpy(), ours[:1], atol=1e-6)  # cache


def test_clear_caches_forgets_embeddings_but_keeps_the_model(monkeypatch) -> None:
    encoder = enc.minilm()
    encoder.encode(["a good movie"])
    model = encoder.model
    enc.clear_caches()
    encoded: list[str] = []
    batch = encoder._encode_batch
    monkeypatch.setattr(encoder, "_encode_batch", lambda texts: encoded.extend(texts) or batch(texts))
    encoder.encode(["a good movie", "a good movie"])
    assert encoded == ["a good movie"] and enc.minilm() is encoder and encoder.model is model
    encoder.encode(["a good movie"])
    assert encoded == ["a good movie"]  # cached again


@needs_shared
def test_import_textattack_offline_keeps_hf_cache_and_no_network(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, socket
        def refuse(*a, **k):
            raise AssertionError("network touched")
        socket.socket.connect = refuse
        import nltk
        calls = []
        def recorder(*a, **k):
            calls.append(a)
            return False
        nltk.download = recorder
        from robustness.resources.textattack_compat import import_textattack
        ta = import_textattack(offline=True)
        import huggingface_hub.constants as c
        assert os.environ["HF_HOME"] == os.environ["EXPECT_HF"], os.environ["HF_HOME"]
        assert c.HF_HOME == os.environ["EXPECT_HF"], c.HF_HOME
        assert "XDG_CACHE_HOME" not in os.environ
        assert nltk.download is recorder and calls == [], calls  # no-op during import, restored after
        assert os.path.exists(os.path.join(os.environ["TA_CACHE_DIR"], "post_install_check_3"))
        print("OK", ta.__name__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "HF_HUB_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), EXPECT_HF=str(tmp_path / "hf"), TA_CACHE_DIR=str(tmp_path / "ta"))
    env["NLTK_DATA"] = str(SHARED / "nltk_data")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OK textattack" in out.stdout


@needs_shared
def test_windowed_encoder_does_not_encode_texts_it_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder
    from textattack.shared import AttackedText

    constraint = enc.local_sentence_encoder(threshold=0.88, metric="angular", window_size=15,
                                            skip_text_shorter_than_window=True)
    long = AttackedText("the plot of this film was thin , the acting was even worse and the music was loud and dull")
    short = AttackedText("a good movie")
    candidates = [long.replace_word_at_index(i, w) for i, w in ((1, "story"), (6, "lousy"), (18, "cheerful"))]
    candidates += [short.replace_word_at_index(1, w) for w in ("bad", "fine")]
    reference = AttackedText(long.text)

    def verdicts(method):
        texts = [AttackedText(t.text) for t in candidates]
        for text, original in zip(texts, candidates, strict=True):
            text.attack_attrs.update(original.attack_attrs)
        kept = method(constraint, texts, reference)
        return [t.text for t in kept], [t.attack_attrs["similarity_score"] for t in texts]

    stock = verdicts(SentenceEncoder._check_constraint_many)
    encoded: list[str] = []
    encode = constraint.model.encode
    monkeypatch.setattr(constraint.model, "encode", lambda texts: encoded.extend(texts) or encode(texts))
    ours = verdicts(type(constraint)._check_constraint_many)
    assert ours == stock
    assert 0 < len(stock[0]) < len(candidates) and stock[1][3:] == [1.0, 1.0]
    assert len(encoded) == 6 and not any("good" in t or "bad" in t for t in encoded)  # 3 windows + 3 starts


@pytest.mark.skipif(not (SHARED / "nltk_data" / "corpora").is_dir(), reason="shared NLTK data absent")
def test_wordnet_builds_its_wordnet_3_0_map_on_first_use_with_the_stock_answers() -> None:
    """In a fresh interpreter: after ``defer_wordnet_map30`` the WordNet that TextAttack's swap imported loads
    without building ``map30``, answers English lookups as NLTK's own reader does, and builds the same
    ``map30`` when it is first read."""
    code = textwrap.dedent("""
        from nltk.corpus import wordnet  # as TextAttack's WordSwapWordNet holds it, before the change
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
        from robustness.resources import textattack_compat as compat
        assert compat.defer_wordnet_map30()
        wordnet.ensure_loaded()
        assert type(wordnet).__name__ == "DeferredMap30WordNetReader"
        assert wordnet.__dict__["_map30"] is compat._DEFERRED  # not built at load
        stock = WordNetCorpusReader(wordnet.root, None)
        for word in ("good", "run", "bank", "quickly", "colour"):
            for pos in (None, "n", "v", "a", "r"):
                assert wordnet.synsets(word, pos) == stock.synsets(word, pos)
        assert [l.name() for l in wordnet.synsets("good")[0].lemmas()] == [
            l.name() for l in stock.synsets("good")[0].lemmas()]
        assert wordnet.map30 == stock.map30 and wordnet.map30  # built on first read, the same mapping
        assert not compat.defer_wordnet_map30()  # loaded: nothing left to change
        print("ok")
    """)
    env = {**os.environ, "NLTK_DATA": str(SHARED / "nltk_data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
