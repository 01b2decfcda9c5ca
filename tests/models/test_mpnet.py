"""MPNet as a PABEE backbone: the relative position bias in layer stepping, no token types, training, save/load.

The equalities shared with the other backbones (stepping == the backbone's own hidden states, early exit ==
all-layer-derived == batch size 1 for every policy, save/load) run on MPNet in test_pabee.py (``KINDS``)."""

from __future__ import annotations

import json

import pytest
import torch
from test_pabee import NUM_LAYERS, make_model, random_batch

from robustness.models.backbones import MPNetAdapter, step_hidden_states
from robustness.models.fingerprint import model_fingerprint
from robustness.models.pabee import PabeeModel, load_model_and_tokenizer


def test_mpnet_gets_its_adapter_and_its_own_pooler() -> None:
    model = make_model("mpnet")
    assert isinstance(model._adapter, MPNetAdapter) and not model._adapter.has_token_types
    assert model._adapter.has_pooler and model.pooler is None and not model.config.own_pooler
    assert model.backbone.config._attn_implementation == "eager"


def test_position_bias_matters_and_is_computed_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("mpnet")
    ids, mask = random_batch(model)
    encoder = model.backbone.encoder
    calls: list[tuple[int, ...]] = []
    original = encoder.compute_position_bias

    def counting(x, *args, **kwargs):
        calls.append(tuple(x.shape[:2]))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(encoder, "compute_position_bias", counting)
    with torch.no_grad():
        stepped = step_hidden_states(model._adapter, ids, mask)
        assert calls == [(8, ids.shape[1])]  # once for the batch, passed to all NUM_LAYERS layers
        want = model.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        # without the bias every layer's output changes: the stepping equality in test_pabee.py can fail
        additive, bias = model._adapter.extended_mask(mask, torch.float32)
        unbiased = model._adapter.layer(0, stepped[0], (additive, torch.zeros_like(bias)))
    valid = mask[..., None].bool()
    torch.testing.assert_close(stepped[1].masked_fill(~valid, 0), want[1].masked_fill(~valid, 0), atol=1e-5, rtol=0)
    assert (unbiased - stepped[1]).masked_fill(~valid, 0).abs().max() > 1e-2
    assert bias.shape == (8, 2, ids.shape[1], ids.shape[1])


def test_shrunk_batch_gets_the_bias_of_its_own_length() -> None:
    """True early exit cuts trailing padding columns: the bias of the shorter batch is the leading block of the
    longer one (it depends only on relative positions), so a shrunk batch steps as it would have uncut."""
    model = make_model("mpnet")
    _, long = model._adapter.extended_mask(torch.ones(3, 12, dtype=torch.long), torch.float32)
    _, short = model._adapter.extended_mask(torch.ones(2, 7, dtype=torch.long), torch.float32)
    assert torch.equal(short, long[:2, :, :7, :7])


def test_no_token_type_ids_reach_mpnet(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("mpnet")
    ids, mask = random_batch(model)
    seen: list[str] = []

    def spy(module, args, kwargs):
        seen.extend(k for k, v in kwargs.items() if k == "token_type_ids" and v is not None)

    hooks = [m.register_forward_pre_hook(spy, with_kwargs=True) for m in (model.backbone, model.backbone.embeddings)]
    zeros = torch.zeros_like(ids)  # what a BERT tokenizer adds: accepted and dropped
    expected = model.all_layer_logits(ids, mask)
    torch.testing.assert_close(model.all_layer_logits(ids, mask, zeros), expected, atol=0, rtol=0)
    model.early_exit(ids, mask, zeros, setting=1)
    model.embed(ids, mask, zeros)
    model.train()
    model(ids, mask, zeros, labels=torch.zeros(8, dtype=torch.long)).loss.backward()
    model.eval()
    for hook in hooks:
        hook.remove()
    assert seen == []
    with pytest.raises(ValueError, match="mpnet has no token type embeddings"):
        model.all_layer_logits(ids, mask, torch.ones_like(ids))


def test_mpnet_tokenizer_makes_no_token_types(mpnet_tokenizer) -> None:
    from robustness.attack.encoding import tokenize
    from robustness.models.batching import encode

    assert set(encode(mpnet_tokenizer, ["a fine film", "dull"], 16)) == {"input_ids", "attention_mask"}
    assert set(encode(mpnet_tokenizer, [("is it?", "yes it is")], 16)) == {"input_ids", "attention_mask"}
    assert set(tokenize(mpnet_tokenizer, ["a fine film"], 16)) == {"input_ids"}


def test_training_step_updates_every_layer_and_every_classifier() -> None:
    model = make_model("mpnet")
    ids, mask = random_batch(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(ids, mask, labels=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    assert out.layer_logits.shape == (NUM_LAYERS, 8, 3)
    out.loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {f"classifiers.{i}.weight" for i in range(NUM_LAYERS)} <= changed
    assert "backbone.encoder.relative_attention_bias.weight" in changed
    assert all(any(n.startswith(f"backbone.encoder.layer.{i}.") for n in changed) for i in range(NUM_LAYERS))


@pytest.fixture(scope="module")
def tiny_sst2(make_tiny_sst2):
    return make_tiny_sst2(validation=10)


@pytest.mark.parametrize("head", ["pabee", "full"])
def test_train_save_load_fingerprint(tmp_path, tiny_mpnet_backbone_dir, tiny_sst2, head: str) -> None:
    from robustness.models.train import TrainConfig, train_model

    out = train_model(TrainConfig(out=str(tmp_path / "m"), backbone=str(tiny_mpnet_backbone_dir), head=head,
                                  batch_size=8, data_dir=str(tiny_sst2), seed=1, pooling="mean"), progress=False)
    record = json.loads((out / "train.json").read_text())
    assert record["num_layers"] == 2 and record["config"]["backbone"] == str(tiny_mpnet_backbone_dir)
    model, tokenizer = load_model_and_tokenizer(out)
    assert model.backbone.config.model_type == "mpnet" and type(tokenizer).__name__ == "MPNetTokenizerFast"
    fingerprint = json.loads((out / "fingerprint.json").read_text())["fingerprint"]
    assert model_fingerprint(out) == fingerprint
    batch = tokenizer(["a good film", "an awful film number 3"], padding=True, return_tensors="pt")
    assert set(batch) == {"input_ids", "attention_mask"}
    logits = model.all_layer_logits(**batch)
    assert logits.shape == (2 if head == "pabee" else 1, 2, 2)
    model.save_pretrained(tmp_path / "again")  # same weights and config: same fingerprint
    assert model_fingerprint(tmp_path / "again") == fingerprint
    reloaded = PabeeModel.from_pretrained(tmp_path / "again")
    assert torch.equal(reloaded.all_layer_logits(**batch), logits)
