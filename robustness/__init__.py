"""robustness: how robust are early-exit (PABEE) language models under adversarial attack.

``import robustness as rb`` offers one call per job (:mod:`robustness.api`): ``rb.train``, ``rb.evaluate``,
``rb.attack``, ``rb.transfer``, ``rb.quality``, ``rb.aggregate``, ``rb.report`` and ``rb.bench``, each doing
what the subcommand of the same name does and returning what it writes. They load on first use (a module
``__getattr__``): ``rb.attack``, ``rb.report`` and ``rb.quality`` are the package :mod:`robustness.attack` and
the modules :mod:`robustness.report` and :mod:`robustness.quality` themselves, made callable (calling them calls
:func:`robustness.api.attack`, :func:`robustness.api.report` and :func:`robustness.api.quality`), so that the names
keep meaning the modules too, whichever was imported first.

Importing the package makes the PABEE model known to transformers' ``AutoConfig``, ``AutoModel`` and
``AutoModelForSequenceClassification`` (:mod:`robustness.models.registry`): at once if transformers is already
imported, else as soon as it is. The import itself stays light (no torch, transformers, TextAttack, datasets,
pandas or matplotlib), so the command line starts at once and imports what a command needs.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from robustness.models.registry import register_on_import

__version__ = "0.1.0"

#: The one-call jobs of :mod:`robustness.api`; those that share their name with a module are that module, callable.
JOBS = ("train", "evaluate", "attack", "transfer", "trigger", "quality", "revalidate", "aggregate", "report",
        "bench", "pack")
_MODULE_JOBS = ("attack", "quality", "report", "revalidate")

register_on_import()


class _CallableModule(types.ModuleType):
    """A module whose call is the job of the same name in :mod:`robustness.api`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from robustness import api

        return getattr(api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)

    @property
    def __signature__(self) -> Any:
        import inspect

        from robustness import api

        return inspect.signature(getattr(api, self.__name__.rsplit(".", 1)[1]))


def callable_module(name: str) -> None:
    """Make the module ``name`` (``robustness.attack``, ``.report``, ``.quality``) callable as its job."""
    sys.modules[name].__class__ = _CallableModule


def __getattr__(name: str) -> Any:
    if name in _MODULE_JOBS:
        return importlib.import_module(f"robustness.{name}")
    if name in JOBS:
        from robustness import api

        return getattr(api, name)
    raise AttributeError(f"module 'robustness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *JOBS})
