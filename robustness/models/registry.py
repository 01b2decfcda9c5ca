"""Register the PABEE model with transformers' auto classes, so that ``AutoConfig``, ``AutoModel`` and
``AutoModelForSequenceClassification`` load a saved model directory (no ``trust_remote_code``).

:func:`register_on_import` (called when :mod:`robustness` is imported) registers at once if transformers is
already imported, else right after it is, through post-import hooks (:func:`wrapt.register_post_import_hook`),
so that ``import robustness`` imports neither torch nor transformers. Registration needs the classes: when
transformers is first imported by one of the modules that define them, that module is still half-imported when
transformers' hook runs, so the hook waits and the module's own hook registers once it is complete."""

from __future__ import annotations

import sys

#: module -> the class it defines that registration needs
_DEFINING = {"robustness.models.config": "PabeeConfig", "robustness.models.pabee": "PabeeModel"}


def register_auto_classes() -> None:
    """Register now (imports torch and transformers); idempotent."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from robustness.models.config import PabeeConfig
    from robustness.models.pabee import PabeeModel

    AutoConfig.register(PabeeConfig.model_type, PabeeConfig, exist_ok=True)
    AutoModel.register(PabeeConfig, PabeeModel, exist_ok=True)
    AutoModelForSequenceClassification.register(PabeeConfig, PabeeModel, exist_ok=True)


def _half_imported() -> bool:
    """Whether a module defining a registered class is in the middle of its import (in ``sys.modules``
    without its class yet)."""
    return any(name in sys.modules and not hasattr(sys.modules[name], cls) for name, cls in _DEFINING.items())


def _on_import(module: object) -> None:
    if "transformers" in sys.modules and not _half_imported():
        register_auto_classes()


def register_on_import() -> None:
    """Register as soon as transformers is imported (at once if it is)."""
    import wrapt

    for name in ("transformers", *_DEFINING):
        wrapt.register_post_import_hook(_on_import, name)
