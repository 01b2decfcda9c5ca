"""The attack stack: the TextAttack model wrapper, recipes, the runner and the record schema.

Importing :mod:`robustness.attack.wrapper` imports TextAttack (which needs NLTK data); import
:func:`robustness.resources.textattack_compat.import_textattack` with the NLTK dir first."""

from robustness import callable_module

callable_module(__name__)  # ``rb.attack(...)``: this package, called, runs one attack (robustness.api.attack)
