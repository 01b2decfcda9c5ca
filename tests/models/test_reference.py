"""Reference-code checkpoints (PABEE's bert-loses-patience, DeeBERT) convert into the suite's model.

Each checkpoint is written here in the reference code's key layout from plain transformers modules, and the
converted model's logits at every layer are compared with a forward written here with those same plain modules
(BertModel / AlbertModel / RobertaModel + nn.Linear / tanh), never with our model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AlbertConfig, AlbertModel, BertConfig, BertModel, RobertaConfig, RobertaModel

from robustness.models.fingerprint import model_fingerprint
from robustness.models.imported import import_reference
from robustness.models.pabee import EarlyExitOutput, PabeeModel

NUM_LAYERS = 4
SMALL = {"num_hidden_layers": NUM_LAYERS, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 64, "initializer_range": 0.3}
MODULES = {"bert": (BertConfig, BertModel), "albert": (AlbertConfig, AlbertModel),
           "roberta": (RobertaConfig, RobertaModel)}
ARCHITECTURES = {("pabee-reference", "bert"): "BertForSequenceClassificationWithPabee",
                 ("pabee-reference", "albert"): "AlbertForSequenceClassificationWithPabee",
                 ("deebert-reference", "bert"): "DeeBertForSequenceClassification",
                 ("deebert-reference", "roberta"): "DeeRobertaForSequenceClassification"}
CASES = list(ARCHITECTURES)


class ReferenceCheckpoint:
    """A random reference-code model built from plain modules: ``state`` in the reference key layout, and
    ``layer_logits`` ([L, B, C]) computed as the reference code computes each exit, in eval mode."""

    def __init__(self, fmt: str, kind: str, vocab_size: int = 100, seed: int = 0, num_labels: int = 2) -> None:
        config_class, model_class = MODULES[kind]
        extra = {"embedding_size": 16} if kind == "albert" else {}
        self.config = config_class(vocab_size=vocab_size, num_labels=num_labels, **SMALL, **extra)
        self.config.architectures = [ARCHITECTURES[fmt, kind]]
        torch.manual_seed(seed)
        self.fmt, self.kind = fmt, kind
        self.backbone = model_class(self.config, add_pooling_layer=True).eval()
        hidden = self.config.hidden_size

        def linear(out: int, std: float) -> nn.Linear:
            layer = nn.Linear(hidden, out)
            nn.init.normal_(layer.weight, std=std)
            nn.init.normal_(layer.bias, std=0.1)
            return layer

        self.heads = [linear(num_labels, 0.5) for _ in range(NUM_LAYERS)]  # PABEE classifiers / DeeBERT highways
        self.highway_poolers = [linear(hidden, 0.3) for _ in range(NUM_LAYERS)]
        self.final = linear(num_labels, 0.5)  # DeeBERT's classifier on the backbone's pooler
        state = {f"{kind}.{key}": value for key, value in self.backbone.state_dict().items()}
        state[f"{kind}.embeddings.position_ids"] = torch.arange(64)[None]  # a buffer older versions saved
        if fmt == "pabee-reference":
            for i, head in enumerate(self.heads):
                state.update({f"classifiers.{i}.{k}": v for k, v in head.state_dict().items()})
        else:
            for i, (pooler, head) in enumerate(zip(self.highway_poolers, self.heads, strict=True)):
                highway = f"{kind}.encoder.highway.{i}"
                state.update({f"{highway}.pooler.dense.{k}": v for k, v in pooler.state_dict().items()})
                state.update({f"{highway}.classifier.{k}": v for k, v in head.state_dict().items()})
            state.update({f"classifier.{k}": v for k, v in self.final.state_dict().items()})
        self.state = {key: value.detach().clone().contiguous() for key, value in state.items()}

    @torch.no_grad()
    def layer_logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1:]
        out = []
        for i, hidden in enumerate(states):
            first = hidden[:, 0]
            if self.fmt == "pabee-reference":  # the one shared pooler, then classifier i
                if self.kind == "albert":
                    pooled = torch.tanh(self.backbone.pooler(first))
                else:
                    pooled = torch.tanh(self.backbone.pooler.dense(first))
                out.append(self.heads[i](pooled))
            elif i < NUM_LAYERS - 1:  # highway i: its own pooler (dense + tanh of the first token) and classifier
                out.append(self.heads[i](torch.tanh(self.highway_poolers[i](first))))
            else:  # the final exit: the backbone's pooler and the top classifier
                out.append(self.final(torch.tanh(self.backbone.pooler.dense(first))))
        return torch.stack(out)

    def write(self, folder: Path, tokenizer=None, weights: str = "pytorch_model.bin") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(folder)
        if weights == "pytorch_model.bin":
            torch.save(self.state, folder / weights)
        else:
            save_file(self.state, str(folder / weights))
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return folder


def random_batch(pad_id: int, batch: int = 8, max_len: int = 12, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_len, (batch,), generator=gen)
    lengths[batch // 2] = max_len
    mask = (torch.arange(max_len)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, 100, (batch, max_len), generator=gen)
    return ids * mask + pad_id * (1 - mask), mask


def imported(tmp_path: Path, fmt: str, kind: str, tokenizer, seed: int = 0, weights: str = "pytorch_model.bin"):
    ref = ReferenceCheckpoint(fmt, kind, seed=seed)
    src = ref.write(tmp_path / f"src-{kind}", tokenizer, weights)
    out = import_reference(src, fmt, tmp_path / f"out-{kind}")
    return ref, PabeeModel.from_pretrained(out), out


@pytest.mark.parametrize(("fmt", "kind"), CASES)
def test_every_layer_equals_the_reference_forward(tmp_path, minilm_tokenizer, fmt, kind) -> None:
    weights = "model.safetensors" if kind == "albert" else "pytorch_model.bin"
    ref, model, out = imported(tmp_path, fmt, kind, minilm_tokenizer, weights=weights)
    ids, mask = random_batch(ref.config.pad_token_id)
    expected = ref.layer_logits(ids, mask)
    got = model.all_layer_logits(ids, mask)
    assert got.shape == (NUM_LAYERS, 8, 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert expected.argmax(-1).unique().numel() == 2  # the comparison is not between constant predictions
    # stepping layer by layer classifies with the same poolers
    hidden = model.embed(ids, mask)
    for i in range(NUM_LAYERS):
        hidden, logits = model.layer_step(i, hidden, mask)
        torch.testing.assert_close(logits, expected[i], atol=1e-5, rtol=0)
    record = json.loads((out / "import.json").read_text())
    assert record["format"] == fmt and record["backbone_model_type"] == kind and record["num_layers"] == NUM_LAYERS
    assert record["weights_file"] == weights and len(record["weights_sha256"]) == 64
    assert record["ignored_keys"] == [f"{kind}.embeddings.position_ids"]
    deebert = fmt == "deebert-reference"
    assert record["dropped_keys"] == ([f"{kind}.encoder.highway.3.{p}.{k}" for p in ("classifier", "pooler.dense")
                                       for k in ("bias", "weight")] if deebert else [])
    config = json.loads((out / "config.json").read_text())
    assert config.get("pooler_per_layer", False) is deebert
    assert model.config.classifier_dropout == (ref.config.classifier_dropout_prob if kind == "albert"
                                               else ref.config.hidden_dropout_prob)
    assert json.loads((out / "fingerprint.json").read_text())["fingerprint"] == model_fingerprint(out)


def dee_entropy(logits: torch.Tensor) -> torch.Tensor:
    """DeeBERT's entropy of pre-softmax logits: log(Σ exp x) - Σ x exp x / Σ exp x."""
    exp = logits.exp()
    return exp.sum(-1).log() - (logits * exp).sum(-1) / exp.sum(-1)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_deebert_early_exit_equals_the_all_layer_exits(tmp_path, minilm_tokenizer, kind) -> None:
    ref, model, _ = imported(tmp_path, "deebert-reference", kind, minilm_tokenizer)
    ids, mask = random_batch(ref.config.pad_token_id)
    reference = ref.layer_logits(ids, mask)
    entropy = dee_entropy(reference)  # [L, B]
    thresholds = entropy[:-1].flatten().sort().values
    seen = set()
    for threshold in [float(thresholds[k:k + 2].mean()) for k in range(2, len(thresholds) - 2, 5)]:
        # DeeBERT's rule on the reference logits: the first of layers 1..L-1 with entropy < T, else L
        hit = torch.cat([entropy[:-1] < threshold, torch.ones(1, 8, dtype=torch.bool)])
        want = hit.float().argmax(0) + 1
        layer_logits = model.all_layer_logits(ids, mask)
        exit_layer, logits = model.exit_from_layer_logits(layer_logits, f"entropy:{threshold}")
        assert torch.equal(exit_layer, want)
        seen.update(want.tolist())
        for setting in (f"entropy:{threshold}", "patience:1", "patience:2", "maxprob:0.8", "full"):
            exit_layer, logits = model.exit_from_layer_logits(layer_logits, setting)
            for size in (1, 3, 8):
                parts = [model.early_exit(ids[s:s + size], mask[s:s + size], setting=setting)
                         for s in range(0, 8, size)]
                out = EarlyExitOutput(torch.cat([p.exit_layer for p in parts]), torch.cat([p.logits for p in parts]),
                                      torch.cat([p.layer_preds for p in parts]), sum(p.layers_computed for p in parts))
                assert torch.equal(out.exit_layer, exit_layer)
                torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=0)
                assert out.layers_computed == int(exit_layer.sum())
    assert len(seen) >= 3  # the thresholds exercised early and late exits


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_layout_that_is_not_the_format_is_refused(tmp_path, minilm_tokenizer) -> None:
    src = ReferenceCheckpoint("pabee-reference", "bert").write(tmp_path / "pabee", minilm_tokenizer)
    with pytest.raises(ValueError) as exc:
        import_reference(src, "deebert-reference", tmp_path / "out")
    message = one_line(exc)
    assert "is not a deebert-reference checkpoint" in message and "pytorch_model.bin" in message
    assert "14 missing (bert.encoder.highway.0.classifier.bias" in message  # 3 highways + the classifier
    assert "8 unexpected (classifiers.0.bias" in message
    assert not (tmp_path / "out").exists()

    ref = ReferenceCheckpoint("deebert-reference", "bert")
    ref.state["bert.encoder.extra.weight"] = torch.zeros(2)
    del ref.state["classifier.bias"]
    src = ref.write(tmp_path / "extra", minilm_tokenizer)
    with pytest.raises(ValueError) as exc:
        import_reference(src, "deebert-reference", tmp_path / "out")
    message = one_line(exc)
    assert "1 missing (classifier.bias)" in message and "1 unexpected (bert.encoder.extra.weight)" in message


def test_wrong_backbone_shapes_tokenizer_and_source_are_refused(tmp_path, minilm_tokenizer) -> None:
    src = ReferenceCheckpoint("deebert-reference", "roberta").write(tmp_path / "roberta", minilm_tokenizer)
    with pytest.raises(ValueError, match="model_type 'roberta', but pabee-reference checkpoints are bert or albert"):
        import_reference(src, "pabee-reference", tmp_path / "out")
    ref = ReferenceCheckpoint("pabee-reference", "bert")
    ref.config.hidden_size = 64
    src = ref.write(tmp_path / "shapes", minilm_tokenizer)
    with pytest.raises(ValueError, match="does not fit .*config.json"):
        import_reference(src, "pabee-reference", tmp_path / "out")
    src = ReferenceCheckpoint("pabee-reference", "bert").write(tmp_path / "notok")
    with pytest.raises(ValueError, match="name one with --tokenizer"):
        import_reference(src, "pabee-reference", tmp_path / "out")
    with pytest.raises(ValueError, match="no such folder"):
        import_reference(tmp_path / "missing" / "x" / "y", "pabee-reference", tmp_path / "out")
    values = json.loads((src / "config.json").read_text())
    del values["model_type"]
    (src / "config.json").write_text(json.dumps(values))
    with pytest.raises(ValueError, match="has no model_type; add"):
        import_reference(src, "pabee-reference", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no config.json"):
        import_reference(tmp_path / "empty", "pabee-reference", tmp_path / "out")
    assert not (tmp_path / "out").exists()


class _Payload:
    """Unpickling this would create ``marker``: weights_only refuses it before anything runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_of_other_objects_are_never_unpickled(tmp_path, minilm_tokenizer) -> None:
    ref = ReferenceCheckpoint("pabee-reference", "bert")
    src = ref.write(tmp_path / "evil", minilm_tokenizer)
    marker = tmp_path / "ran"
    torch.save({**ref.state, "payload": _Payload(marker)}, src / "pytorch_model.bin")
    with pytest.raises(ValueError, match="cannot read the weights safely"):
        import_reference(src, "pabee-reference", tmp_path / "out")
    assert not marker.exists()


def test_a_hub_id_is_downloaded_with_huggingface_hub(tmp_path, minilm_tokenizer, monkeypatch) -> None:
    import huggingface_hub

    src = ReferenceCheckpoint("pabee-reference", "bert").write(tmp_path / "snapshots" / "abc123", minilm_tokenizer)
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append(repo) or str(src))
    out = import_reference("someone/pabee-bert-tiny", "pabee-reference", tmp_path / "out")
    record = json.loads((out / "import.json").read_text())
    assert calls == ["someone/pabee-bert-tiny"]
    assert record["source"] == "someone/pabee-bert-tiny" and record["hub_revision"] == "abc123"

    def offline(repo, **kw):
        raise OSError("We have no connection (offline mode is enabled)")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ValueError, match="someone/other: no such local folder, and the hub did not give it"):
        import_reference("someone/other", "pabee-reference", tmp_path / "out2")


def test_import_command_then_evaluate_on_the_imported_model(tmp_path, minilm_tokenizer, capsys) -> None:
    import pandas as pd

    from robustness.cli import main

    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    rows = [{"sentence": f"a {w} film number {i}", "label": int(w in ("good", "great")), "idx": i}
            for i, w in enumerate(["good", "great", "bad", "awful"] * 3)]
    pd.DataFrame(rows).to_parquet(data / "validation.parquet")
    src = ReferenceCheckpoint("deebert-reference", "bert", vocab_size=minilm_tokenizer.vocab_size).write(
        tmp_path / "src", minilm_tokenizer)
    out = tmp_path / "model"
    args = ["import", str(src), "--format", "deebert-reference", "--out", str(out), "--label-names", "neg,pos"]
    assert main(args) == 0
    assert f"fingerprint {model_fingerprint(out)}" in capsys.readouterr().out
    assert PabeeModel.from_pretrained(out).label_names == ["neg", "pos"]
    record = json.loads((out / "import.json").read_text())
    assert record["command"].startswith("robustness import") and record["source"] == str(src)
    csv = tmp_path / "eval.csv"
    assert main(["evaluate", "--model", str(out), "--data-dir", str(tmp_path / "data"), "--out", str(csv),
                 "--timing-repeats", "0", "--match-patience", "patience:1"]) == 0
    table = pd.read_csv(csv)
    assert {"patience:1", "full"} <= set(table["setting"]) and table["setting"].str.startswith("entropy:").any()
    # a second import into the same folder is refused in one line (exit 2) unless --overwrite
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "already holds a model" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["import", str(src), "--format", "pabee-reference", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    message = err.removeprefix("robustness import: error: ").replace(str(src), "")
    assert "\n" not in err and "is not a pabee-reference checkpoint" in message and len(message) < 200
