"""robustness: how robust are early-exit (PABEE) language models under adversarial attack.

Importing the package makes the PABEE model known to transformers' ``AutoConfig``, ``AutoModel`` and
``AutoModelForSequenceClassification`` (:mod:`robustness.models.registry`): at once if transformers is already
imported, else as soon as it is. The import itself stays light (no torch, transformers, TextAttack, datasets,
pandas or matplotlib), so the command line starts at once and imports what a command needs.
"""

from __future__ import annotations

from robustness.models.registry import register_on_import

__version__ = "0.1.0"

register_on_import()
