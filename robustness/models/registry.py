"""Register the PABEE model with transformers' auto classes, so that ``AutoConfig``, ``AutoModel`` and
``AutoModelForSequenceClassification`` load a saved model directory (no ``trust_remote_code``). Called when
:mod:`robustness` is imported; idempotent."""

from __future__ import annotations


def register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    from robustness.models.config import PabeeConfig
    from robustness.models.pabee import PabeeModel

    AutoConfig.register(PabeeConfig.model_type, PabeeConfig, exist_ok=True)
    AutoModel.register(PabeeConfig, PabeeModel, exist_ok=True)
    AutoModelForSequenceClassification.register(PabeeConfig, PabeeModel, exist_ok=True)
