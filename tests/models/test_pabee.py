"""PabeeModel: loss weighting, heads, save/load, stepping adapters and true early exit on five backbones."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AlbertConfig, BertConfig, DistilBertConfig, GPT2Config, MPNetConfig, RobertaConfig

from robustness.models.backbones import step_hidden_states
from robustness.models.exits import Setting, parse_setting
from robustness.models.pabee import EarlyExitOutput, PabeeConfig, PabeeModel, load_model_and_tokenizer

NUM_LAYERS = 4  # enough layers for patience 1..3 to exit early
SMALL = {"vocab_size": 100, "max_position_embeddings": 64}


def backbone_config(kind: str, num_layers: int = NUM_LAYERS):
    if kind == "bert":
        return BertConfig(
            num_hidden_layers=num_layers, hidden_size=32, num_attention_heads=2, intermediate_size=64, **SMALL
        )
    if kind == "albert":
        return AlbertConfig(
            num_hidden_layers=num_layers,
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            embedding_size=16,
            **SMALL,
        )
    if kind == "roberta":
        return RobertaConfig(
            num_hidden_layers=num_layers, hidden_size=32, num_attention_heads=2, intermediate_size=64, **SMALL
        )
    if kind == "distilbert":
        return DistilBertConfig(n_layers=num_layers, dim=32, n_heads=2, hidden_dim=64, **SMALL)
    if kind == "mpnet":  # relative position bias in every layer, no token types
        return MPNetConfig(
            num_hidden_layers=num_layers, hidden_size=32, num_attention_heads=2, intermediate_size=64, **SMALL
        )
    raise AssertionError(kind)


KINDS = ["bert", "albert", "roberta", "distilbert", "mpnet"]


def make_model(kind: str, head: str = "pabee", num_labels: int = 3, attn: str | None = None, seed: int = 0,
               pooling: str = "cls"):
    """Random model whose predictions depend on the input (backbone init std 0.3 instead of 0.02, see
    conftest) with logits of order 1 (classifier std 0.2), so float32 noise stays far below atol 1e-5."""
    config = backbone_config(kind)
    config.initializer_range = 0.3
    torch.manual_seed(seed)
    model = PabeeModel.from_backbone_config(config, head, num_labels, attn_implementation=attn, pooling=pooling)
    with torch.no_grad():
        for linear in model.classifiers:
            linear.weight.normal_(0.0, 0.2)
    return model.eval()


def random_batch(model: PabeeModel, batch: int = 8, max_len: int = 12, seed: int = 0):
    """Right-padded random ids (no special ids) with varied lengths; the longest row is not the first."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_len, (batch,), generator=gen)
    lengths[batch // 2] = max_len
    mask = (torch.arange(max_len)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, SMALL["vocab_size"], (batch, max_len), generator=gen)
    pad = model.backbone.config.pad_token_id
    return ids * mask + pad * (1 - mask), mask


# -- loss --------------------------------------------------------------------------------------------
def set_head_biases(model: PabeeModel, biases: list[list[float]]) -> None:
    with torch.no_grad():
        for linear, bias in zip(model.classifiers, biases, strict=True):
            linear.weight.zero_()
            linear.bias.copy_(torch.tensor(bias))


def test_pabee_loss_is_layer_weighted_mean_of_cross_entropies() -> None:
    model = make_model("bert", num_labels=2)
    # constant logits per layer: CE_1 = ln 2, CE_2 = -ln(3/4), CE_3 = -ln(1/4), CE_4 = ln 2 for label 0
    set_head_biases(model, [[0.0, 0.0], [math.log(3), 0.0], [0.0, math.log(3)], [0.0, 0.0]])
    ids, mask = random_batch(model, batch=3)
    out = model(ids, mask, labels=torch.zeros(3, dtype=torch.long))
    ce = [math.log(2), -math.log(0.75), -math.log(0.25), math.log(2)]
    expected = sum((i + 1) * c for i, c in enumerate(ce)) / (1 + 2 + 3 + 4)
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.layer_logits.shape == (NUM_LAYERS, 3, 2)


def test_pabee_loss_matches_formula_on_random_heads_and_trains_every_classifier() -> None:
    model = make_model("roberta")
    ids, mask = random_batch(model)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    out = model(ids, mask, labels=labels)
    log_probs = out.layer_logits.log_softmax(dim=-1)
    ce = [-log_probs[i, torch.arange(8), labels].mean() for i in range(NUM_LAYERS)]
    expected = sum((i + 1) * c for i, c in enumerate(ce)) / sum(range(1, NUM_LAYERS + 1))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    out.loss.backward()
    assert all(linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0 for linear in model.classifiers)


def test_full_head_has_one_classifier_on_last_layer() -> None:
    model = make_model("bert", head="full", num_labels=2)
    assert len(model.classifiers) == 1 and model.num_layers == NUM_LAYERS
    set_head_biases(model, [[math.log(3), 0.0]])
    ids, mask = random_batch(model, batch=3)
    out = model(ids, mask, labels=torch.zeros(3, dtype=torch.long))
    assert out.layer_logits.shape == (1, 3, 2)
    assert out.loss.item() == pytest.approx(-math.log(0.75), rel=1e-6)
    # the head reads layer L: same pooled input as a PABEE model's last classifier on the same backbone
    pabee = make_model("bert", head="pabee", num_labels=2)
    pabee.backbone.load_state_dict(model.backbone.state_dict())
    pabee.classifiers[-1].load_state_dict(model.classifiers[0].state_dict())
    torch.testing.assert_close(pabee.all_layer_logits(ids, mask)[-1], model.all_layer_logits(ids, mask)[0])


def test_full_head_exits_and_early_exit_use_all_layers() -> None:
    model = make_model("distilbert", head="full")
    ids, mask = random_batch(model)
    layer_logits = model.all_layer_logits(ids, mask)
    for patience in (1, 2, None):
        exit_layer, logits = model.exit_from_layer_logits(layer_logits, patience)
        assert exit_layer.tolist() == [NUM_LAYERS] * 8
        assert torch.equal(logits, layer_logits[0])
    out = model.early_exit(ids, mask, setting=1)
    assert out.layers_computed == 8 * NUM_LAYERS
    assert out.exit_layer.tolist() == [NUM_LAYERS] * 8
    assert (out.layer_preds[:, :-1] == -1).all()
    assert torch.equal(out.layer_preds[:, -1], layer_logits[0].argmax(-1))
    torch.testing.assert_close(out.logits, layer_logits[0], atol=1e-5, rtol=0)


# -- adapters ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", KINDS)
def test_stepping_adapter_matches_backbone_hidden_states(kind: str, attn: str) -> None:
    if kind == "mpnet" and attn == "sdpa":
        pytest.skip("transformers 4.57 implements MPNet attention in eager mode only")
    model = make_model(kind, attn=attn)
    assert model.backbone.config._attn_implementation == attn
    ids, mask = random_batch(model)
    with torch.no_grad():
        expected = model.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        stepped = step_hidden_states(model._adapter, ids, mask)
    assert len(stepped) == len(expected) == NUM_LAYERS + 1
    valid = mask[..., None].bool()
    for got, want in zip(stepped, expected, strict=True):
        torch.testing.assert_close(got.masked_fill(~valid, 0), want.masked_fill(~valid, 0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_embed_and_layer_step_give_the_all_layer_logits(kind: str) -> None:
    model = make_model(kind)
    ids, mask = random_batch(model)
    hidden, stepped = model.embed(ids, mask), []
    for i in range(NUM_LAYERS):
        hidden, logits = model.layer_step(i, hidden, mask)
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped), model.all_layer_logits(ids, mask), atol=1e-5, rtol=0)
    full = PabeeModel.from_backbone_config(backbone_config(kind), "full", 3)
    with pytest.raises(ValueError, match="PABEE head"):
        full.layer_step(0, full.embed(ids, mask), mask)


def test_albert_shares_layer_weights() -> None:
    model = make_model("albert")
    short = PabeeModel.from_backbone_config(backbone_config("albert", num_layers=2), "pabee", 3)
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    assert backbone_params == sum(p.numel() for p in short.backbone.parameters())
    assert model._adapter.layer_group(0) is model._adapter.layer_group(NUM_LAYERS - 1)
    assert len(model.classifiers) == NUM_LAYERS
    # sharing is real: every layer changes when the one shared group changes
    ids, mask = random_batch(model)
    before = model.all_layer_logits(ids, mask)
    with torch.no_grad():
        model._adapter.layer_group(0).albert_layers[0].ffn.bias.add_(1.0)
    after = model.all_layer_logits(ids, mask)
    assert all(not torch.allclose(before[i], after[i]) for i in range(NUM_LAYERS))


# -- early exit == all-layer-derived == batch size 1 -----------------------------------------------------
def assert_same_exit(out: EarlyExitOutput, exit_layer: torch.Tensor, logits: torch.Tensor) -> None:
    assert torch.equal(out.exit_layer, exit_layer)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=0)


def threshold_between(values: torch.Tensor) -> float:
    """A threshold halfway inside the widest gap among the middle half of ``values`` (sorted): splits the
    examples roughly in two and stays far from any value, so float noise cannot move an exit."""
    ordered = values.flatten().sort().values
    lo, hi = len(ordered) // 4, 3 * len(ordered) // 4
    gaps = ordered[lo + 1 : hi + 1] - ordered[lo:hi]
    k = lo + int(gaps.argmax())
    return float((ordered[k] + ordered[k + 1]) / 2)


def all_settings(layer_logits: torch.Tensor) -> list[Setting]:
    """Every patience, full depth, and an entropy and a max-probability threshold that split the examples."""
    log_probs = layer_logits.float().log_softmax(dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    confidence = log_probs.exp().max(dim=-1).values
    return [*(parse_setting(p) for p in [*range(1, NUM_LAYERS + 1), None]),
            Setting("entropy", threshold_between(entropy)), Setting("maxprob", threshold_between(confidence))]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("kind", KINDS)
def test_early_exit_equals_all_layer_and_batch_size_one(kind: str, pooling: str) -> None:
    # seed 4 for mean pooling: its random predictions are steadier, and seed 4 still exercises 3+ exit layers
    # (MPNet: seeds whose random predictions exercise 3+ exit layers under every policy)
    seed = {("mpnet", "cls"): 8, ("mpnet", "mean"): 9}.get((kind, pooling), 0 if pooling == "cls" else 4)
    model = make_model(kind, pooling=pooling, seed=seed)
    ids, mask = random_batch(model)
    layer_logits = model.all_layer_logits(ids, mask)
    preds = layer_logits.argmax(dim=-1).T  # [B, L]
    seen_exits: dict[str, set[int]] = {}
    for patience in all_settings(layer_logits):
        exit_layer, logits = model.exit_from_layer_logits(layer_logits, patience)
        seen_exits.setdefault(patience.policy, set()).update(exit_layer.tolist())
        for size in (1, 3, 8):
            parts = [
                model.early_exit(ids[s : s + size], mask[s : s + size], setting=patience) for s in range(0, 8, size)
            ]
            out = EarlyExitOutput(
                torch.cat([p.exit_layer for p in parts]),
                torch.cat([p.logits for p in parts]),
                torch.cat([p.layer_preds for p in parts]),
                sum(p.layers_computed for p in parts),
            )
            assert_same_exit(out, exit_layer, logits)
            assert out.layers_computed == int(exit_layer.sum())
            computed = torch.arange(1, NUM_LAYERS + 1)[None, :] <= exit_layer[:, None]
            assert torch.equal(out.layer_preds, torch.where(computed, preds, torch.full_like(preds, -1)))
        for b in range(8):  # each example alone, padding stripped
            n = int(mask[b].sum())
            alone = model.early_exit(ids[b : b + 1, :n], mask[b : b + 1, :n], setting=patience)
            assert_same_exit(alone, exit_layer[b : b + 1], logits[b : b + 1])
    # the test exercised early and full-depth exits for every policy, not one trivial case
    assert len(seen_exits["patience"] | seen_exits["full"]) >= 3
    assert len(seen_exits["entropy"]) >= 2 and len(seen_exits["maxprob"]) >= 2


class TableAdapter:
    """Fake stepping adapter: carries each example's batch index in hidden[:, 0, 0] through the layers."""

    def embed(self, input_ids, token_type_ids=None):
        hidden = torch.zeros(*input_ids.shape, 2)
        hidden[:, 0, 0] = torch.arange(input_ids.shape[0], dtype=torch.float)
        return hidden

    def extended_mask(self, attention_mask, dtype):
        return attention_mask

    def layer(self, i, hidden, mask):
        return hidden.clone()


TABLE = [  # per-example predictions at layers 1..6
    [0, 0, 1, 1, 1, 1],  # counters 0 1 0 1 2 3
    [0, 0, 0, 1, 1, 1],  # 0 1 2 0 1 2
    [0, 1, 0, 1, 0, 1],  # never agrees
    [1, 1, 0, 0, 1, 1],  # 0 1 0 1 0 1
    [2, 1, 1, 1, 1, 0],  # 0 0 1 2 3 0
]
TABLE_EXITS = {1: [2, 2, 6, 2, 3], 2: [5, 3, 6, 6, 4], 3: [6, 6, 6, 6, 5], 4: [6] * 5, 5: [6] * 5, None: [6] * 5}


@pytest.mark.parametrize("patience", list(TABLE_EXITS))
def test_early_exit_loop_on_hand_made_predictions(monkeypatch: pytest.MonkeyPatch, patience: int | None) -> None:
    config = backbone_config("bert", num_layers=6)
    model = PabeeModel.from_backbone_config(config, "pabee", 3).eval()
    table = torch.tensor(TABLE)

    def table_classify(k, hidden, mask):
        return torch.nn.functional.one_hot(table[hidden[:, 0, 0].long(), k], 3).float() + 0.01 * k

    monkeypatch.setattr(model, "_adapter", TableAdapter())
    monkeypatch.setattr(model, "_classify", table_classify)
    ids, mask = torch.ones(5, 3, dtype=torch.long), torch.ones(5, 3, dtype=torch.long)
    out = model.early_exit(ids, mask, setting=patience)
    expected = TABLE_EXITS[patience]
    assert out.exit_layer.tolist() == expected
    all_layers = torch.nn.functional.one_hot(table.T, 3).float() + 0.01 * torch.arange(6.0)[:, None, None]
    assert model.exit_from_layer_logits(all_layers, patience)[0].tolist() == expected
    assert out.layers_computed == sum(expected)
    for b, layer in enumerate(expected):
        assert out.layer_preds[b].tolist() == TABLE[b][:layer] + [-1] * (6 - layer)
        assert out.logits[b].tolist() == pytest.approx(
            [float(c == TABLE[b][layer - 1]) + 0.01 * (layer - 1) for c in range(3)]
        )


def test_early_exit_shrinks_batch_and_trims_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("bert")
    ids, mask = random_batch(model)
    exit_layer, _ = model.exit_from_layer_logits(model.all_layer_logits(ids, mask), 1)
    calls: list[tuple[int, tuple[int, int]]] = []
    step = model._adapter.layer

    def recording_layer(i, hidden, ext_mask):
        calls.append((i, tuple(hidden.shape[:2])))
        return step(i, hidden, ext_mask)

    monkeypatch.setattr(model._adapter, "layer", recording_layer)
    out = model.early_exit(ids, mask, setting=1)
    lengths = mask.sum(dim=1)
    expected = []
    for i in range(NUM_LAYERS):
        alive = exit_layer > i
        if alive.any():
            expected.append((i, (int(alive.sum()), int(lengths[alive].max()))))
    assert calls == expected
    assert expected[-1][1][0] < 8  # some examples really left the batch
    assert out.layers_computed == sum(b for _, (b, _) in calls)


def test_early_exit_without_attention_mask_and_token_types() -> None:
    model = make_model("bert")
    ids = torch.randint(5, SMALL["vocab_size"], (8, 6), generator=torch.Generator().manual_seed(1))
    ones = torch.ones_like(ids)
    for patience in (1, None):
        assert_same_exit(
            model.early_exit(ids, None, setting=patience),
            *model.exit_from_layer_logits(model.all_layer_logits(ids, ones), patience),
        )
    types = torch.zeros_like(ids)
    types[:, 3:] = 1
    with_types = model.all_layer_logits(ids, ones, types)
    assert not torch.allclose(with_types, model.all_layer_logits(ids, ones))
    assert_same_exit(model.early_exit(ids, ones, types, setting=2), *model.exit_from_layer_logits(with_types, 2))


def test_inference_turns_dropout_off_and_restores_training_mode() -> None:
    model = make_model("bert")
    ids, mask = random_batch(model)
    expected = model.all_layer_logits(ids, mask)
    model.train()
    assert not torch.equal(model(ids, mask).layer_logits, model(ids, mask).layer_logits)  # dropout active
    assert torch.equal(model.all_layer_logits(ids, mask), expected)
    assert model.training
    out = model.early_exit(ids, mask, setting=2)
    assert model.training
    assert_same_exit(out, *model.exit_from_layer_logits(expected, 2))
    assert not expected.requires_grad


# -- persistence ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "head"), [("bert", "pabee"), ("distilbert", "pabee"), ("albert", "full"),
                                            ("mpnet", "pabee"), ("mpnet", "full")])
def test_save_load_round_trip(tmp_path, kind: str, head: str) -> None:
    model = make_model(kind, head=head)
    model.config.label_names = ["a", "b", "c"]
    model.save_pretrained(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["config.json", "fingerprint.json",
                                                                   "model.safetensors"]
    loaded = PabeeModel.from_pretrained(tmp_path / "a")
    loaded.save_pretrained(tmp_path / "b")  # save -> load -> save writes the same bytes
    for name in ("config.json", "model.safetensors", "fingerprint.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert loaded.config.to_dict() == {**model.config.to_dict(), "_name_or_path": str(tmp_path / "a")}
    assert loaded.config.backbone_attn_implementation == model.config.backbone_attn_implementation
    assert (loaded.head, loaded.num_layers, loaded.num_labels, loaded.label_names) == (head, 4, 3, ["a", "b", "c"])
    assert loaded.config.own_pooler == (kind == "distilbert")
    ids, mask = random_batch(model)
    assert torch.equal(loaded.all_layer_logits(ids, mask), model.all_layer_logits(ids, mask))


def test_from_pretrained_rejects_other_directories(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a saved PABEE model"):
        PabeeModel.from_pretrained(tmp_path)
    make_model("bert").backbone.save_pretrained(tmp_path)  # a plain Hugging Face model
    with pytest.raises(ValueError, match="format"):
        PabeeModel.from_pretrained(tmp_path)


def test_load_model_and_tokenizer_fixture_dirs(tiny_pabee_dir, tiny_full_dir, tiny_texts) -> None:
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    assert (model.head, model.num_layers, model.label_names) == ("pabee", 2, ["negative", "positive"])
    assert not model.training
    enc = tokenizer(tiny_texts, padding=True, return_tensors="pt")
    preds = model.all_layer_logits(**enc).argmax(dim=-1)
    assert (preds[0] != preds[1]).any() and (preds[0] == preds[1]).any()
    exit_layer, _ = model.exit_from_layer_logits(model.all_layer_logits(**enc), 1)
    assert torch.equal(exit_layer, torch.full_like(exit_layer, 2))  # L = 2: patience 1 always ends at layer 2
    full, _ = load_model_and_tokenizer(tiny_full_dir)
    assert full.head == "full" and full.all_layer_logits(**enc).shape == (1, len(tiny_texts), 2)


# -- validation -------------------------------------------------------------------------------------------
def test_invalid_arguments_raise_value_error() -> None:
    config = backbone_config("bert")
    with pytest.raises(ValueError, match="head"):
        PabeeModel.from_backbone_config(config, "deep", 2)
    with pytest.raises(ValueError, match="num_labels"):
        PabeeModel.from_backbone_config(config, "pabee", 1)
    with pytest.raises(ValueError, match="label_names"):
        PabeeModel.from_backbone_config(config, "pabee", 2, ["only-one"])
    with pytest.raises(ValueError, match="model_type"):
        PabeeModel.from_backbone_config(GPT2Config(n_layer=2, n_embd=32, n_head=2), "pabee", 2)
    with pytest.raises(ValueError, match="format"):
        PabeeConfig.from_dict({"format": "other", "head": "pabee"})
    model = make_model("bert")
    ids, mask = random_batch(model)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="patience"):
            model.early_exit(ids, mask, setting=bad)
        with pytest.raises(ValueError, match="patience"):
            model.exit_from_layer_logits(model.all_layer_logits(ids, mask), bad)
    with pytest.raises(ValueError, match="layer_logits"):
        model.exit_from_layer_logits(torch.zeros(2, 8, 3), 1)
    distil = make_model("distilbert")
    with pytest.raises(ValueError, match="token_type_ids"):
        distil.all_layer_logits(ids, mask, torch.ones_like(ids))
    torch.testing.assert_close(
        distil.all_layer_logits(ids, mask, torch.zeros_like(ids)), distil.all_layer_logits(ids, mask)
    )


def test_reference_batch_early_exit_matches_its_logit_rule(tiny_pabee_dir, minilm_tokenizer, tiny_texts):
    from robustness.models.exits import reference_batch_patience_exit
    from robustness.models.pabee import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(tiny_pabee_dir)
    batch = minilm_tokenizer(list(tiny_texts), padding=True, return_tensors="pt")
    batch = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    layer_logits = model.all_layer_logits(**batch)
    for patience in (1, None):
        out = model.reference_batch_early_exit(**batch, patience=patience)
        exit_layer, logits = (reference_batch_patience_exit(layer_logits, patience) if patience
                              else model.exit_from_layer_logits(layer_logits, None))
        assert torch.equal(out.exit_layer, exit_layer)
        assert torch.allclose(out.logits, logits, atol=1e-5)
        assert out.layers_computed == int(exit_layer.sum())


def test_mean_pooling_ignores_padding_and_differs_from_cls() -> None:
    cls_model, mean_model = make_model("bert"), make_model("bert", pooling="mean")
    ids, mask = random_batch(mean_model)
    n = int(mask[0].sum())
    assert n < ids.shape[1]  # example 0 is padded
    padded = mean_model.all_layer_logits(ids[:1], mask[:1])
    alone = mean_model.all_layer_logits(ids[:1, :n], mask[:1, :n])
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    assert not torch.allclose(cls_model.all_layer_logits(ids, mask), mean_model.all_layer_logits(ids, mask))
    with pytest.raises(ValueError, match="pooling must be one of"):
        make_model("bert", pooling="max")
