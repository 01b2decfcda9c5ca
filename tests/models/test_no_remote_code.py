"""Loading a model directory never runs code from it (trust_remote_code=False), even when its configs ask to."""

from __future__ import annotations

import json
import shutil

import pytest

EVIL = '''
import pathlib
pathlib.Path({marker!r}).write_text("remote code ran")  # transformers imports a copy: the path is absolute
from transformers import BertTokenizerFast as EvilTokenizer
from transformers import BertModel as EvilModel
'''


@pytest.fixture()
def auto_map_dir(tmp_path, tiny_pabee_dir):
    path = tmp_path / "model"
    shutil.copytree(tiny_pabee_dir, path)
    (path / "evil.py").write_text(EVIL.format(marker=str(path / "EXECUTED")))
    config = json.loads((path / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    model_config = json.loads((path / "config.json").read_text())
    model_config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilModel"}
    (path / "config.json").write_text(json.dumps(model_config))
    return path


def test_auto_map_code_is_never_run(auto_map_dir, monkeypatch):
    from robustness.models.pabee import load_model_and_tokenizer

    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)  # as on a terminal, where HF would ask
    try:
        model, tokenizer = load_model_and_tokenizer(auto_map_dir)
    except ValueError as exc:  # refusing is fine too, as one line naming the directory
        assert str(auto_map_dir) in str(exc) and "\n" not in str(exc)
    else:
        assert model.head == "pabee" and tokenizer("good")["input_ids"]
    assert not (auto_map_dir / "EXECUTED").exists()

