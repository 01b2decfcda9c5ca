"""The one place that imports TextAttack 0.3.11, and its offline workarounds.

Facts checked in ``textattack/shared/utils/install.py`` (0.3.11):

* ``import textattack`` runs ``_post_install_if_needed()``: unless ``<TA_CACHE_DIR>/post_install_check_3``
  exists it calls ``nltk.download`` six times (averaged_perceptron_tagger, stopwords, omw, universal_tagset,
  wordnet, punkt), then writes that marker file.
* If ``TA_CACHE_DIR`` is set, ``set_cache_dir`` overwrites ``HF_HOME``, ``XDG_CACHE_HOME``,
  ``TFHUB_CACHE_DIR`` and ``PYTORCH_TRANSFORMERS_CACHE`` with it.
* ``WordSwapWordNet.__init__`` calls ``nltk.download("omw-1.4")`` on every build.
* NLTK 3.10's ``WordNetCorpusReader.__init__`` builds ``map30`` (WordNet 3.0 -> loaded version offsets), which
  only the Open Multilingual WordNet loader reads (other languages than English): 1.5 s of a 3.4 s load here.
  :func:`defer_wordnet_map30` builds it on first use instead.
* ``WordSwapHomoglyphSwap.__init__`` reads ``textattack/shared/intentional_homoglyphs.txt``, which the 0.3.11
  wheel does not ship (FileNotFoundError). The file is only used by the differential-evolution path
  (``homos_intentional``); TextBugger's word swaps use the ``homos`` table defined in code.

Use :func:`import_textattack` instead of ``import textattack``; the TextAttack subclasses below
(:class:`HomoglyphSwap`, :class:`OfflineWordSwapWordNet`) are created on first attribute access, after the
import, so that importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

_CACHE_ENV_VARS = ("HF_HOME", "XDG_CACHE_HOME", "TFHUB_CACHE_DIR", "PYTORCH_TRANSFORMERS_CACHE")
_TRUE = {"1", "true", "yes", "on"}

# Unicode intentional homoglyphs (Unicode Security Mechanisms, UTS #39, intentional.txt version 16.0.0,
# © Unicode, Inc., https://www.unicode.org/terms_of_use.html), as shipped in TextAttack's git repository
# (textattack/shared/intentional_homoglyphs.txt) but missing from the 0.3.11 wheel. Pairs of code points
# "source:target"; a source may have several targets.
_INTENTIONAL_HOMOGLYPHS = (
    "0021:01C3 0041:0391 0042:0392 0043:0421 0045:0395 0048:0397 0049:0399 004A:0408 004B:039A 004D:039C "
    "004E:039D 004F:039F 0050:03A1 0053:0405 0054:03A4 0058:03A7 0059:03A5 005A:0396 0061:0430 0063:0441 "
    "0064:0501 0065:0435 0068:04BB 0069:0456 006A:03F3 006F:03BF 0070:0440 0073:0455 0078:0445 0079:0443 "
    "00C6:04D4 00D0:0110 00E6:04D5 0138:043A 0182:0411 018F:04D8 019F:04E8 01A9:03A3 01DD:0259 0245:039B "
    "0259:04D9 025B:03B5 0269:03B9 026A:04CF 0275:04E9 0292:04E1 0299:0432 029C:043D 0393:0413 03A0:041F "
    "03B1:237A 03B9:2373 03C1:2374 03C9:2375 0433:1D26 043B:1D2B 043F:1D28 101D:1040 17A2:17A3 1835:1855 "
    "199E:19D0 19B1:19D1 1A45:1A80 1A45:1A90 1B0D:1B52 1B11:1B53 1B28:1B58 1B50:1B5C 1D0D:043C 1D18:1D29 "
    "1D1B:0442 2C67:04A2 2C69:049A A9D0:A9C6 10382:103D1 10393:103D3 1039A:12038 10486:104A0"
)


def intentional_homoglyphs() -> dict[str, list[str]]:
    """Character → visually identical replacements (the table ``WordSwapHomoglyphSwap`` reads from file)."""
    table: dict[str, list[str]] = {}
    for pair in _INTENTIONAL_HOMOGLYPHS.split():
        source, target = (chr(int(code, 16)) for code in pair.split(":"))
        table.setdefault(source, []).append(target)
    return table


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else env ``ROBUSTNESS_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``."""
    if offline is not None:
        return bool(offline)
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("ROBUSTNESS_OFFLINE", "HF_HUB_OFFLINE"))


def configure_nltk(nltk_data: str | os.PathLike[str] | None = None) -> str | None:
    """Put ``nltk_data`` (else env ``NLTK_DATA``) first on ``nltk.data.path`` and in env ``NLTK_DATA``."""
    path = os.fspath(nltk_data) if nltk_data is not None else os.environ.get("NLTK_DATA")
    if not path:
        return None
    if not os.path.isdir(path):
        raise ValueError(f"NLTK data dir {path} does not exist")
    import nltk

    os.environ["NLTK_DATA"] = path
    if path in nltk.data.path:
        nltk.data.path.remove(path)
    nltk.data.path.insert(0, path)
    return path


@contextlib.contextmanager
def no_nltk_download() -> Iterator[None]:
    """Workaround: make ``nltk.download`` a no-op returning False inside the block, restored afterwards.

    TextAttack calls ``nltk.download`` on first import and in ``WordSwapWordNet()``; offline this either
    fails after a network timeout or hangs. The data must come from a local NLTK_DATA dir instead.
    """
    import nltk

    original = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        yield
    finally:
        nltk.download = original


@contextlib.contextmanager
def quiet_textattack() -> Iterator[None]:
    """TextAttack's logger (``textattack.shared.utils.install``, level INFO, its own stderr handler) at ERROR
    inside the block, so that library calls print nothing: building an ``Attack`` logs "Unknown if model ...
    compatible" warnings, stock recipes log their downloads."""
    logger = logging.getLogger("textattack.shared.utils.install")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_DEFERRED = object()


def _deferred_map30_reader() -> type:
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class DeferredMap30WordNetReader(WordNetCorpusReader):
        """NLTK's WordNet reader, with ``map30`` built when first read rather than at load (same value)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._deferring = True
            try:
                super().__init__(*args, **kwargs)
            finally:
                self._deferring = False

        def map_wn(self, version: str = "wordnet") -> Any:
            return _DEFERRED if self._deferring else super().map_wn(version)

        @property
        def map30(self) -> Any:
            if self.__dict__.get("_map30", _DEFERRED) is _DEFERRED:
                self.__dict__["_map30"] = super().map_wn()
            return self.__dict__["_map30"]

        @map30.setter
        def map30(self, value: Any) -> None:
            self.__dict__["_map30"] = value

    return DeferredMap30WordNetReader


def defer_wordnet_map30() -> bool:
    """Make ``nltk.corpus.wordnet`` (not loaded yet) load with :class:`DeferredMap30WordNetReader`; True if it
    will. The loader object stays the same, so modules that imported it already (TextAttack's WordNet swap)
    get the faster reader too. Nothing changes once WordNet is loaded, or if NLTK's lazy loader changes."""
    import nltk.corpus
    from nltk.corpus.util import LazyCorpusLoader

    loader = nltk.corpus.wordnet
    if type(loader) is not LazyCorpusLoader or not hasattr(loader, "_LazyCorpusLoader__reader_cls"):
        return False
    if loader._LazyCorpusLoader__reader_cls.__name__ != "DeferredMap30WordNetReader":
        loader._LazyCorpusLoader__reader_cls = _deferred_map30_reader()
    return True


def import_textattack(nltk_data: str | os.PathLike[str] | None = None, offline: bool | None = None) -> ModuleType:
    """Import ``textattack`` safely (idempotent) and return the module.

    * NLTK: ``nltk_data`` (else env ``NLTK_DATA``) goes first on ``nltk.data.path``.
    * Caches: if the user has no ``TA_CACHE_DIR`` it is set, for the import only, to TextAttack's own default
      (``~/.cache/textattack``, so stock recipes share earlier downloads). Importing TextAttack must not move
      the user's Hugging Face cache, so ``HF_HOME``/``XDG_CACHE_HOME``/``TFHUB_CACHE_DIR``/
      ``PYTORCH_TRANSFORMERS_CACHE`` (and ``TA_CACHE_DIR``) are restored after the import, and
      huggingface_hub/transformers/datasets/matplotlib are imported first so their cache paths come from
      the user's environment.
    * Offline (``offline`` or env ``ROBUSTNESS_OFFLINE=1``/``HF_HUB_OFFLINE=1``): ``nltk.download`` is a
      no-op during the import, so no network is tried.
    """
    configure_nltk(nltk_data)
    defer_wordnet_map30()
    if "textattack" in sys.modules and hasattr(sys.modules["textattack"], "Attack"):
        return sys.modules["textattack"]
    saved = {name: os.environ.get(name) for name in (*_CACHE_ENV_VARS, "TA_CACHE_DIR")}
    os.environ.setdefault("TA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "textattack"))
    for name in ("huggingface_hub", "transformers", "datasets", "matplotlib"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    guard = no_nltk_download() if is_offline(offline) else contextlib.nullcontext()
    try:
        with guard:
            module = importlib.import_module("textattack")
    except LookupError as err:  # nltk resource missing (stopwords are read at import); NLTK's text is many lines
        raise ValueError("TextAttack needs NLTK data (stopwords, wordnet, tagger): pass --nltk-data DIR or set "
                         "NLTK_DATA") from err
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return module


def _define_classes() -> dict[str, type]:
    import_textattack()
    from textattack.transformations import WordSwapHomoglyphSwap, WordSwapWordNet

    class HomoglyphSwap(WordSwapHomoglyphSwap):
        """``WordSwapHomoglyphSwap`` that works without ``intentional_homoglyphs.txt``.

        Workaround: the 0.3.11 wheel lacks that file, so the stock ``__init__`` raises FileNotFoundError
        *after* it has set ``homos`` and ``random_one``; we catch it and supply the table from
        :func:`intentional_homoglyphs`. Behaviour is otherwise the stock class's.
        """

        def __init__(self, random_one: bool = False, **kwargs: Any) -> None:
            try:
                super().__init__(random_one=random_one, **kwargs)
            except FileNotFoundError:
                if not hasattr(self, "homos") or not hasattr(self, "random_one"):
                    raise
            self.homos_intentional = intentional_homoglyphs()

    class OfflineWordSwapWordNet(WordSwapWordNet):
        """``WordSwapWordNet`` whose build does not call the network when offline.

        Workaround: the stock ``__init__`` runs ``nltk.download("omw-1.4")`` every time; offline it is
        a no-op (English WordNet comes from NLTK_DATA; omw-1.4 is only needed for other languages).
        """

        def __init__(self, language: str = "eng", offline: bool | None = None) -> None:
            guard = no_nltk_download() if is_offline(offline) else contextlib.nullcontext()
            with guard:
                super().__init__(language=language)

    classes: dict[str, type] = {"HomoglyphSwap": HomoglyphSwap, "OfflineWordSwapWordNet": OfflineWordSwapWordNet}
    for name, cls in classes.items():
        cls.__module__, cls.__qualname__ = __name__, name  # picklable as robustness.resources.textattack_compat.<name>
        globals()[name] = cls
    return classes


def __getattr__(name: str) -> Any:  # PEP 562: TextAttack subclasses are created on first use
    if name in ("HomoglyphSwap", "OfflineWordSwapWordNet"):
        return _define_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
