"""Frozen specs for suites, models and attack runs: TOML in (``tomllib``), JSON out.

A suite (``attacks/<name>.toml``) expands into :class:`ModelSpec` s (train or load) and
:class:`RunSpec` s (one attack run each). A run's id is a readable slug plus a short hash of the
resolved spec, so the same spec always lands in the same directory (no timestamps in paths).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Patience = int | None  # None = full depth

#: Fields that say *where* things are, not *what* is computed: kept out of the run hash.
_LOCATION_FIELDS = ("model_dir", "data_dir")


def parse_patience(value: Any) -> Patience:
    """``"full"``/``None`` -> None, a positive int (or its string) -> int; anything else is a ValueError."""
    if value is None or value == "full":
        return None
    if isinstance(value, bool):
        raise ValueError(f"patience must be a positive integer or 'full', got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"patience must be a positive integer or 'full', got {value!r}") from None
    if number < 1 or str(number) != str(value).strip():
        raise ValueError(f"patience must be a positive integer or 'full', got {value!r}")
    return number


def patience_label(patience: Patience) -> str:
    return "full" if patience is None else str(patience)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class RunSpec:
    """One attack run: one model at one exit setting, one recipe, one dataset sample."""

    model_id: str
    model_dir: str
    recipe: str
    dataset: str
    patience: Patience = None
    split: str = "validation"
    n: int = 100
    seed: int = 0
    query_budget: int | None = None
    batch_size: int = 32
    max_length: int = 128
    stock: bool = False
    data_dir: str | None = None

    def __post_init__(self) -> None:
        parse_patience(self.patience)
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.query_budget is not None and self.query_budget < 1:
            raise ValueError(f"query_budget must be >= 1, got {self.query_budget}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def content_hash(self) -> str:
        content = {k: v for k, v in self.to_dict().items() if k not in _LOCATION_FIELDS}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:6]

    @property
    def run_id(self) -> str:
        """``<model>-p<patience>_<recipe>_<dataset>_<hash>``, e.g. ``pabee-minilm-p3_textfooler_sst2_3f2a1c``."""
        dataset = _slug(self.dataset.split("/")[-1])
        model = f"{_slug(self.model_id)}-p{patience_label(self.patience)}"
        return f"{model}_{_slug(self.recipe)}_{dataset}_{self.content_hash()}"


@dataclass(frozen=True)
class ModelSpec:
    """A model of a suite: an existing directory (``path``) or a training recipe (``train``)."""

    id: str
    head: str = "pabee"
    path: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    patience: tuple[Patience, ...] = ()


def _setting_label(value: Any) -> str:
    """Canonical label of a setting given as a patience (``3``, ``"3"``, ``"full"``) or a label
    (``"patience:3"``)."""
    text = str(value).strip()
    if ":" in text and not text.startswith("patience:"):
        return text  # another exit policy's label
    patience = parse_patience(text.removeprefix("patience:"))
    return "full" if patience is None else f"patience:{patience}"


@dataclass(frozen=True)
class VerdictOptions:
    """How a suite's verdict is reached (``[verdict]`` in the suite): non-inferiority ``margin`` on clean accuracy
    (a fraction: 0.01 = 1 point), minimum paired ``min_n``, significance level ``alpha``, and an optional
    pre-registered ``setting`` (``"patience:3"``; a plain integer means patience)."""

    margin: float = 0.01
    min_n: int = 100
    alpha: float = 0.05
    setting: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"verdict margin must be a fraction in [0, 1), got {self.margin}")
        if self.min_n < 1:
            raise ValueError(f"verdict min_n must be >= 1, got {self.min_n}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"verdict alpha must be in (0, 1), got {self.alpha}")
        if self.setting is not None:
            object.__setattr__(self, "setting", _setting_label(self.setting))


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    dataset: str
    models: tuple[ModelSpec, ...]
    recipes: tuple[str, ...]
    split: str = "validation"
    n: int = 100
    seed: int = 0
    query_budget: int | None = None
    batch_size: int = 32
    max_length: int = 128
    data_dir: str | None = None
    nltk_data: str | None = None
    lexicons: str | None = None
    resources: str | None = None  # a resource bundle (robustness.resources.bundle); the fields above override it
    verdict: VerdictOptions = field(default_factory=VerdictOptions)

    def run_specs(self, model_dirs: dict[str, str]) -> list[RunSpec]:
        """Every (model, patience, recipe) run, given where each model lives."""
        runs = []
        for model in self.models:
            for patience in model.patience:
                for recipe in self.recipes:
                    runs.append(
                        RunSpec(
                            model_id=model.id, model_dir=model_dirs[model.id], recipe=recipe,
                            dataset=self.dataset, patience=patience, split=self.split, n=self.n,
                            seed=self.seed, query_budget=self.query_budget, batch_size=self.batch_size,
                            max_length=self.max_length, data_dir=self.data_dir,
                        )
                    )
        return runs


_SUITE_KEYS = ({f.name for f in dataclasses.fields(SuiteSpec)} - {"models", "recipes", "verdict"}
               | {"recipes", "patience"})


#: A model id names a directory (``<out>/models/<id>``), run ids and plot labels: a safe slug.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: [suite] keys that must be integers (``query_budget`` may be absent).
_INT_KEYS = ("n", "seed", "query_budget", "batch_size", "max_length")


def check_id(value: Any, where: str) -> str:
    """``value`` is a safe slug (letters, digits, ``_.-``; no ``..``): ``ValueError`` otherwise."""
    if not isinstance(value, str) or not SAFE_ID.match(value) or ".." in value:
        raise ValueError(f"{where}: model id {value!r} must be 1-64 letters, digits, '_', '.' or '-' "
                         "(starting with a letter or digit, no '..')")
    return value


def _model_spec(raw: dict[str, Any], default_patience: list[Any], where: str) -> ModelSpec:
    unknown = set(raw) - {"id", "head", "path", "train", "patience"}
    if unknown:
        raise ValueError(f"{where}: unknown model keys {sorted(unknown)}")
    if "id" not in raw:
        raise ValueError(f"{where}: every [[models]] entry needs an id")
    check_id(raw["id"], where)
    if not isinstance(raw.get("train", {}), dict) or not isinstance(raw.get("path", ""), str):
        raise ValueError(f"{where}: model {raw['id']!r}: 'train' must be a table and 'path' a string")
    head = raw.get("head", "pabee")
    if head not in ("pabee", "full"):
        raise ValueError(f"{where}: model {raw['id']!r} head must be 'pabee' or 'full', got {head!r}")
    if head == "full":
        patience: tuple[Patience, ...] = (None,)
    else:
        patience = tuple(parse_patience(p) for p in raw.get("patience", default_patience))
    if not patience:
        raise ValueError(f"{where}: model {raw['id']!r} has no patience settings")
    return ModelSpec(id=raw["id"], head=head, path=raw.get("path"), train=dict(raw.get("train", {})), patience=patience)


def load_suite(path: str | Path) -> SuiteSpec:
    """Read and validate a suite TOML; raises ``ValueError`` with the file name on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"suite file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    if not isinstance(raw.get("suite", {}), dict) or not isinstance(raw.get("models", []), list):
        raise ValueError(f"{path}: [suite] must be a table and [[models]] an array of tables")
    suite = dict(raw.get("suite", {}))
    unknown = set(suite) - _SUITE_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown [suite] keys {sorted(unknown)}")
    for key in ("name", "dataset", "recipes"):
        if key not in suite:
            raise ValueError(f"{path}: [suite] needs {key!r}")
    for key in _INT_KEYS:
        if key in suite and (isinstance(suite[key], bool) or not isinstance(suite[key], int)):
            raise ValueError(f"{path}: [suite] {key} must be an integer, got {suite[key]!r}")
    for key in ("name", "dataset", "split", "data_dir", "nltk_data"):
        if key in suite and not isinstance(suite[key], str):
            raise ValueError(f"{path}: [suite] {key} must be a string, got {suite[key]!r}")
    if not isinstance(suite["recipes"], list) or not all(isinstance(r, str) for r in suite["recipes"]) \
            or not suite["recipes"]:
        raise ValueError(f"{path}: [suite] recipes must be a non-empty list of names, got {suite['recipes']!r}")
    default_patience = suite.pop("patience", [1, 2, 3, "full"])
    if not isinstance(default_patience, list):
        raise ValueError(f"{path}: [suite] patience must be a list, got {default_patience!r}")
    if not all(isinstance(m, dict) for m in raw.get("models", [])):
        raise ValueError(f"{path}: [[models]] must be an array of tables")
    models = tuple(_model_spec(m, default_patience, str(path)) for m in raw.get("models", []))
    if not models:
        raise ValueError(f"{path}: no [[models]] declared")
    ids = [m.id for m in models]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate model ids {ids}")
    recipes = tuple(suite.pop("recipes"))
    if len(set(recipes)) != len(recipes):
        raise ValueError(f"{path}: duplicate recipes {list(recipes)}")
    verdict = raw.get("verdict", {})
    if not isinstance(verdict, dict):
        raise ValueError(f"{path}: [verdict] must be a table")
    unknown = set(verdict) - {f.name for f in dataclasses.fields(VerdictOptions)}
    if unknown:
        raise ValueError(f"{path}: unknown [verdict] keys {sorted(unknown)}")
    try:
        options = VerdictOptions(**verdict)
        return SuiteSpec(models=models, recipes=recipes, verdict=options, **suite)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
