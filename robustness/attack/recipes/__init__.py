"""Attack recipe registry: TextAttack 0.3.11 recipes rebuilt from TextAttack's own components.

Each builder mirrors ``textattack/attack_recipes/<recipe>.py`` component by component. The only departures
are resource substitutions that let a recipe run offline, each marked with a ``# Departure:`` comment:

* TextAttack's counter-fitted Paragram embedding (S3 download) → counter-fitted GloVe 50-d built locally
  from the original counter-fitting lexicons (Mrkšić et al. 2016), see :mod:`robustness.resources.counterfit`.
* USE v4 (TF-Hub) → USE multilingual v3 (``use-m3``, numpy, a PyPI package) and SBERT stsb-distilbert-base
  (HF download) → all-MiniLM-L6-v2 (``minilm``), with the stock metric, window and threshold (see
  :mod:`robustness.resources.encoder_calibration`); ``sentence_encoder="minilm"`` selects MiniLM for every
  recipe, as all runs made before USE-m3 was added did (:mod:`robustness.resources.sentence_encoder`).
* Language-model constraints that need downloads (Google 1B LM + TensorFlow, Learning-to-Write, GPT-2) are
  dropped; HowNet candidates (S3 download + flair POS model) are replaced by WordNet synonyms.

Builders, grouped by search: :mod:`~robustness.attack.recipes.characters` (character edits),
:mod:`~robustness.attack.recipes.greedy` (word swaps, greedy search),
:mod:`~robustness.attack.recipes.population` (genetic algorithms, PSO); what they read is in
:mod:`~robustness.attack.recipes.context`.

Not offered: input-reduction (Feng et al. 2018). Its goal function maximises (TextAttack returns a
``MaximizedAttackResult``, neither success nor failure), which the record schema has no outcome for.

``stock=True`` builds ``textattack.attack_recipes.<Recipe>.build(model_wrapper)`` unchanged (needs internet
for the resources above).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustness.attack.recipes import characters, greedy, population
from robustness.attack.recipes.context import BuildContext, Resources
from robustness.attack.recipes.greedy import TEXTFOOLER_STOPWORDS
from robustness.resources.mlm import mlm_head_problem
from robustness.resources.sentence_encoder import check_encoder
from robustness.resources.textattack_compat import import_textattack, quiet_textattack
from robustness.schema.specs import check_goal

__all__ = ["RECIPES", "TEXTFOOLER_STOPWORDS", "RecipeInfo", "Resources", "build_attack", "check_recipe",
           "import_textattack"]


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    paper: str
    needs: frozenset[str]  # resource names of robustness.resources.doctor.doctor()
    description: str
    stock: str  # class in textattack.attack_recipes


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


_BUILDERS: dict[str, Callable[[Any, BuildContext], tuple]] = {
    "deepwordbug": characters.deepwordbug,
    "pruthi": characters.pruthi,
    "textbugger": characters.textbugger,
    "pwws": greedy.pwws,
    "textfooler": greedy.textfooler,
    "iga": population.iga,
    "faster-alzantot": lambda w, ctx: population.genetic(w, ctx, faster=True),
    "alzantot": lambda w, ctx: population.genetic(w, ctx, faster=False),
    "a2t": greedy.a2t,
    "kuleshov": greedy.kuleshov,
    "pso": population.pso,
    "bae": lambda w, ctx: greedy.masked_lm(w, ctx, method="bae"),
    "bert-attack": lambda w, ctx: greedy.masked_lm(w, ctx, method="bert-attack"),
}


def check_recipe(name: str, *, mlm: str | None = None, stock: bool = False) -> None:
    """What can be checked about recipe ``name`` before building it (no TextAttack import): it is known, and
    a recipe that needs a masked LM has one with a trained MLM head. ``ValueError`` otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {_known()}")
    if not stock and "mlm" in RECIPES[name].needs:
        if not mlm:
            raise ValueError(f"recipe {name!r} needs a masked language model: pass --mlm PATH")
        problem = mlm_head_problem(mlm)
        if problem:
            raise ValueError(f"recipe {name!r}: {problem}")


def _build_stock(textattack: Any, name: str, model_wrapper: Any) -> Any:
    """TextAttack's own recipe; a failed download becomes one line naming what it tried to fetch."""
    import requests

    try:
        return getattr(textattack.attack_recipes, RECIPES[name].stock).build(model_wrapper)
    except (requests.RequestException, OSError) as err:
        request = getattr(err, "request", None)
        what = request.url if request is not None else (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"--stock {name}: could not download {what} (offline? drop --stock to use the offline "
                         "recipe)") from err


def build_attack(
    name: str,
    model_wrapper: Any,
    *,
    resources: Resources | None = None,
    stock: bool = False,
    query_budget: int | None = None,
    mlm: str | None = None,
    goal: str = "accuracy",
    goal_target: int | None = None,
    keep_prediction: bool = False,
    shared: Any = None,
    slowdown_score: str = "exit",
    sentence_encoder: str | None = None,
) -> Any:
    """Build recipe ``name`` as a ``textattack.Attack`` against ``model_wrapper``.

    ``sentence_encoder`` (``"use-m3"`` or ``"minilm"``) is the offline encoder of the recipes with a
    sentence-encoder constraint; None: the recipe's default
    (:func:`robustness.resources.sentence_encoder.recipe_encoder`). Other recipes ignore it.

    ``shared`` (a :class:`robustness.attack.shared_caches.SharedWork`) makes the attack share its
    transformation, constraints and their caches with the other attacks built with it (not for ``stock``).

    ``stock=True`` returns TextAttack's own recipe unchanged (downloads its resources). ``query_budget``
    sets ``goal_function.query_budget`` (TextAttack counts cache hits as queries). ``bae`` and
    ``bert-attack`` need ``mlm``, a local masked-LM dir with trained MLM-head weights. Prints nothing
    (TextAttack's model-compatibility warnings are silenced for the build).

    ``goal="slowdown"`` keeps the recipe's transformation, constraints and search and replaces its goal
    function by :class:`robustness.attack.goals.SlowdownGoalFunction` (exit at ``goal_target``, default L;
    ``keep_prediction`` for a pure slowdown; ``slowdown_score`` guides the search: ``exit``, ``waffle`` or
    ``oavg``), with the recipe goal's query budget and batch size.
    """
    check_goal(goal, goal_target, keep_prediction, slowdown_score)
    if goal != "accuracy" and stock:
        raise ValueError(f"--stock builds TextAttack's own recipe, whose goal is accuracy; goal {goal!r} needs the "
                         "offline recipe")
    check_recipe(name, mlm=mlm or (resources.mlm if resources else None), stock=stock)
    if query_budget is not None and (isinstance(query_budget, bool) or not isinstance(query_budget, int)
                                     or query_budget < 1):
        raise ValueError(f"query_budget must be a positive int, got {query_budget!r}")
    if sentence_encoder is not None:
        check_encoder(sentence_encoder)
    resources = resources or Resources.from_args()
    mlm = mlm or resources.mlm
    textattack = import_textattack(resources.nltk_data, offline=resources.offline)
    with quiet_textattack():
        if stock:
            attack = _build_stock(textattack, name, model_wrapper)
        else:
            objective, constraints, transformation, search = _BUILDERS[name](model_wrapper,
                                                                              BuildContext(resources, mlm,
                                                                                           sentence_encoder))
            if goal == "slowdown":
                from robustness.attack.goals import SlowdownGoalFunction

                objective = SlowdownGoalFunction(model_wrapper, goal_target, keep_prediction, slowdown_score,
                                                 query_budget=objective.query_budget,
                                                 model_batch_size=objective.batch_size)
            if shared is None:
                attack = textattack.Attack(objective, constraints, transformation, search)
            else:
                from robustness.attack.shared_caches import SharedWorkAttack

                attack = SharedWorkAttack(objective, constraints, transformation, search, shared)
    if query_budget is not None:
        attack.goal_function.query_budget = query_budget
    return attack
