"""Atomic writes, output manifests and model fingerprints (robustness.provenance, .outputs, .models.fingerprint)."""

from __future__ import annotations

import json
import os

import pytest

from robustness.outputs import MANIFEST, foreign_outputs, resolve_inside, write_outputs
from robustness.provenance import atomic_directory, is_interrupted_write, write_text_atomic


def test_write_text_atomic_replaces_whole_file_and_leaves_no_tmp(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_interrupted_writes_are_recognised(tmp_path):
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "full.md").write_text("x")
    assert is_interrupted_write(tmp_path / "empty.md") and not is_interrupted_write(tmp_path / "full.md")
    assert is_interrupted_write(tmp_path / ".report.md.k2j_3x.tmp")
    assert is_interrupted_write(tmp_path / ".model.partial-123")


def test_write_outputs_replaces_own_files_refuses_foreign_and_edited_ones(tmp_path):
    write_outputs(tmp_path, {"tables/a.csv": b"1\n", "b.md": b"x"})
    write_outputs(tmp_path, {"tables/a.csv": b"2\n"})  # ours, unchanged since: replaced
    assert (tmp_path / "tables/a.csv").read_bytes() == b"2\n"
    (tmp_path / "tables/a.csv").write_text("edited by hand")
    (tmp_path / "c.md").write_text("someone else's")
    assert foreign_outputs(tmp_path, ["tables/a.csv", "b.md", "c.md"]) == [tmp_path / "tables/a.csv", tmp_path / "c.md"]
    with pytest.raises(ValueError, match="refusing to overwrite .*a.csv.*--overwrite"):
        write_outputs(tmp_path, {"b.md": b"y", "tables/a.csv": b"3\n"})
    assert (tmp_path / "b.md").read_bytes() == b"x"  # nothing was written: checked before writing
    write_outputs(tmp_path, {"c.md": b"mine"}, overwrite=True)
    assert (tmp_path / "c.md").read_bytes() == b"mine"
    assert json.loads((tmp_path / MANIFEST).read_text())["c.md"]


def test_empty_file_counts_as_interrupted_write_of_ours(tmp_path):
    (tmp_path / "report.md").write_text("")
    write_outputs(tmp_path, {"report.md": b"# report"})
    assert (tmp_path / "report.md").read_bytes() == b"# report"


@pytest.mark.parametrize("relative", ["../x", "/etc/passwd", "a/../../x"])
def test_output_paths_stay_inside(tmp_path, relative):
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(tmp_path / "out", relative)


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("killed while saving")
    assert not target.exists() and os.listdir(tmp_path) == []
    with atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert os.listdir(target) == ["config.json"]
    with pytest.raises(ValueError, match="--overwrite"), atomic_directory(target) as tmp:
        (tmp / "x").write_text("")
    with atomic_directory(target, replace=True) as tmp:
        (tmp / "y").write_text("")
    assert os.listdir(target) == ["y"] and sorted(os.listdir(tmp_path)) == ["model"]


def test_fingerprint_changes_with_weights_and_config_only(tmp_path, tiny_bert_config):
    from robustness.models.fingerprint import FINGERPRINT_FILE, model_fingerprint

    a, b = tmp_path / "a", tmp_path / "b"
    random_model(tiny_bert_config, "pabee", seed=1).save_pretrained(a)
    random_model(tiny_bert_config, "pabee", seed=1).save_pretrained(b)
    written = json.loads((a / FINGERPRINT_FILE).read_text())["fingerprint"]
    assert model_fingerprint(a) == model_fingerprint(b) == written and len(written) == 16
    (b / "tokenizer.json").write_text("{}")  # not part of the model's identity
    config = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps(config, indent=4))  # re-serialised: same config
    assert model_fingerprint(b) == written
    random_model(tiny_bert_config, "pabee", seed=2).save_pretrained(b)
    assert model_fingerprint(b) != written


def random_model(config, head: str, seed: int):
    """A randomly initialised tiny model (the seed decides its weights)."""
    import torch

    from robustness.models.pabee import PabeeModel

    torch.manual_seed(seed)
    return PabeeModel.from_backbone_config(config, head, num_labels=2, label_names=["negative", "positive"])
