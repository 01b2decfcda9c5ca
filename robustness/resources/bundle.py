"""One resource bundle: a directory laid out like the project's offline ``shared/`` folder.

```
<bundle>/data/            datasets, one folder per dataset (``data/sst2/validation.parquet``)   -> --data-dir
<bundle>/nltk_data/       NLTK data dir (stopwords, WordNet, tagger)                            -> --nltk-data
<bundle>/lexicons/        counter-fitting lexicons (``lexicons/counter-fitting/*.txt``)         -> --lexicons
<bundle>/models/mlm/      optional: a masked LM with its MLM head (bae, bert-attack)            -> --mlm
<bundle>/models/lm/       optional: a causal LM for the quality stage                           -> --lm
```

The bundle comes from ``--resources DIR``, else a suite's ``resources = "..."``, else env
``ROBUSTNESS_RESOURCES``. Individual settings (flags such as ``--nltk-data``, suite fields such as
``data_dir``) override the bundle's parts; the bundle overrides the individual env vars (``NLTK_DATA``, ...),
which apply only to what neither names. A bundle means offline: nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RESOURCES_ENV = "ROBUSTNESS_RESOURCES"

#: Part name -> path inside the bundle. ``models/*`` parts are optional.
PARTS: dict[str, str] = {
    "data_dir": "data",
    "nltk_data": "nltk_data",
    "lexicons": "lexicons",
    "mlm": "models/mlm",
    "lm": "models/lm",
}
REQUIRED_PARTS = ("data_dir", "nltk_data", "lexicons")


@dataclass(frozen=True)
class ResourceBundle:
    """A resource directory; :meth:`part` is the path of one part when the bundle has it."""

    root: Path

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ResourceBundle:
        root = Path(path).expanduser().absolute()  # workers and tests may change directory
        if not root.is_dir():
            raise ValueError(f"resource bundle {root} is not a directory")
        present = [name for name in PARTS if (root / PARTS[name]).is_dir()]
        if not present:
            raise ValueError(f"resource bundle {root} has none of {', '.join(PARTS.values())}")
        return cls(root)

    def part(self, name: str) -> str | None:
        path = self.root / PARTS[name]
        return os.fspath(path) if path.is_dir() else None

    def missing(self) -> list[str]:
        """The required parts this bundle lacks (as paths inside it)."""
        return [PARTS[name] for name in REQUIRED_PARTS if self.part(name) is None]


def find_bundle(explicit: str | os.PathLike[str] | None = None,
                suite_value: str | os.PathLike[str] | None = None) -> ResourceBundle | None:
    """``explicit`` (``--resources``) > ``suite_value`` (a suite's ``resources``) > env ``ROBUSTNESS_RESOURCES``."""
    for value in (explicit, suite_value, os.environ.get(RESOURCES_ENV) or None):
        if value is not None:
            return ResourceBundle.open(value)
    return None


def fill(values: dict[str, str | None], bundle: ResourceBundle | None) -> dict[str, str | None]:
    """``values`` (part name -> an individually given path or None) with each None taken from the bundle."""
    if bundle is None:
        return dict(values)
    return {name: value if value is not None else bundle.part(name) for name, value in values.items()}
