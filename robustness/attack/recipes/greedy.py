"""Word-substitution recipes with greedy search: PWWS, TextFooler, A2T, Kuleshov, BAE,
BERT-Attack."""

from __future__ import annotations

from typing import Any

from robustness.attack.recipes.context import BuildContext, untargeted

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


def pwws(w: Any, ctx: BuildContext) -> tuple:
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR

    from robustness.resources.textattack_compat import OfflineWordSwapWordNet

    # Workaround: WordSwapWordNet() calls nltk.download("omw-1.4") on every build; skipped offline.
    transformation = OfflineWordSwapWordNet(offline=ctx.resources.offline)
    constraints = [RepeatModification(), StopwordModification()]
    return untargeted(w), constraints, transformation, GreedyWordSwapWIR("weighted-saliency")


def textfooler(w: Any, ctx: BuildContext) -> tuple:
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
        # Departure: USE v4 (TF-Hub) -> USE multilingual v3 (use-m3, the default) or all-MiniLM-L6-v2 (minilm) on
        # the same 15-word windows, angular metric, stock threshold 0.840845057 (encoder_calibration).
        ctx.encoder("textfooler", metric="angular", compare_against_original=False, window_size=15,
                    skip_text_shorter_than_window=True),
    ]
    return untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="delete")


def a2t(w: Any, ctx: BuildContext) -> tuple:
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
        # Departure: SBERT stsb-distilbert-base (HF download) -> all-MiniLM-L6-v2 (minilm, the default; an SBERT
        # model too) or USE-m3, cosine on the whole text, stock threshold 0.9.
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


def kuleshov(w: Any, ctx: BuildContext) -> tuple:
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


def masked_lm(w: Any, ctx: BuildContext, *, method: str) -> tuple:
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
        # Departure: USE v4 (TF-Hub) -> USE-m3 (default) or MiniLM, cosine on 15-word windows, stock threshold.
        constraints.append(ctx.encoder("bae", metric="cosine", compare_against_original=True, window_size=15,
                                       skip_text_shorter_than_window=True))
        return untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="delete")
    transformation = WordSwapMaskedLM(method="bert-attack", masked_language_model=ctx.mlm, max_candidates=8)
    constraints.append(MaxWordsPerturbed(max_percent=0.4))
    # Departure: USE v4 (TF-Hub) -> USE-m3 (default) or MiniLM, cosine on the whole text, stock threshold.
    constraints.append(ctx.encoder("bert-attack", metric="cosine", compare_against_original=True, window_size=None))
    return untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="unk")
