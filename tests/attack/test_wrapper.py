"""PabeeModelWrapper: exit-layer probabilities, dynamic padding, batch independence, the shared cache."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if "NLTK_DATA" not in os.environ and not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data (for importing textattack) not found under {SHARED}", allow_module_level=True)
os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

from robustness.attack.wrapper import LayerLogitsCache, PabeeModelWrapper, text_key  # noqa: E402

TEXTS = [
    "a good movie",
    "terrible acting and a boring plot",
    "it was fine",
    "I loved every minute of it!",
    "meh",
    "the best film of the year, truly wonderful",
    "not bad",
    "what a waste of time",
]


@pytest.fixture(scope="module")
def tokenizer(minilm_tokenizer):
    return minilm_tokenizer


@pytest.fixture(scope="module")
def model(tokenizer):
    """A tiny PABEE model (hidden 32) with 4 layers rather than conftest's 2: with L = 2 every patience exits
    at layer 2, with 4 the exits vary with the patience and between examples."""
    from transformers import BertConfig

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(2)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, initializer_range=0.2)
    return PabeeModel.from_backbone_config(config, "pabee", 2, ["negative", "positive"]).eval()


@pytest.fixture(scope="module")
def mpnet_model(mpnet_tokenizer):
    """The same on MPNet (relative position bias, no token types) with the MPNet tokenizer; seed 4 gives
    exits that vary with the setting and between texts, and both labels at layer 4."""
    from transformers import MPNetConfig

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(4)
    config = MPNetConfig(vocab_size=len(mpnet_tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130, initializer_range=0.2)
    return PabeeModel.from_backbone_config(config, "pabee", 2, ["negative", "positive"]).eval()


@pytest.fixture(params=["bert", "mpnet"])
def victim(request):
    """``(model, tokenizer)``: the BERT model above, then the MPNet one (the equalities hold for both)."""
    if request.param == "bert":
        return request.getfixturevalue("model"), request.getfixturevalue("tokenizer")
    return request.getfixturevalue("mpnet_model"), request.getfixturevalue("mpnet_tokenizer")


@functools.cache
def alone(model, tokenizer, text):
    """All-layer logits ``[H, 1, C]`` of one text encoded alone (no padding)."""
    enc = tokenizer(*(text if isinstance(text, tuple) else (text,)), return_tensors="pt")
    return model.all_layer_logits(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))


def direct(model, tokenizer, text, patience):
    """Reference: one text alone, all-layer pass, PABEE exit, softmax -> (exit, probabilities, layer preds)."""
    layer_logits = alone(model, tokenizer, text)
    exit_layer, logits = model.exit_from_layer_logits(layer_logits, patience)
    return int(exit_layer[0]), logits.softmax(-1)[0].numpy(), layer_logits[:, 0].argmax(-1).tolist()


@pytest.mark.parametrize("patience", [1, 2, 3, None])
def test_probabilities_are_softmax_of_the_exit_layer(victim, patience):
    model, tokenizer = victim
    wrapper = PabeeModelWrapper(model, tokenizer, patience, batch_size=3)
    probs = wrapper(TEXTS)
    exits, _ = wrapper.exits(TEXTS)
    assert probs.shape == (len(TEXTS), 2) and probs.dtype == np.float32
    for i, text in enumerate(TEXTS):
        exit_layer, expected, _ = direct(model, tokenizer, text, patience)
        assert exits[i] == exit_layer
        np.testing.assert_allclose(probs[i], expected, atol=1e-5)
    if patience is None:
        assert set(exits.tolist()) == {4}


def split_threshold(values: torch.Tensor) -> float:
    """Midpoint of the widest gap in the middle half of ``values``: some texts exit early, some do not, and
    no value sits near the threshold (float noise cannot move an exit)."""
    ordered = values.flatten().sort().values
    lo, hi = len(ordered) // 4, 3 * len(ordered) // 4
    k = lo + int((ordered[lo + 1 : hi + 1] - ordered[lo:hi]).argmax())
    return float((ordered[k] + ordered[k + 1]) / 2)


def thresholds_of(model, tokenizer) -> list[str]:
    """An entropy and a max-probability setting whose thresholds split ``TEXTS`` (see :func:`split_threshold`)."""
    probs = torch.cat([alone(model, tokenizer, t) for t in TEXTS], dim=1).float().softmax(-1)
    entropy = -(probs * probs.log()).sum(-1)
    return [f"entropy:{split_threshold(entropy)}", f"maxprob:{split_threshold(probs.max(-1).values)}"]


@pytest.mark.parametrize("which", [0, 1])
def test_threshold_settings_answer_at_their_exit_and_match_true_early_exit(victim, which):
    model, tokenizer = victim
    setting = thresholds_of(model, tokenizer)[which]
    wrapper = PabeeModelWrapper(model, tokenizer, setting, batch_size=3)
    real = PabeeModelWrapper(model, tokenizer, setting, batch_size=3, true_early_exit=True)
    single = PabeeModelWrapper(model, tokenizer, setting, batch_size=1, true_early_exit=True)
    exits, probs = wrapper.exits(TEXTS)
    for other in (real, single):
        other_exits, other_probs = other.exits(TEXTS)
        assert other_exits.tolist() == exits.tolist()
        np.testing.assert_allclose(other_probs, probs, atol=1e-5)
    for i, text in enumerate(TEXTS):
        exit_layer, expected, _ = direct(model, tokenizer, text, setting)
        assert exits[i] == exit_layer
        np.testing.assert_allclose(probs[i], expected, atol=1e-5)
    assert len(set(exits.tolist())) >= 2  # the threshold splits the texts: a real test, not all at L


def test_exits_vary_per_example_not_per_batch(model, tokenizer):
    exits = PabeeModelWrapper(model, tokenizer, 1, batch_size=8).exits(TEXTS)[0]
    # hand-checked for this seeded model: the per-example rule, not one exit for the whole batch
    assert exits.tolist() == [direct(model, tokenizer, t, 1)[0] for t in TEXTS]
    assert len(set(exits.tolist())) > 1


def spy_embed(model, monkeypatch):
    """Record every call of ``model.embed`` (a text's first encoding): its input tensors."""
    calls = []
    original = model.embed

    def spy(input_ids, attention_mask=None, token_type_ids=None):
        calls.append({"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids})
        return original(input_ids, attention_mask, token_type_ids)

    monkeypatch.setattr(model, "embed", spy)
    return calls


def test_dynamic_padding_pads_each_batch_to_its_longest(model, tokenizer, monkeypatch):
    calls = spy_embed(model, monkeypatch)
    PabeeModelWrapper(model, tokenizer, 2, batch_size=3)(TEXTS)
    lengths = sorted(len(tokenizer(t)["input_ids"]) for t in TEXTS)
    real = [c["attention_mask"].sum(dim=1).tolist() for c in calls]
    assert sum(len(r) for r in real) == len(TEXTS)
    for call, row_lengths in zip(calls, real, strict=True):
        assert call["input_ids"].shape[1] == max(row_lengths)  # never padded beyond the longest of its batch
    # sorted by length before batching: the batches hold consecutive lengths
    assert [sorted(r) for r in real] == [lengths[0:3], lengths[3:6], lengths[6:8]]


def test_truncation_at_max_length(model, tokenizer, monkeypatch):
    calls = spy_embed(model, monkeypatch)
    PabeeModelWrapper(model, tokenizer, 2, max_length=6)(["word " * 50, "short"])
    assert [c["input_ids"].shape[1] for c in calls] == [6]


def test_result_independent_of_neighbours_and_batch_size(model, tokenizer):
    reference = PabeeModelWrapper(model, tokenizer, 1, batch_size=1)(TEXTS)
    reverse = PabeeModelWrapper(model, tokenizer, 1, batch_size=5)(TEXTS[::-1])[::-1]
    alone = np.stack([PabeeModelWrapper(model, tokenizer, 1, batch_size=32)([t])[0] for t in TEXTS])
    np.testing.assert_allclose(reverse, reference, atol=1e-5)
    np.testing.assert_allclose(alone, reference, atol=1e-5)
    assert (reverse.argmax(1) == reference.argmax(1)).all()


def test_cache_shared_across_patience_encodes_each_text_once(model, tokenizer, monkeypatch):
    calls = spy_embed(model, monkeypatch)
    cache = LayerLogitsCache()
    settings = (1, 2, 3, None)
    wrappers = [PabeeModelWrapper(model, tokenizer, p, batch_size=4, cache=cache) for p in settings]
    outputs = [w(TEXTS) for w in wrappers]
    outputs += [w(TEXTS[:3]) for w in wrappers]
    assert sum(len(c["input_ids"]) for c in calls) == len(TEXTS)  # 8 texts embedded once for 4 settings
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["size"], stats["restarted"]) == (3 * 8 + 4 * 3, 8, 8, 0)
    assert stats["resumed"] > 0  # deeper settings continued texts from the states the shallower ones left
    assert stats["states"] == 0  # every text is complete after the full-depth wrapper
    assert [w.num_encoded for w in wrappers] == [8, 0, 0, 0]
    lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]  # padding is not counted
    assert [w.tokens_encoded for w in wrappers] == [sum(lengths), 0, 0, 0]
    exits = {p: [direct(model, tokenizer, t, p)[0] for t in TEXTS] for p in settings}
    # each text ran as deep as the deepest setting asked, once: the first wrapper to its patience-1 exit,
    # every later one only the layers it added
    assert wrappers[0].token_layers_encoded == sum(n * e for n, e in zip(lengths, exits[1], strict=True))
    assert sum(w.token_layers_encoded for w in wrappers) == 4 * sum(lengths)
    # per-example accounting does not depend on the shared cache: every wrapper "computed" its 8 texts
    assert [w.num_forward_passes for w in wrappers] == [8, 8, 8, 8]
    for w, p in zip(wrappers, settings, strict=True):
        # deployed cost and this mode's own cost alone: each text's exit layer at the wrapper's setting
        assert w.layers_computed == w.layers_encoded == sum(exits[p])
    assert wrappers[0].layers_computed < wrappers[1].layers_computed <= wrappers[3].layers_computed == 32
    wrappers[0].start_example()
    wrappers[0](TEXTS[:2] + TEXTS[:2])
    assert wrappers[0].num_forward_passes == 10 and sum(len(c["input_ids"]) for c in calls) == len(TEXTS)
    for p, out in zip(settings, outputs[:4], strict=True):
        np.testing.assert_allclose(out, np.stack([direct(model, tokenizer, t, p)[1] for t in TEXTS]), atol=1e-5)


@pytest.mark.parametrize("order", ["shallow first", "deep first", "interleaved"])
@pytest.mark.parametrize("state_bytes", [None, 0])
def test_lazy_encoding_answers_every_setting_in_any_order(victim, order, state_bytes):
    """Whatever order the settings ask in, and whether or not states are kept to resume from (0 bytes: every
    deeper request restarts from the embeddings), each answer is the text's own exit and probabilities."""
    model, tokenizer = victim
    threshold_settings = thresholds_of(model, tokenizer)
    settings = [1, threshold_settings[0], 2, threshold_settings[1], 3, None]
    if order == "deep first":
        settings = settings[::-1]
    cache = LayerLogitsCache() if state_bytes is None else LayerLogitsCache(max_state_bytes=state_bytes)
    wrappers = {str(p): PabeeModelWrapper(model, tokenizer, p, batch_size=3, cache=cache) for p in settings}
    asks = [(p, TEXTS) for p in settings]
    if order == "interleaved":
        asks = [(p, TEXTS[i::3]) for i in range(3) for p in settings]
    for p, texts in asks:
        exits, probs = wrappers[str(p)].exits(texts)
        for text, exit_layer, row in zip(texts, exits, probs, strict=True):
            want_exit, want_probs, _ = direct(model, tokenizer, text, p)
            assert exit_layer == want_exit
            np.testing.assert_allclose(row, want_probs, atol=1e-5)
    stats = cache.stats()
    if order == "deep first":  # full depth first: everything complete at once, nothing to resume
        assert stats["resumed"] == stats["restarted"] == 0
        assert sum(w.token_layers_encoded for w in wrappers.values()) == wrappers["None"].token_layers_encoded
    elif state_bytes == 0:
        assert stats["resumed"] == 0 and stats["restarted"] > 0 and stats["state_bytes"] == 0
    else:
        assert stats["resumed"] > 0 and stats["restarted"] == 0


def test_state_memory_is_bounded_in_bytes(model, tokenizer):
    cache = LayerLogitsCache(max_state_bytes=3 * 20 * 32 * 4)  # room for about three short texts' states
    PabeeModelWrapper(model, tokenizer, 1, cache=cache)(TEXTS)
    stats = cache.stats()
    assert 0 < stats["state_bytes"] <= cache.max_state_bytes and stats["states"] < len(TEXTS) == stats["size"]
    with pytest.raises(ValueError, match="max_state_bytes"):
        LayerLogitsCache(max_state_bytes=-1)


def test_reading_every_layer_is_charged_unless_diagnostic(model, tokenizer):
    wrapper = PabeeModelWrapper(model, tokenizer, 1)
    exits, _ = wrapper.exits(TEXTS)
    assert wrapper.layers_encoded == int(exits.sum()) < 4 * len(TEXTS)
    wrapper.layer_info(TEXTS[0])  # diagnostics: every layer known, nothing charged
    assert wrapper.layers_encoded == int(exits.sum())
    wrapper.layer_logits(TEXTS)  # a goal that reads every layer (slowdown's score) pays for them, once
    wrapper.layer_logits(TEXTS)
    assert wrapper.layers_encoded == 4 * len(TEXTS) and wrapper.layers_computed == int(exits.sum())


def test_cache_is_lru_bounded_and_bound_to_one_model(model, tokenizer):
    cache = LayerLogitsCache(max_size=2)
    wrapper = PabeeModelWrapper(model, tokenizer, 1, cache=cache)
    wrapper(TEXTS[:3])
    assert len(cache) == 2 and text_key(TEXTS[0]) not in cache
    with pytest.raises(ValueError, match="another model"):
        PabeeModelWrapper(torch.nn.Linear(1, 1), tokenizer, 1, cache=cache)


def test_pairs_are_tokenised_as_pairs(model, tokenizer, monkeypatch):
    pairs = [("what is it?", "it is a cat."), ("who won", "nobody won the game at all"), ("a", "b")]
    calls = spy_embed(model, monkeypatch)
    wrapper = PabeeModelWrapper(model, tokenizer, 1, batch_size=2)
    probs = wrapper(pairs + [list(pairs[0])])  # TextAttack passes tuples; lists are accepted too
    types = [int(c["token_type_ids"].max()) for c in calls]
    assert types and max(types) == 1  # second segment got token type 1
    for i, pair in enumerate(pairs):
        np.testing.assert_allclose(probs[i], direct(model, tokenizer, pair, 1)[1], atol=1e-5)
    np.testing.assert_array_equal(probs[3], probs[0])
    with pytest.raises(ValueError, match="mixes"):
        wrapper(["single", ("x", "y")])


def test_layer_info(model, tokenizer):
    wrapper = PabeeModelWrapper(model, tokenizer, 1)
    for text in TEXTS:
        exit_layer, probs, layer_preds = direct(model, tokenizer, text, 1)
        assert wrapper.layer_info(text) == (exit_layer, int(probs.argmax()), layer_preds)
    assert wrapper.num_encoded == len(TEXTS)


def test_true_early_exit_matches_and_counts_real_layers(victim):
    model, tokenizer = victim
    cached = PabeeModelWrapper(model, tokenizer, 1, batch_size=3)
    real = PabeeModelWrapper(model, tokenizer, 1, batch_size=3, true_early_exit=True)
    exits, probs = cached.exits(TEXTS)
    real_exits, real_probs = real.exits(TEXTS)
    assert real_exits.tolist() == exits.tolist()
    np.testing.assert_allclose(real_probs, probs, atol=1e-5)
    # the lazy cache alone does the work of true early exit: each text to its exit layer
    assert real.layers_encoded == real.layers_computed == int(exits.sum()) == cached.layers_encoded < 4 * len(TEXTS)
    assert real.token_layers_encoded == cached.token_layers_encoded
    assert cached.layers_computed == real.layers_computed  # the deployed cost does not depend on the mode
    real(TEXTS)  # same example scope: answered again without recomputation or recounting
    assert real.num_encoded == len(TEXTS) and real.num_forward_passes == len(TEXTS)
    assert real.tokens_encoded == cached.tokens_encoded == sum(len(tokenizer(t)["input_ids"]) for t in TEXTS)


def test_invalid_inputs(model, tokenizer):
    with pytest.raises(ValueError, match="patience"):
        PabeeModelWrapper(model, tokenizer, 0)
    with pytest.raises(ValueError, match="true_early_exit"):
        PabeeModelWrapper(model, tokenizer, 1, cache=LayerLogitsCache(), true_early_exit=True)
    wrapper = PabeeModelWrapper(model, tokenizer, 1)
    with pytest.raises(ValueError, match="string or a pair"):
        wrapper([3])


def test_get_grad_is_the_exit_layer_loss_gradient(victim):
    model, tokenizer = victim
    wrapper = PabeeModelWrapper(model, tokenizer, 1)
    out = wrapper.get_grad("a fine film")
    ids = tokenizer("a fine film")["input_ids"]
    assert out["ids"].tolist() == [ids]
    assert out["gradient"].shape == (len(ids), model.backbone.config.hidden_size)
    assert not model.training and all(p.grad is None for p in model.parameters())
    # the same gradient by hand: loss on the exit layer's logits w.r.t. the embedding output
    batch = tokenizer(["a fine film"], return_tensors="pt")
    emb = model.backbone.embeddings.word_embeddings(batch["input_ids"])  # TextAttack: get_input_embeddings()
    emb.retain_grad()
    handle = model.backbone.embeddings.word_embeddings.register_forward_hook(lambda m, i, o: emb)
    try:
        layer_logits = model(**batch).layer_logits
    finally:
        handle.remove()
    exit_layer, _ = model.exit_from_layer_logits(layer_logits.detach(), 1)
    logits = layer_logits[exit_layer - 1, 0]
    torch.nn.functional.cross_entropy(logits, logits.argmax(-1)).backward()
    model.zero_grad(set_to_none=True)
    assert np.allclose(out["gradient"], emb.grad[0].numpy(), atol=1e-6)
    assert wrapper.num_forward_passes == 1 and wrapper.layers_encoded == model.num_layers
    assert wrapper.layers_computed == int(exit_layer)  # deployed: the text's exit layer


def test_saved_tiny_models(tiny_pabee_dir, tiny_full_dir, tiny_texts):
    from robustness.models.pabee import load_model_and_tokenizer

    for path, head in ((tiny_pabee_dir, "pabee"), (tiny_full_dir, "full")):
        model, tokenizer = load_model_and_tokenizer(path)
        wrapper = PabeeModelWrapper(model, tokenizer, None)
        probs = wrapper(tiny_texts)
        for text, row in zip(tiny_texts, probs, strict=True):
            exit_layer, expected, layer_preds = direct(model, tokenizer, text, None)
            np.testing.assert_allclose(row, expected, atol=1e-5)
            assert wrapper.layer_info(text) == (2, int(expected.argmax()), layer_preds)
            assert len(layer_preds) == (2 if head == "pabee" else 1)
        assert wrapper.layers_encoded == wrapper.layers_computed == 2 * len(tiny_texts)  # full depth: L = 2 per text
