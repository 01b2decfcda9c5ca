"""robustness: how robust are early-exit (PABEE) language models under adversarial attack.

Importing the package registers the PABEE model with transformers' ``AutoConfig``, ``AutoModel`` and
``AutoModelForSequenceClassification`` (:mod:`robustness.models.registry`); it imports torch and transformers,
nothing heavier (no TextAttack, datasets, pandas or matplotlib).
"""

from __future__ import annotations

from robustness.models.registry import register_auto_classes

__version__ = "0.1.0"

register_auto_classes()
