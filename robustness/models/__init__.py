"""PABEE models: exit policies (:mod:`.exits`, no heavy imports), the model (:mod:`.pabee`) and its
layer-by-layer inference (:mod:`.stepping`), its stored config (:mod:`.config`) and the per-architecture
stepping adapters (:mod:`.backbones`). Model names are imported lazily so that ``robustness.models.exits``
does not pull in transformers."""

from __future__ import annotations

from typing import Any

_PABEE_NAMES = (
    "EarlyExitOutput",
    "PabeeConfig",
    "PabeeModel",
    "PabeeOutput",
    "load_model_and_tokenizer",
)

__all__ = list(_PABEE_NAMES)


def __getattr__(name: str) -> Any:
    if name in _PABEE_NAMES:
        from robustness.models import pabee

        return getattr(pabee, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
