from __future__ import annotations

import ast
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from robustness.attack import recipes
from robustness.attack.recipes import RECIPES, Resources, build_attack
from robustness.attack.recipes.availability import recipe_availability

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
needs_shared = pytest.mark.skipif(not (SHARED / "lexicons").is_dir(), reason="shared resources absent")
OFFLINE_RECIPES = [name for name, info in RECIPES.items() if "mlm" not in info.needs]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network touched: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def resources(tmp_path_factory: pytest.TempPathFactory) -> Resources:
    if not (SHARED / "lexicons").is_dir():
        pytest.skip("shared resources absent")
    return Resources(nltk_data=str(SHARED / "nltk_data"), lexicons_dir=str(SHARED / "lexicons"),
                     cache_dir=str(tmp_path_factory.mktemp("cache")), max_words=2000, offline=True)


@pytest.fixture(scope="session")
def keyword_wrapper(resources: Resources) -> object:
    """Predicts positive ([0.1, 0.9]) iff the text contains the word "good", else negative."""
    textattack = recipes.import_textattack(resources.nltk_data, offline=True)

    class Dummy:
        pass

    class KeywordWrapper(textattack.models.wrappers.ModelWrapper):
        max_length = 128  # read by A2T instead of tokenizer/model config

        def __init__(self) -> None:
            self.model = Dummy()

        def __call__(self, text_input_list: list[str]) -> np.ndarray:
            return np.array([[0.1, 0.9] if "good" in t.lower().split() else [0.9, 0.1] for t in text_input_list])

    return KeywordWrapper()


def constraint_types(attack: object) -> list[str]:
    return [type(c).__name__ for c in attack.pre_transformation_constraints + attack.constraints]


@needs_shared
@pytest.mark.parametrize("name", OFFLINE_RECIPES)
def test_every_offline_recipe_builds(name: str, resources: Resources, keyword_wrapper: object) -> None:
    attack = build_attack(name, keyword_wrapper, resources=resources, query_budget=500)
    assert type(attack).__name__ == "Attack"
    assert attack.goal_function.query_budget == 500


@needs_shared
def test_textfooler_substitutions(resources: Resources, keyword_wrapper: object) -> None:
    attack = build_attack("textfooler", keyword_wrapper, resources=resources)
    assert constraint_types(attack) == ["RepeatModification", "StopwordModification", "InputColumnModification",
                                        "WordEmbeddingDistance", "PartOfSpeech", "LocalSentenceEncoder"]
    encoder = attack.constraints[-1]
    assert (encoder.threshold, encoder.metric, encoder.window_size) == (pytest.approx(0.840845057), "angular", 15)
    assert encoder.skip_text_shorter_than_window and not encoder.compare_against_original
    assert attack.transformation.embedding.embedding_matrix.shape == (2000, 50)
    assert attack.transformation.max_candidates == 50


@needs_shared
@pytest.mark.parametrize(
    ("name", "requested", "expected"),
    [("textfooler", None, "use-m3"), ("textfooler", "minilm", "minilm"), ("textbugger", None, "use-m3"),
     ("a2t", None, "minilm"), ("a2t", "use-m3", "use-m3")],
)
def test_sentence_encoder_choice(name: str, requested: str | None, expected: str, resources: Resources,
                                 keyword_wrapper: object) -> None:
    from robustness.resources import sentence_encoder

    attack = build_attack(name, keyword_wrapper, resources=resources, sentence_encoder=requested)
    (encoder,) = [c for c in attack.constraints if type(c).__name__ == "LocalSentenceEncoder"]
    assert encoder.encoder_name == expected and encoder.model is sentence_encoder.get_encoder(expected)
    assert encoder.threshold == pytest.approx(sentence_encoder.CALIBRATION[name].stock_threshold)  # on either
    with pytest.raises(ValueError, match="sentence encoder must be one of use-m3, minilm"):
        build_attack(name, keyword_wrapper, resources=resources, sentence_encoder="use-v4")


@needs_shared
def test_textbugger_uses_homoglyph_workaround(resources: Resources, keyword_wrapper: object) -> None:
    attack = build_attack("textbugger", keyword_wrapper, resources=resources)
    names = [type(t).__name__ for t in attack.transformation.transformations]
    assert names[3] == "HomoglyphSwap" and names[4] == "WordSwapEmbedding"
    homoglyph = attack.transformation.transformations[3]
    assert homoglyph.homos_intentional["a"] == ["\u0430"]  # CYRILLIC SMALL LETTER A
    assert homoglyph.homos_intentional["\u1a45"] == ["\u1a80", "\u1a90"]
    assert sum(len(v) for v in homoglyph.homos_intentional.values()) == 78
    assert homoglyph._get_replacement_words("good") == ["\u0261ood", "g\u043eod", "go\u043ed", "goo\u0501"]


@needs_shared
@pytest.mark.parametrize("name", ["deepwordbug", "pruthi"])
def test_unsubstituted_recipes_equal_stock(name: str, resources: Resources, keyword_wrapper: object) -> None:
    ours = build_attack(name, keyword_wrapper, resources=resources)
    stock = build_attack(name, keyword_wrapper, resources=resources, stock=True)
    assert repr(ours) == repr(stock)


def test_textfooler_stopwords_equal_stock() -> None:
    import importlib.util

    path = Path(importlib.util.find_spec("textattack").origin).parent / "attack_recipes" / "textfooler_jin_2019.py"
    sets = [node.args[0] for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "set" and node.args]
    assert recipes.TEXTFOOLER_STOPWORDS == {e.value for e in sets[0].elts}


def test_unknown_recipe_and_bad_arguments(keyword_wrapper: object, resources: Resources) -> None:
    with pytest.raises(ValueError, match="unknown recipe 'nope'; known: deepwordbug, pruthi"):
        build_attack("nope", keyword_wrapper, resources=resources)
    with pytest.raises(ValueError, match=r"recipe 'bae' needs a masked language model: pass --mlm PATH"):
        build_attack("bae", keyword_wrapper, resources=resources)
    with pytest.raises(ValueError, match="query_budget"):
        build_attack("deepwordbug", keyword_wrapper, resources=resources, query_budget=0)


def test_resources_from_args_reads_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NLTK_DATA", "/n")
    monkeypatch.setenv("ROBUSTNESS_LEXICONS", "/l")
    r = Resources.from_args(lexicons_dir=tmp_path, mlm=None)
    assert (r.nltk_data, r.lexicons_dir, r.mlm) == ("/n", str(tmp_path), None)
    with pytest.raises(ValueError, match="unknown resource fields: bogus"):
        Resources.from_args(bogus=1)


@needs_shared
@pytest.mark.parametrize("name", ["deepwordbug", "pwws"])
def test_attack_succeeds_on_keyword_model(name: str, resources: Resources, keyword_wrapper: object) -> None:
    textattack = recipes.import_textattack()
    attack = build_attack(name, keyword_wrapper, resources=resources, query_budget=200)
    result = attack.attack("a good movie", 1)
    assert isinstance(result, textattack.attack_results.SuccessfulAttackResult), result
    perturbed = result.perturbed_result.attacked_text.text
    assert "good" not in perturbed.lower().split() and perturbed.endswith("movie")


@pytest.fixture(scope="module")
def mlm_dirs(tmp_path_factory: pytest.TempPathFactory, tiny_bert_config: object) -> tuple[Path, Path]:
    """A tiny BERT saved with its masked-LM head, and the same backbone saved without one (as MiniLM ships)."""
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config)
    with_head, without = tmp_path_factory.mktemp("mlm"), tmp_path_factory.mktemp("no_mlm_head")
    model.save_pretrained(with_head)
    model.bert.save_pretrained(without)
    return with_head, without


def test_mlm_without_trained_head_is_refused(mlm_dirs: tuple[Path, Path], keyword_wrapper: object,
                                             resources: Resources) -> None:
    from robustness.resources.mlm import mlm_head_problem

    with_head, without = mlm_dirs
    assert mlm_head_problem(with_head) is None
    problem = mlm_head_problem(without)
    assert problem is not None and "no trained masked-LM head" in problem and "\n" not in problem
    assert "no config.json" in mlm_head_problem(with_head.parent)
    with pytest.raises(ValueError, match="recipe 'bae': .* has no trained masked-LM head"):
        build_attack("bae", keyword_wrapper, resources=resources, mlm=str(without))


def test_build_attack_prints_nothing(keyword_wrapper: object, resources: Resources,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    build_attack("deepwordbug", keyword_wrapper, resources=resources)
    assert capfd.readouterr() == ("", "")


def test_stock_offline_fails_in_one_line_naming_the_download(
    keyword_wrapper: object, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("offline")

    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # no DNS: the first connection is refused
    with pytest.raises(ValueError) as info:
        build_attack("textfooler", keyword_wrapper, resources=resources, stock=True)
    message = str(info.value)
    assert "\n" not in message and "word_embeddings/paragramcf" in message and "--stock textfooler" in message


def test_maximizing_recipes_are_not_offered() -> None:
    # input-reduction's goal maximises (MaximizedAttackResult), which the record schema has no outcome for: it is
    # not in the registry, so neither `ls recipes` nor `doctor` lists it and `attack` refuses it in one line
    assert "input-reduction" not in RECIPES
    with pytest.raises(ValueError, match="unknown recipe 'input-reduction'"):
        build_attack("input-reduction", object())


@needs_shared
def test_recipe_availability_with_shared_resources() -> None:
    got = {r.name: r for r in recipe_availability(SHARED / "nltk_data", SHARED / "lexicons")}
    assert got["deepwordbug"].runnable and got["textfooler"].runnable and got["pso"].runnable
    assert not got["bae"].runnable and "mlm" in got["bae"].reason
    assert not got["bert-attack"].runnable
