"""Population-based recipes: IGA, Faster Alzantot, Alzantot (genetic algorithms) and PSO."""

from __future__ import annotations

from typing import Any

from robustness.attack.recipes.context import BuildContext, untargeted


def iga(w: Any, ctx: BuildContext) -> tuple:
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
    return untargeted(w), constraints, transformation, search


def genetic(w: Any, ctx: BuildContext, *, faster: bool) -> tuple:
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
        return untargeted(w), constraints, transformation, AlzantotGeneticAlgorithm(
            pop_size=60, max_iters=40, post_crossover_check=False)
    constraints += [
        InputColumnModification(["premise", "hypothesis"], {"premise"}),
        MaxWordsPerturbed(max_percent=0.2),
        WordEmbeddingDistance(embedding=ctx.embedding(), max_mse_dist=0.5, compare_against_original=False),
    ]
    # Departure: Google1BillionWordsLanguageModel(top_n_per_index=4) is dropped: it needs TensorFlow and a
    # downloaded Google 1B-words LM (Alzantot et al. 2018 §3); no offline substitute.
    return untargeted(w), constraints, transformation, AlzantotGeneticAlgorithm(
        pop_size=60, max_iters=20, post_crossover_check=False)


def pso(w: Any, ctx: BuildContext) -> tuple:
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.search_methods import ParticleSwarmOptimization

    from robustness.resources.textattack_compat import OfflineWordSwapWordNet

    # Departure: WordSwapHowNet (sememe candidates, an S3 download, plus flair's downloaded POS model) ->
    # WordNet synonyms, the lexical-knowledge-base substitution Zang et al. 2020 compare against.
    transformation = OfflineWordSwapWordNet(offline=ctx.resources.offline)
    constraints = [RepeatModification(), StopwordModification(),
                   InputColumnModification(["premise", "hypothesis"], {"premise"})]
    return untargeted(w), constraints, transformation, ParticleSwarmOptimization(pop_size=60, max_iters=20)
