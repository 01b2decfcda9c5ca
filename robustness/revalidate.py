"""Strict re-validation of adversarial texts, a stage of its own (like :mod:`robustness.quality`): every succeeded
example of a finished run is checked again against fixed, human-calibrated constraints, whatever the recipe that
made it, and the result goes to ``<run>/revalidation.jsonl`` beside ``records.jsonl``.

Morris et al. 2020 ("Reevaluating Adversarial Examples in Natural Language", Findings of EMNLP) had humans rate
TextFooler's and Alzantot's swaps and set thresholds at which the swaps preserve meaning and grammar; re-checked
against them, attack success fell by more than 70 points. The checks, per example (:class:`Preset` holds the
thresholds):

* per swap (original and adversarial words aligned, :func:`align_words`), the cosine similarity of the two words'
  counter-fitted vectors (:func:`robustness.resources.counter_fitted_embedding`; a word outside that vocabulary,
  e.g. a character-level typo of DeepWordBug, has no vector and fails, as in TextAttack's
  ``WordEmbeddingDistance``), and the part of speech unchanged: NLTK's perceptron tagger, universal tagset, each
  swapped word tagged in the context of the whole original text (TextFooler's constraint, which Morris et al.'s
  adjusted attack builds on; TextAttack's ``PartOfSpeech`` tags with 4 words either side and lets nouns and verbs
  swap, here the tag must be kept);
* per text, the sentence-encoder cosine similarity of original and adversarial text (whole text, no window), and
  the LM perplexity ratio adversarial / original (:func:`robustness.quality.perplexities`), the offline stand-in
  for Morris et al.'s grammar check (LanguageTool, "no new errors"), which needs a Java server or the network.

An edit that is not a one-for-one word swap (words inserted or deleted: the texts differ in word count and the
alignment leaves them unpaired) cannot pass the per-swap checks and makes the example invalid. The stage is
resumable (examples already in the file are skipped); a file written with another preset, LM or encoder is
refused. Written in blocks, each appended and fsynced (a stop loses at most one block; a torn last line is cut).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from robustness import callable_module
from robustness.quality import CausalLM, _known_perplexities, similarities
from robustness.schema.packed import check_not_packed, read_stored
from robustness.schema.records import read_records, truncate_torn_tail

REVALIDATION_FILE = "revalidation.jsonl"
REVALIDATION_SCHEMA_VERSION = 1
BLOCK = 32  # examples checked together (batched by the LM and the encoder), then appended


@dataclass(frozen=True)
class Preset:
    """Thresholds of the strict checks; an example is valid when every check passes."""

    name: str
    min_word_cosine: float  # per swap: counter-fitted cosine >= this
    pos_unchanged: bool  # per swap: universal POS tag of the word kept
    min_similarity: float  # per text: sentence-encoder cosine >= this
    max_ppl_ratio: float  # per text: adversarial / original perplexity <= this (grammar stand-in)
    source: str


#: morris2020: the word-embedding (0.9) and sentence-encoder (0.98) thresholds are Morris et al. 2020's (their
#: adjusted TextFooler; their encoder was USE, ours the suite's stand-in, see sentence_encoder.py); the POS rule is
#: TextFooler's part-of-speech constraint in its strict form (the same universal tag, no noun/verb exception).
#: Their grammar rule ("no new LanguageTool errors") is replaced by perplexity ratio <= 1.5, our choice: a mean
#: rise of ln 1.5 = 0.41 nats per token, i.e. about 8 nats of extra surprisal over a 20-token SST-2 sentence --
#: room for one rarer but fitting word, not for a misspelling split into sub-word pieces. Not calibrated on
#: human judgements: a stand-in, reported as such.
PRESETS: dict[str, Preset] = {
    "morris2020": Preset(name="morris2020", min_word_cosine=0.9, pos_unchanged=True, min_similarity=0.98,
                         max_ppl_ratio=1.5, source="Morris et al. 2020, Findings of EMNLP (word and sentence "
                         "thresholds); POS: TextFooler's, strict; perplexity ratio bound ours (stand-in for "
                         "LanguageTool)"),
}


def check_preset(name: str) -> Preset:
    """The preset called ``name`` (ValueError naming the choices otherwise)."""
    if name not in PRESETS:
        raise ValueError(f"unknown re-validation preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


class Swap(TypedDict):
    """One aligned word swap and its checks."""

    #: Index of the word in the original text's words (TextAttack word segmentation).
    index: int
    orig_word: str
    adv_word: str
    #: Counter-fitted cosine of the two (lowercased) words; None when either is outside the vocabulary.
    cosine: float | None
    cosine_ok: bool
    #: Universal POS tags, each word in the original text's context.
    orig_pos: str
    adv_pos: str
    pos_ok: bool


class RevalidationRecord(TypedDict):
    """One succeeded example of a run, re-checked."""

    schema_version: int
    #: The record's ``example_id`` in ``records.jsonl`` and the adversarial text checked (a line whose text no
    #: longer matches the record's is stale: the run was redone).
    example_id: int
    adv_text: str
    preset: str
    swaps: list[Swap]
    #: Words inserted or deleted (not one-for-one swaps): any makes the example invalid.
    unaligned_words: int
    #: Words of the swaps without a counter-fitted vector (original or adversarial), lowercased.
    oov_words: list[str]
    #: Every swap passes the embedding check / the POS check (no swap: True) and nothing is unaligned.
    word_cosine_ok: bool
    pos_ok: bool
    #: Sentence-encoder cosine of original and adversarial text and its check.
    similarity: float
    similarity_ok: bool
    #: LM perplexities, their ratio adversarial / original, and its check (the grammar stand-in).
    orig_perplexity: float
    adv_perplexity: float
    ppl_ratio: float
    ppl_ratio_ok: bool
    #: Every check passes.
    valid: bool
    lm: str
    encoder: str


@dataclass
class Checkers:
    """What the checks run on: counter-fitted vectors (a TextAttack ``WordEmbedding``), a universal-tagset POS
    tagger (words -> tags), the sentence encoder (``encode`` -> unit vectors) and the causal LM."""

    embedding: Any
    tag: Callable[[list[str]], list[str]]
    encoder: Any
    encoder_name: str
    lm: CausalLM


def load_checkers(lm: str | os.PathLike[str] | None = None, *, lexicons: str | os.PathLike[str] | None = None,
                  nltk_data: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None,
                  sentence_encoder: str | os.PathLike[str] | None = None) -> Checkers:
    """The real checkers: counter-fitted GloVe from ``lexicons`` (cached in ``cache_dir``), NLTK's tagger from
    ``nltk_data``, the sentence encoder ``sentence_encoder`` (``use-m3``, the default: USE multilingual v3, the
    nearest offline model to the USE that Morris et al.'s 0.98 was set on; ``minilm``: all-MiniLM-L6-v2; or a
    MiniLM-style model directory) and the causal ``lm`` (:func:`robustness.quality.load_lm`). Each path not given
    falls back to its env var."""
    from robustness.quality import load_lm
    from robustness.resources import counter_fitted_embedding
    from robustness.resources.sentence_encoder import get_encoder, minilm, sentence_encoder_path

    tag = nltk_universal_tagger(nltk_data)
    embedding = counter_fitted_embedding(lexicons, cache_dir)
    name = os.fspath(sentence_encoder) if sentence_encoder is not None else "use-m3"
    if name == "use-m3":
        encoder, encoder_name = get_encoder("use-m3"), "use-m3"
    else:
        encoder_name = sentence_encoder_path(None if name == "minilm" else name)
        encoder = minilm(encoder_name)
    return Checkers(embedding=embedding, tag=tag, encoder=encoder, encoder_name=encoder_name, lm=load_lm(lm))


def nltk_universal_tagger(nltk_data: str | os.PathLike[str] | None = None) -> Callable[[list[str]], list[str]]:
    """``nltk.pos_tag(words, tagset="universal")`` with the perceptron tagger loaded once (nltk.pos_tag loads
    it on every call); ``nltk_data``: the NLTK data dir (else env ``NLTK_DATA``)."""
    from nltk.tag import PerceptronTagger, map_tag

    from robustness.resources.textattack_compat import configure_nltk

    configure_nltk(nltk_data)
    try:
        tagger = PerceptronTagger()
    except LookupError as err:
        raise ValueError("the POS check needs NLTK's averaged_perceptron_tagger_eng: pass --nltk-data DIR or set "
                         "NLTK_DATA") from err
    return lambda words: [map_tag("en-ptb", "universal", t) for _, t in tagger.tag(list(words))] if words else []


def text_words(text: str) -> list[str]:
    """The words of a text as TextAttack segments them (``AttackedText.words``)."""
    from robustness.resources.textattack_compat import import_textattack

    return import_textattack().shared.utils.words_from_text(text)


def align_words(orig: Sequence[str], adv: Sequence[str]) -> tuple[list[tuple[int, int]], int]:
    """``(swaps, unaligned)``: index pairs (original, adversarial) of words swapped one for one, and the number of
    words inserted or deleted. Same word count: position-wise, as TextAttack's ``all_words_diff`` (and the
    records' ``words_changed``); otherwise difflib's alignment, whose equal-length replaced blocks are swaps."""
    if len(orig) == len(adv):
        return [(i, i) for i, (a, b) in enumerate(zip(orig, adv, strict=True)) if a != b], 0
    swaps, unaligned = [], 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, list(orig), list(adv), autojunk=False).get_opcodes():
        if op == "replace" and i2 - i1 == j2 - j1:
            swaps += list(zip(range(i1, i2), range(j1, j2), strict=True))
        elif op != "equal":
            unaligned += max(i2 - i1, j2 - j1)
    return swaps, unaligned


def word_cosine(embedding: Any, a: str, b: str) -> float | None:
    """Cosine of the counter-fitted vectors of ``a`` and ``b`` (lowercased); None when either has none."""
    try:
        return float(embedding.get_cos_sim(a.lower(), b.lower()))
    except KeyError:
        return None


def _in_vocabulary(embedding: Any, word: str) -> bool:
    try:
        embedding.word2index(word.lower())
    except KeyError:
        return False
    return True


def check_swaps(orig_text: str, adv_text: str, embedding: Any, tag: Callable[[list[str]], list[str]],
                preset: Preset) -> tuple[list[Swap], int]:
    """The per-swap checks of one example: ``(swaps, unaligned words)``."""
    orig, adv = text_words(orig_text), text_words(adv_text)
    pairs, unaligned = align_words(orig, adv)
    orig_tags = tag(orig) if pairs else []
    swaps: list[Swap] = []
    for i, j in pairs:
        cosine = word_cosine(embedding, orig[i], adv[j])
        adv_tag = tag([*orig[:i], adv[j], *orig[i + 1:]])[i]  # the adversarial word in the original context
        swaps.append(Swap(index=i, orig_word=orig[i], adv_word=adv[j], cosine=cosine,
                          cosine_ok=cosine is not None and cosine >= preset.min_word_cosine,
                          orig_pos=orig_tags[i], adv_pos=adv_tag,
                          pos_ok=not preset.pos_unchanged or orig_tags[i] == adv_tag))
    return swaps, unaligned


def revalidate_texts(orig_texts: Sequence[str], adv_texts: Sequence[str], checkers: Checkers, preset: Preset,
                     example_ids: Sequence[int] | None = None, batch_size: int = 16,
                     known: dict[str, float] | None = None) -> list[RevalidationRecord]:
    """Every check for each (original, adversarial) pair. ``known``: perplexities already computed with the LM
    (text -> perplexity), shared across runs."""
    ids = list(range(len(orig_texts))) if example_ids is None else list(example_ids)
    orig_ppl = _known_perplexities(checkers.lm, orig_texts, batch_size, known)
    adv_ppl = _known_perplexities(checkers.lm, adv_texts, batch_size, known)
    sims = similarities(orig_texts, adv_texts, checkers.encoder)
    out = []
    for k, orig, adv in zip(ids, orig_texts, adv_texts, strict=True):
        index = len(out)
        swaps, unaligned = check_swaps(orig, adv, checkers.embedding, checkers.tag, preset)
        oov = sorted({w.lower() for s in swaps if s["cosine"] is None for w in (s["orig_word"], s["adv_word"])
                      if not _in_vocabulary(checkers.embedding, w)})
        ratio = adv_ppl[index] / orig_ppl[index]
        row = RevalidationRecord(
            schema_version=REVALIDATION_SCHEMA_VERSION, example_id=int(k), adv_text=adv, preset=preset.name,
            swaps=swaps, unaligned_words=unaligned, oov_words=oov,
            word_cosine_ok=unaligned == 0 and all(s["cosine_ok"] for s in swaps),
            pos_ok=unaligned == 0 and all(s["pos_ok"] for s in swaps),
            similarity=float(sims[index]), similarity_ok=float(sims[index]) >= preset.min_similarity,
            orig_perplexity=orig_ppl[index], adv_perplexity=adv_ppl[index], ppl_ratio=ratio,
            ppl_ratio_ok=ratio <= preset.max_ppl_ratio,  # NaN (a text with no token to predict) fails
            valid=False, lm=checkers.lm.name, encoder=checkers.encoder_name)
        row["valid"] = row["word_cosine_ok"] and row["pos_ok"] and row["similarity_ok"] and row["ppl_ratio_ok"]
        out.append(row)
    return out


_REQUIRED = ("example_id", "adv_text", "preset", "valid", "lm", "encoder")


def read_revalidation(path: str | os.PathLike[str]) -> list[RevalidationRecord]:
    """The complete lines of a ``revalidation.jsonl`` or of its packed form ``revalidation.jsonl.gz`` (missing
    file: empty; a torn last line is ignored); a line that is not a re-validation record is a ValueError naming
    the file and line."""
    path = Path(path)
    data = read_stored(path)
    if data is None:
        return []
    lines = data.decode("utf-8").split("\n")[:-1]  # the part after the last newline is torn or empty
    rows = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not JSON ({err}); delete the file to re-validate") from None
        missing = [k for k in _REQUIRED if k not in row] if isinstance(row, dict) else list(_REQUIRED)
        if missing:
            raise ValueError(f"{path}, line {number}: not a re-validation record (lacks {', '.join(missing)}); "
                             "delete the file to re-validate")
        rows.append(row)
    return rows


def pending(run_dir: str | os.PathLike[str]) -> int:
    """Succeeded examples of the run not re-validated yet (for a progress bar's total)."""
    run_dir = Path(run_dir)
    seen = {r["example_id"] for r in read_revalidation(run_dir / REVALIDATION_FILE)}
    return sum(r["result"] == "succeeded" and r["adv_text"] is not None and r["example_id"] not in seen
               for r in read_records(run_dir / "records.jsonl"))


def revalidate_run(run_dir: str | os.PathLike[str], checkers: Checkers, preset: Preset, *, batch_size: int = 16,
                   known: dict[str, float] | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Append re-validation lines for the run's succeeded examples not checked yet; returns how many were added.
    ``progress(k)`` is called after each block of k examples is written."""
    run_dir = Path(run_dir)
    check_not_packed(run_dir, "revalidate")
    path = run_dir / REVALIDATION_FILE
    done = read_revalidation(path)
    for field, value in (("preset", preset.name), ("lm", checkers.lm.name), ("encoder", checkers.encoder_name)):
        other = sorted({str(q[field]) for q in done} - {value})
        if other:
            raise ValueError(f"{path} was written with another {field} ({other[0]}); refusing to mix, delete it "
                             "to re-validate")
    seen = {q["example_id"]: q["adv_text"] for q in done}
    records = read_records(run_dir / "records.jsonl")
    stale = [r["example_id"] for r in records if r["example_id"] in seen and seen[r["example_id"]] != r["adv_text"]]
    if stale:
        raise ValueError(f"{path} is stale: example {stale[0]}'s adversarial text differs from the run's records "
                         "(the run was redone); delete it to re-validate")
    todo = [r for r in records
            if r["result"] == "succeeded" and r["adv_text"] is not None and r["example_id"] not in seen]
    truncate_torn_tail(path)
    path.touch()  # a run without succeeded examples is re-validated too: an empty file
    for start in range(0, len(todo), BLOCK):
        chunk = todo[start:start + BLOCK]
        rows = revalidate_texts([r["orig_text"] for r in chunk], [r["adv_text"] for r in chunk], checkers, preset,
                                [r["example_id"] for r in chunk], batch_size, known)
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())
        if progress is not None:
            progress(len(chunk))
    return len(todo)


callable_module(__name__)  # ``rb.revalidate(...)``: this module, called, re-validates runs (robustness.api.revalidate)
