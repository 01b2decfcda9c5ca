"""robustness: how robust are early-exit (PABEE) language models under adversarial attack."""

from __future__ import annotations

__version__ = "0.1.0"
