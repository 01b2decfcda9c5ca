"""Attack recipe registry: TextAttack 0.3.11 recipes rebuilt from TextAttack's own components.

Each builder mirrors ``textattack/attack_recipes/<recipe>.py`` component by component. The only departures
are resource substitutions that let a recipe run offline, each marked with a ``# Departure:`` comment:

* TextAttack's counter-fitted Paragram embedding (S3 download) → counter-fitted GloVe 50-d built locally
  from the original counter-fitting lexicons (Mrkšić et al. 2016), see :mod:`robustness.counterfit`.
* USE (TF-Hub) and SBERT stsb-distilbert-base (HF download) → all-MiniLM-L6-v2 with the stock metric,
  window and threshold (see :func:`robustness.resources.calibrated_threshold`).
* Language-model constraints that need downloads (Google 1B LM + TensorFlow, Learning-to-Write, GPT-2) are
  dropped; HowNet candidates (S3 download + flair POS model) are replaced by WordNet synonyms.

``stock=True`` builds ``textattack.attack_recipes.<Recipe>.build(model_wrapper)`` unchanged (needs internet
for the resources above).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from robustness import resources as res
from robustness.textattack_compat import import_textattack

TEXTFOOLER_STOPWORDS = frozenset(
    """
    a about above across after afterwards again against ain all almost alone along already also although am
    among amongst an and another any anyhow anyone anything anyway anywhere are aren aren't around as at back
    been before beforehand behind being below beside besides between beyond both but by can cannot could
    couldn couldn't d didn didn't doesn doesn't don don't down due during either else elsewhere empty enough
    even ever everyone everything everywhere except first for former formerly from hadn hadn't hasn hasn't
    haven haven't he hence her here hereafter hereby herein hereupon hers herself him himself his how however
    hundred i if in indeed into is isn isn't it it's its itself just latter latterly least ll may me meanwhile
    mightn mightn't mine more moreover most mostly must mustn mustn't my myself namely needn needn't neither
    never nevertheless next no nobody none noone nor not nothing now nowhere o of off on once one only onto or
    other others otherwise our ours ourselves out over per please s same shan shan't she she's should've
    shouldn shouldn't somehow something sometime somewhere such t than that that'll the their theirs them
    themselves then thence there thereafter thereby therefore therein thereupon these they this those through
    throughout thru thus to too toward towards under unless until up upon used ve was wasn wasn't we were
    weren weren't what whatever when whence whenever where whereafter whereas whereby wherein whereupon
    wherever whether which while whither who whoever whole whom whose why with within without won won't would
    wouldn wouldn't y yet you you'd you'll you're you've your yours yourself yourselves
    """.split()
)  # copied verbatim from textattack/attack_recipes/textfooler_jin_2019.py (tests compare them)


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    paper: str
    needs: frozenset[str]  # resource names of robustness.resources.doctor()
    description: str
    stock: str  # class in textattack.attack_recipes


@dataclass(frozen=True)
class Resources:
    """Local resources; build with :meth:`from_args`, where ``None`` falls back to env vars."""

    nltk_data: str | None = None  # env NLTK_DATA
    lexicons_dir: str | None = None  # env ROBUSTNESS_LEXICONS
    cache_dir: str | None = None  # env ROBUSTNESS_CACHE
    sentence_encoder_path: str | None = None  # env ROBUSTNESS_SENTENCE_ENCODER
    mlm: str | None = None  # local masked-LM dir for bae / bert-attack
    max_words: int | None = None  # restrict the counter-fitted vocabulary to the most frequent words (tests)
    offline: bool | None = None  # None: env ROBUSTNESS_OFFLINE / HF_HUB_OFFLINE

    @classmethod
    def from_args(cls, **values: Any) -> Resources:
        """Fields from ``values``; ``None`` or missing path fields come from env vars."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown resource fields: {', '.join(sorted(unknown))}")
        env = {name: os.environ.get(var) for name, var in _ENV.items()}
        env.update({k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in values.items() if v is not None})
        return cls(**env)


_ENV = {
    "nltk_data": "NLTK_DATA",
    "lexicons_dir": "ROBUSTNESS_LEXICONS",
    "cache_dir": "ROBUSTNESS_CACHE",
    "sentence_encoder_path": "ROBUSTNESS_SENTENCE_ENCODER",
}


@dataclass
class _Context:
    resources: Resources
    mlm: str | None
    _embedding: Any = field(default=None, repr=False)

    def embedding(self) -> Any:
        if self._embedding is None:
            r = self.resources
            self._embedding = res.counter_fitted_embedding(r.lexicons_dir, r.cache_dir, max_words=r.max_words)
        return self._embedding

    def encoder(self, recipe: str, **kwargs: Any) -> Any:
        threshold = res.calibrated_threshold(recipe)
        return res.local_sentence_encoder(self.resources.sentence_encoder_path, threshold=threshold, **kwargs)


_BASIC, _EMB = frozenset({"stopwords"}), frozenset({"stopwords", "embedding"})
RECIPES: dict[str, RecipeInfo] = {
    info.name: info
    for info in (
        RecipeInfo("deepwordbug", "Gao et al. 2018, arXiv:1801.04354", _BASIC,
                   "character edits (swap/substitute/delete/insert), greedy WIR, Levenshtein ≤ 30",
                   "DeepWordBugGao2018"),
        RecipeInfo("pruthi", "Pruthi et al. 2019, arXiv:1905.11268", _BASIC,
                   "one typo-like character edit (incl. QWERTY), greedy search", "Pruthi2019"),
        RecipeInfo("textbugger", "Li et al. 2018, arXiv:1812.05271", _EMB | {"sentence_encoder"},
                   "character bugs + homoglyphs + embedding swaps, sentence-encoder constraint", "TextBuggerLi2018"),
        RecipeInfo("pwws", "Ren et al. 2019, ACL P19-1103", frozenset({"stopwords", "wordnet"}),
                   "WordNet synonym swaps, probability-weighted word saliency", "PWWSRen2019"),
        RecipeInfo("textfooler", "Jin et al. 2019, arXiv:1907.11932", _EMB | {"sentence_encoder", "pos_tagger"},
                   "embedding swaps with POS and sentence-encoder constraints, deletion WIR", "TextFoolerJin2019"),
        RecipeInfo("iga", "Wang et al. 2019, arXiv:1909.06723", _EMB,
                   "embedding swaps, improved genetic algorithm", "IGAWang2019"),
        RecipeInfo("faster-alzantot", "Jia et al. 2019, arXiv:1909.00986", _EMB,
                   "embedding swaps, genetic algorithm (LM constraint dropped offline)",
                   "FasterGeneticAlgorithmJia2019"),
        RecipeInfo("alzantot", "Alzantot et al. 2018, arXiv:1804.07998", _EMB,
                   "embedding swaps, genetic algorithm (Google LM constraint dropped offline)",
                   "GeneticAlgorithmAlzantot2018"),
        RecipeInfo("a2t", "Yoo & Qi 2021, arXiv:2109.00544", _EMB | {"sentence_encoder", "pos_tagger"},
                   "embedding swaps, gradient word-importance ranking", "A2TYoo2021"),
        RecipeInfo("input-reduction", "Feng et al. 2018, arXiv:1804.07781", _BASIC,
                   "deletes words while the prediction stays the same", "InputReductionFeng2018"),
        RecipeInfo("kuleshov", "Kuleshov et al. 2018, OpenReview r1QZ3zbAZ", _EMB,
                   "embedding swaps, thought-vector constraint (GPT-2 constraint dropped offline)", "Kuleshov2017"),
        RecipeInfo("pso", "Zang et al. 2020, ACL 2020.acl-main.540", frozenset({"stopwords", "wordnet"}),
                   "particle swarm search (HowNet candidates replaced by WordNet offline)", "PSOZang2020"),
        RecipeInfo("bae", "Garg & Ramakrishnan 2020, arXiv:2004.01970", frozenset(
                   {"stopwords", "mlm", "sentence_encoder", "pos_tagger"}),
                   "masked-LM replacements (BAE-R), POS and sentence-encoder constraints", "BAEGarg2019"),
        RecipeInfo("bert-attack", "Li et al. 2020, arXiv:2004.09984",
                   frozenset({"stopwords", "mlm", "sentence_encoder"}), "masked-LM replacements, unk WIR",
                   "BERTAttackLi2020"),
    )
}


def _known() -> str:
    return ", ".join(RECIPES)


def _deepwordbug(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.overlap import LevenshteinEditDistance
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (
        CompositeTransformation,
        WordSwapNeighboringCharacterSwap,
        WordSwapRandomCharacterDeletion,
        WordSwapRandomCharacterInsertion,
        WordSwapRandomCharacterSubstitution,
    )

    transformation = CompositeTransformation(
        [
            WordSwapNeighboringCharacterSwap(),
            WordSwapRandomCharacterSubstitution(),
            WordSwapRandomCharacterDeletion(),
            WordSwapRandomCharacterInsertion(),
        ]
    )
    constraints = [RepeatModification(), StopwordModification(), LevenshteinEditDistance(30)]
    return _untargeted(w), constraints, transformation, GreedyWordSwapWIR()


def _pruthi(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import MinWordLength, RepeatModification, StopwordModification
    from textattack.search_methods import GreedySearch
    from textattack.transformations import (
        CompositeTransformation,
        WordSwapNeighboringCharacterSwap,
        WordSwapQWERTY,
        WordSwapRandomCharacterDeletion,
        WordSwapRandomCharacterInsertion,
    )

    edit = {"random_one": False, "skip_first_char": True, "skip_last_char": True}
    transformation = CompositeTransformation(
        [
            WordSwapNeighboringCharacterSwap(**edit),
            WordSwapRandomCharacterDeletion(**edit),
            WordSwapRandomCharacterInsertion(**edit),
            WordSwapQWERTY(**edit),
        ]
    )
    constraints = [MinWordLength(min_length=4), StopwordModification(), MaxWordsPerturbed(max_num_words=1),
                   RepeatModification()]
    return _untargeted(w), constraints, transformation, GreedySearch()


def _textbugger(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (
        CompositeTransformation,
        WordSwapEmbedding,
        WordSwapNeighboringCharacterSwap,
        WordSwapRandomCharacterDeletion,
        WordSwapRandomCharacterInsertion,
    )

    from robustness.textattack_compat import HomoglyphSwap

    edit = {"random_one": True, "skip_first_char": True, "skip_last_char": True}
    transformation = CompositeTransformation(
        [
            WordSwapRandomCharacterInsertion(letters_to_insert=" ", **edit),
            WordSwapRandomCharacterDeletion(**edit),
            WordSwapNeighboringCharacterSwap(**edit),
            # Workaround: stock WordSwapHomoglyphSwap needs a data file missing from the 0.3.11 wheel.
            HomoglyphSwap(),
            # Departure: Paragram counter-fitted vectors (S3) -> locally counter-fitted GloVe 50-d.
            WordSwapEmbedding(max_candidates=5, embedding=ctx.embedding()),
        ]
    )
    # Departure: USE (TF-Hub), UniversalSentenceEncoder(threshold=0.8) with its default angular metric on
    # the whole text -> all-MiniLM-L6-v2, same metric and window, threshold from calibrated_threshold().
    constraints = [RepeatModification(), StopwordModification(), ctx.encoder("textbugger", metric="angular")]
    return _untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="delete")


def _pwws(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR

    from robustness.textattack_compat import OfflineWordSwapWordNet

    # Workaround: WordSwapWordNet() calls nltk.download("omw-1.4") on every build; skipped offline.
    transformation = OfflineWordSwapWordNet(offline=ctx.resources.offline)
    constraints = [RepeatModification(), StopwordModification()]
    return _untargeted(w), constraints, transformation, GreedyWordSwapWIR("weighted-saliency")


def _textfooler(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.grammaticality import PartOfSpeech
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapEmbedding

    # Departure: Paragram counter-fitted vectors (S3) -> locally counter-fitted GloVe 50-d (both uses).
    transformation = WordSwapEmbedding(max_candidates=50, embedding=ctx.embedding())
    constraints = [
        RepeatModification(),
        StopwordModification(stopwords=TEXTFOOLER_STOPWORDS),
        InputColumnModification(["premise", "hypothesis"], {"premise"}),
        WordEmbeddingDistance(embedding=ctx.embedding(), min_cos_sim=0.5),
        PartOfSpeech(allow_verb_noun_swap=True),
        # Departure: USE (TF-Hub) -> all-MiniLM-L6-v2 on the same 15-word windows, angular metric;
        # threshold from calibrated_threshold("textfooler") instead of 0.840845057.
        ctx.encoder("textfooler", metric="angular", compare_against_original=False, window_size=15,
                    skip_text_shorter_than_window=True),
    ]
    return _untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="delete")


def _iga(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import StopwordModification
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.search_methods import ImprovedGeneticAlgorithm
    from textattack.transformations import WordSwapEmbedding

    # Departure: Paragram counter-fitted vectors (S3) -> locally counter-fitted GloVe 50-d (unit rows, so
    # the MSE threshold keeps its meaning: ||u - v||^2 = 2 - 2 cos).
    transformation = WordSwapEmbedding(max_candidates=50, embedding=ctx.embedding())
    constraints = [
        StopwordModification(),
        MaxWordsPerturbed(max_percent=0.2),
        WordEmbeddingDistance(embedding=ctx.embedding(), max_mse_dist=0.5, compare_against_original=False),
    ]
    search = ImprovedGeneticAlgorithm(pop_size=60, max_iters=20, max_replace_times_per_index=5,
                                      post_crossover_check=False)
    return _untargeted(w), constraints, transformation, search


def _genetic(w: Any, ctx: _Context, *, faster: bool) -> tuple:
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.search_methods import AlzantotGeneticAlgorithm
    from textattack.transformations import WordSwapEmbedding

    # Departure: Paragram counter-fitted vectors (S3) -> locally counter-fitted GloVe 50-d (unit rows).
    transformation = WordSwapEmbedding(max_candidates=8, embedding=ctx.embedding())
    constraints = [RepeatModification(), StopwordModification()]
    if faster:  # Jia et al. 2019
        constraints += [MaxWordsPerturbed(max_percent=0.2),
                        WordEmbeddingDistance(embedding=ctx.embedding(), max_mse_dist=0.5)]
        # Departure: LearningToWriteLanguageModel(window_size=6, max_log_prob_diff=5.0) is dropped: its
        # RNN LM is an S3 download with no offline substitute (the attack is less constrained).
        return _untargeted(w), constraints, transformation, AlzantotGeneticAlgorithm(
            pop_size=60, max_iters=40, post_crossover_check=False)
    constraints += [
        InputColumnModification(["premise", "hypothesis"], {"premise"}),
        MaxWordsPerturbed(max_percent=0.2),
        WordEmbeddingDistance(embedding=ctx.embedding(), max_mse_dist=0.5, compare_against_original=False),
    ]
    # Departure: Google1BillionWordsLanguageModel(top_n_per_index=4) is dropped: it needs TensorFlow and a
    # downloaded Google 1B-words LM (Alzantot et al. 2018 §3); no offline substitute.
    return _untargeted(w), constraints, transformation, AlzantotGeneticAlgorithm(
        pop_size=60, max_iters=20, post_crossover_check=False)


def _a2t(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.grammaticality import PartOfSpeech
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        MaxModificationRate,
        RepeatModification,
        StopwordModification,
    )
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapEmbedding

    constraints = [
        RepeatModification(),
        StopwordModification(),
        InputColumnModification(["premise", "hypothesis"], {"premise"}),
        PartOfSpeech(allow_verb_noun_swap=False),
        MaxModificationRate(max_rate=0.1, min_threshold=4),
        # Departure: SBERT stsb-distilbert-base (HF download) -> all-MiniLM-L6-v2, cosine on the whole text.
        ctx.encoder("a2t", metric="cosine"),
    ]
    # Departure: Paragram counter-fitted vectors (S3) -> locally counter-fitted GloVe 50-d (both uses).
    transformation = WordSwapEmbedding(max_candidates=20, embedding=ctx.embedding())
    constraints.append(WordEmbeddingDistance(embedding=ctx.embedding(), min_cos_sim=0.8))
    max_len = getattr(w, "max_length", None) or min(
        1024, w.tokenizer.model_max_length, w.model.config.max_position_embeddings - 2
    )
    search = GreedyWordSwapWIR(wir_method="gradient", truncate_words_to=max_len)
    return UntargetedClassification(w, model_batch_size=32), constraints, transformation, search


def _input_reduction(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import InputReduction
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordDeletion

    constraints = [RepeatModification(), StopwordModification()]
    return InputReduction(w, maximizable=True), constraints, WordDeletion(), GreedyWordSwapWIR(wir_method="delete")


def _kuleshov(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.constraints.semantics.sentence_encoders import ThoughtVector
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedySearch
    from textattack.transformations import WordSwapEmbedding

    # Departure: Paragram counter-fitted vectors (S3) -> locally counter-fitted GloVe 50-d (both uses).
    transformation = WordSwapEmbedding(max_candidates=15, embedding=ctx.embedding())
    constraints = [
        RepeatModification(),
        StopwordModification(),
        MaxWordsPerturbed(max_percent=0.5),
        ThoughtVector(embedding=ctx.embedding(), threshold=0.2, metric="max_euclidean"),
    ]
    # Departure: GPT2(max_log_prob_diff=2.0) is dropped: GPT-2 is an HF download with no local copy.
    goal = UntargetedClassification(w, target_max_score=0.7)
    return goal, constraints, transformation, GreedySearch()


def _pso(w: Any, ctx: _Context) -> tuple:
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.search_methods import ParticleSwarmOptimization

    from robustness.textattack_compat import OfflineWordSwapWordNet

    # Departure: WordSwapHowNet (sememe candidates, an S3 download, plus flair's downloaded POS model) ->
    # WordNet synonyms, the lexical-knowledge-base substitution Zang et al. 2020 compare against.
    transformation = OfflineWordSwapWordNet(offline=ctx.resources.offline)
    constraints = [RepeatModification(), StopwordModification(),
                   InputColumnModification(["premise", "hypothesis"], {"premise"})]
    return _untargeted(w), constraints, transformation, ParticleSwarmOptimization(pop_size=60, max_iters=20)


def _masked_lm(w: Any, ctx: _Context, *, method: str) -> tuple:
    from textattack.constraints.grammaticality import PartOfSpeech
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapMaskedLM

    # Departure: bert-base-uncased (HF download) -> the local masked LM given as --mlm.
    constraints = [RepeatModification(), StopwordModification()]
    if method == "bae":
        transformation = WordSwapMaskedLM(method="bae", masked_language_model=ctx.mlm, max_candidates=50,
                                          min_confidence=0.0)
        constraints.append(PartOfSpeech(allow_verb_noun_swap=True))
        # Departure: USE (TF-Hub) -> all-MiniLM-L6-v2, cosine on 15-word windows, calibrated threshold.
        constraints.append(ctx.encoder("bae", metric="cosine", compare_against_original=True, window_size=15,
                                       skip_text_shorter_than_window=True))
        return _untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="delete")
    transformation = WordSwapMaskedLM(method="bert-attack", masked_language_model=ctx.mlm, max_candidates=8)
    constraints.append(MaxWordsPerturbed(max_percent=0.4))
    # Departure: USE (TF-Hub) -> all-MiniLM-L6-v2, cosine on the whole text, calibrated threshold.
    constraints.append(ctx.encoder("bert-attack", metric="cosine", compare_against_original=True, window_size=None))
    return _untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="unk")


def _untargeted(w: Any) -> Any:
    from textattack.goal_functions import UntargetedClassification

    return UntargetedClassification(w)


_BUILDERS: dict[str, Callable[[Any, _Context], tuple]] = {
    "deepwordbug": _deepwordbug,
    "pruthi": _pruthi,
    "textbugger": _textbugger,
    "pwws": _pwws,
    "textfooler": _textfooler,
    "iga": _iga,
    "faster-alzantot": lambda w, ctx: _genetic(w, ctx, faster=True),
    "alzantot": lambda w, ctx: _genetic(w, ctx, faster=False),
    "a2t": _a2t,
    "input-reduction": _input_reduction,
    "kuleshov": _kuleshov,
    "pso": _pso,
    "bae": lambda w, ctx: _masked_lm(w, ctx, method="bae"),
    "bert-attack": lambda w, ctx: _masked_lm(w, ctx, method="bert-attack"),
}


def build_attack(
    name: str,
    model_wrapper: Any,
    *,
    resources: Resources | None = None,
    stock: bool = False,
    query_budget: int | None = None,
    mlm: str | None = None,
) -> Any:
    """Build recipe ``name`` as a ``textattack.Attack`` against ``model_wrapper``.

    ``stock=True`` returns TextAttack's own recipe unchanged (downloads its resources). ``query_budget``
    sets ``goal_function.query_budget`` (TextAttack counts cache hits as queries). ``bae`` and
    ``bert-attack`` need ``mlm``, a local masked-LM dir.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {_known()}")
    if query_budget is not None and (isinstance(query_budget, bool) or not isinstance(query_budget, int)
                                     or query_budget < 1):
        raise ValueError(f"query_budget must be a positive int, got {query_budget!r}")
    resources = resources or Resources.from_args()
    mlm = mlm or resources.mlm
    textattack = import_textattack(resources.nltk_data, offline=resources.offline)
    if stock:
        attack = getattr(textattack.attack_recipes, RECIPES[name].stock).build(model_wrapper)
    else:
        if "mlm" in RECIPES[name].needs:
            if not mlm:
                raise ValueError(f"recipe {name!r} needs a masked language model: pass --mlm PATH")
            if not os.path.isfile(os.path.join(mlm, "config.json")):
                raise ValueError(f"masked language model dir {mlm} has no config.json")
        goal, constraints, transformation, search = _BUILDERS[name](model_wrapper, _Context(resources, mlm))
        attack = textattack.Attack(goal, constraints, transformation, search)
    if query_budget is not None:
        attack.goal_function.query_budget = query_budget
    return attack
