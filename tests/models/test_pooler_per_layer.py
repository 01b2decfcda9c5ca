"""``PabeeConfig.pooler_per_layer``: classifier k reads its own pooler in training and in stepping; a model
without the field saves the config.json (and so the fingerprint) it saved before the field existed."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import BertConfig, DistilBertConfig

from robustness.models.config import PabeeConfig
from robustness.models.fingerprint import model_fingerprint
from robustness.models.pabee import PabeeModel

SMALL = {"vocab_size": 100, "max_position_embeddings": 64}
CONFIGS = {
    "bert": BertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2, intermediate_size=64, **SMALL),
    "distilbert": DistilBertConfig(n_layers=3, dim=32, n_heads=2, hidden_dim=64, **SMALL),  # no backbone pooler
}


def per_layer_model(kind: str, head: str = "pabee") -> PabeeModel:
    torch.manual_seed(0)
    config = copy.deepcopy(CONFIGS[kind])
    config.initializer_range = 0.3
    base = PabeeModel.from_backbone_config(config, head, 2)
    settings = base.config.to_dict()
    settings.pop("model_type", None)
    model = PabeeModel(PabeeConfig(**{**settings, "pooler_per_layer": True}))
    with torch.no_grad():
        for pooler in model.poolers:
            pooler[0].weight.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_each_classifier_reads_its_own_pooler_in_training_and_stepping(kind: str) -> None:
    model = per_layer_model(kind)
    assert model.pooler is None and getattr(model.backbone, "pooler", None) is None
    assert len(model.poolers) == 3
    ids = torch.randint(5, 100, (4, 7))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    with torch.no_grad():
        model.eval()
        states = model.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1:]
        want = torch.stack([model.classifiers[k](model.poolers[k](h[:, 0])) for k, h in enumerate(states)])
    torch.testing.assert_close(model.all_layer_logits(ids, mask), want, atol=1e-5, rtol=0)
    hidden = model.embed(ids, mask)
    for i in range(3):
        hidden, logits = model.layer_step(i, hidden, mask)
        torch.testing.assert_close(logits, want[i], atol=1e-5, rtol=0)
    model.train()
    model(ids, mask, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    for k in range(3):  # every internal classifier's loss reaches its own pooler
        assert float(model.poolers[k][0].weight.grad.abs().sum()) > 0


def test_full_head_has_one_pooler_and_the_flag_survives_save_and_load(tmp_path) -> None:
    model = per_layer_model("bert", head="full")
    assert len(model.poolers) == 1
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["pooler_per_layer"] is True
    loaded = PabeeModel.from_pretrained(tmp_path / "m")
    assert loaded.config.pooler_per_layer and loaded.backbone.pooler is None
    ids = torch.randint(5, 100, (3, 6))
    torch.testing.assert_close(loaded.all_layer_logits(ids, None), model.all_layer_logits(ids, None))


def test_models_without_the_field_save_what_they_saved_before(tiny_pabee_dir, tmp_path) -> None:
    saved = json.loads((tiny_pabee_dir / "config.json").read_text())
    assert "pooler_per_layer" not in saved  # written only when True
    model = PabeeModel.from_pretrained(tiny_pabee_dir)
    assert model.config.pooler_per_layer is False and model.poolers is None
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == saved
    assert model_fingerprint(tmp_path / "again") == model_fingerprint(tiny_pabee_dir)


def test_pooler_per_layer_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="pooler_per_layer must be true or false"):
        PabeeConfig(pooler_per_layer="yes")
