"""The PABEE model as a Hugging Face citizen: auto classes, standard output, legacy directories."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, pipeline

import robustness  # noqa: F401  (registers the auto classes)
from robustness.models.config import PabeeConfig
from robustness.models.pabee import PabeeModel, load_model_and_tokenizer


def test_auto_classes_load_a_saved_model(tiny_pabee_dir, tiny_texts) -> None:
    ours, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    assert isinstance(AutoConfig.from_pretrained(tiny_pabee_dir), PabeeConfig)
    enc = tokenizer(tiny_texts, padding=True, return_tensors="pt")
    for auto in (AutoModel, AutoModelForSequenceClassification):
        model = auto.from_pretrained(tiny_pabee_dir)
        assert type(model) is PabeeModel and not model.training
        assert torch.equal(model(**enc).layer_logits, ours(**enc).layer_logits)
    assert json.loads((tiny_pabee_dir / "config.json").read_text())["model_type"] == "pabee"


def test_forward_returns_logits_at_the_chosen_exit(tiny_pabee_dir, tiny_texts) -> None:
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    enc = tokenizer(tiny_texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        default = model(**enc)
        assert model.config.exit_setting == "full"
        assert torch.equal(default.logits, default.layer_logits[-1])
        assert torch.equal(default.exit_layers, torch.full((len(tiny_texts),), 2))
        # hand-made: layer-1 and layer-2 predictions agree on some texts (patience 1 exits there at layer 2)
        # and never before layer 2, since L = 2; maxprob 0 exits everyone at layer 1 with layer 1's logits
        out = model(**enc, setting="maxprob:0")
        assert torch.equal(out.exit_layers, torch.ones(len(tiny_texts), dtype=torch.long))
        assert torch.equal(out.logits, out.layer_logits[0])
        exit_layer, logits = model.exit_from_layer_logits(default.layer_logits, 1)
        out = model(**enc, setting=1)
        assert torch.equal(out.exit_layers, exit_layer) and torch.equal(out.logits, logits)
        assert torch.equal(model(**enc, setting="patience:1").logits, logits)
        assert out.to_tuple()[0] is out.logits  # no loss without labels: a standard ModelOutput
    with pytest.raises(ValueError, match="sometimes"):
        model(**enc, setting="sometimes")
    model.config.exit_setting = "patience:1"
    exit_layer, logits = model.exit_from_layer_logits(model.all_layer_logits(**enc), 1)
    out = model(**enc)
    assert torch.equal(out.exit_layers, exit_layer) and torch.equal(out.logits, logits)
    assert PabeeConfig(exit_setting=2).exit_setting == "patience:2"
    labelled = model(**enc, labels=torch.zeros(len(tiny_texts), dtype=torch.long))
    assert labelled.loss is not None and labelled.loss.requires_grad and labelled.logits.requires_grad


def test_text_classification_pipeline(tiny_pabee_dir) -> None:
    classify = pipeline("text-classification", model=str(tiny_pabee_dir), device="cpu")
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    with torch.no_grad():
        logits = model(**tokenizer("an instant classic", return_tensors="pt")).logits[0]
    assert classify("an instant classic")[0]["label"] == model.label_names[int(logits.argmax())]


def test_directories_saved_before_format_2_still_load(tiny_pabee_dir, tiny_texts, tmp_path) -> None:
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    config = model.config
    legacy = {  # config.json as robustness wrote it before the model was a PreTrainedModel
        "format": "robustness-pabee", "format_version": 1, "backbone": config.backbone, "head": config.head,
        "num_labels": config.num_labels, "label_names": config.label_names, "num_layers": config.num_layers,
        "classifier_dropout": config.classifier_dropout, "own_pooler": config.own_pooler,
        "attn_implementation": "eager", "backbone_source": None, "pooling": config.pooling, "extra": {},
    }
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    shutil.copy(tiny_pabee_dir / "model.safetensors", tmp_path / "model.safetensors")  # same tensor names
    loaded = PabeeModel.from_pretrained(tmp_path)
    assert (loaded.head, loaded.label_names) == ("pabee", ["negative", "positive"])
    enc = tokenizer(tiny_texts, padding=True, return_tensors="pt")
    assert torch.equal(loaded.all_layer_logits(**enc), model.all_layer_logits(**enc))
