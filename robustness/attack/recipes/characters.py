"""Character-level recipes: DeepWordBug, Pruthi, TextBugger."""

from __future__ import annotations

from typing import Any

from robustness.attack.recipes.context import BuildContext, untargeted


def deepwordbug(w: Any, ctx: BuildContext) -> tuple:
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
    return untargeted(w), constraints, transformation, GreedyWordSwapWIR()


def pruthi(w: Any, ctx: BuildContext) -> tuple:
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
    return untargeted(w), constraints, transformation, GreedySearch()


def textbugger(w: Any, ctx: BuildContext) -> tuple:
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import (
        CompositeTransformation,
        WordSwapEmbedding,
        WordSwapNeighboringCharacterSwap,
        WordSwapRandomCharacterDeletion,
        WordSwapRandomCharacterInsertion,
    )

    from robustness.resources.textattack_compat import HomoglyphSwap

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
    # Departure: USE v4 (TF-Hub), UniversalSentenceEncoder(threshold=0.8) with its default angular metric on
    # the whole text -> USE multilingual v3 (use-m3, the default) or all-MiniLM-L6-v2 (minilm), same metric,
    # window and threshold (encoder_calibration).
    constraints = [RepeatModification(), StopwordModification(), ctx.encoder("textbugger", metric="angular")]
    return untargeted(w), constraints, transformation, GreedyWordSwapWIR(wir_method="delete")
