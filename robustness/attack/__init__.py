"""The attack stack: the TextAttack model wrapper, recipes, the runner and the record schema.

Importing :mod:`robustness.attack.wrapper` imports TextAttack (which needs NLTK data); import
:func:`robustness.resources.textattack_compat.import_textattack` with the NLTK dir first."""
