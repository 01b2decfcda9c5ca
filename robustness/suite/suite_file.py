"""Reading a suite file (``attacks/<name>.toml``, ``tomllib``) into a :class:`~robustness.suite.specs.SuiteSpec`:
its keys, defaults and checks. Every problem is a ``ValueError`` that names the file."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from robustness.schema.settings import SELECTED, Setting, calibrated_setting, parse_setting
from robustness.schema.specs import VerdictOptions
from robustness.suite.specs import ModelSpec, SuiteSpec, parse_selector

__all__ = ["SAFE_ID", "check_id", "load_suite"]

_SUITE_KEYS = ({f.name for f in dataclasses.fields(SuiteSpec)} - {"models", "recipes", "verdict"}
               | {"recipes", "patience", "settings"})
_DEFAULT_SETTINGS = ("patience:1", "patience:2", "patience:3", "full")


#: A model id names a directory (``<out>/models/<id>``), run ids and plot labels: a safe slug.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: [suite] keys that must be integers (``query_budget`` may be absent).
_INT_KEYS = ("n", "seed", "query_budget", "batch_size", "max_length", "study_n")


def check_id(value: Any, where: str) -> str:
    """``value`` is a safe slug (letters, digits, ``_.-``; no ``..``): ``ValueError`` otherwise."""
    if not isinstance(value, str) or not SAFE_ID.match(value) or ".." in value:
        raise ValueError(f"{where}: model id {value!r} must be 1-64 letters, digits, '_', '.' or '-' "
                         "(starting with a letter or digit, no '..')")
    return value


def _settings(raw: dict[str, Any], default: tuple[Setting | str, ...], where: str) -> tuple[Setting | str, ...]:
    """``settings = [...]`` or its older form ``patience = [...]`` (both is an error); else ``default``. The
    entry ``"selected"`` (:data:`~robustness.schema.settings.SELECTED`) stays a name: the select rule's choice."""
    if "settings" in raw and "patience" in raw:
        raise ValueError(f"{where}: give either 'settings' or 'patience', not both")
    values = raw.get("settings", raw.get("patience"))
    if values is None:
        return default
    if isinstance(values, str | int) or not isinstance(values, list):
        raise ValueError(f"{where}: 'settings'/'patience' must be a list, got {values!r}")
    try:
        settings = tuple(dict.fromkeys(SELECTED if v == SELECTED else parse_setting(v) for v in values))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return settings


def _candidates(raw: dict[str, Any], where: str) -> tuple[Setting, ...]:
    values = raw.get("candidates", [])
    if not isinstance(values, list):
        raise ValueError(f"{where}: 'candidates' must be a list of settings, got {values!r}")
    try:
        return tuple(dict.fromkeys(parse_setting(v) for v in values))
    except ValueError as exc:
        raise ValueError(f"{where}: candidates: {exc}") from None


def _model_spec(raw: dict[str, Any], default_settings: tuple[Setting | str, ...], where: str) -> ModelSpec:
    unknown = set(raw) - {"id", "head", "path", "train", "patience", "settings", "calibrated", "candidates"}
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
    named: tuple[Setting | str, ...] = (Setting("full"),)
    if head != "full":
        named = _settings(raw, default_settings, f"{where}: model {raw['id']!r}")
    elif SELECTED in raw.get("settings", []) or "candidates" in raw:
        raise ValueError(f"{where}: model {raw['id']!r}: a full-depth model has no '{SELECTED}' setting or "
                         "candidates (PABEE models only)")
    if not named:
        raise ValueError(f"{where}: model {raw['id']!r} has no exit settings")
    calibrated = raw.get("calibrated", [])
    if not isinstance(calibrated, list) or head == "full" and calibrated:
        raise ValueError(f"{where}: model {raw['id']!r} calibrated must be a list (PABEE models only)")
    try:
        calibrated = [calibrated_setting(c) and c for c in calibrated]
    except ValueError as exc:
        raise ValueError(f"{where}: model {raw['id']!r}: {exc}") from None
    candidates = _candidates(raw, f"{where}: model {raw['id']!r}")
    return ModelSpec(id=raw["id"], head=head, path=raw.get("path"), train=dict(raw.get("train", {})),
                     settings=tuple(s for s in named if s != SELECTED), calibrated=tuple(calibrated),
                     selected=SELECTED in named, candidates=candidates)


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
    for key in ("name", "dataset", "split", "selection_split", "data_dir", "nltk_data", "device"):
        if key in suite and not isinstance(suite[key], str):
            raise ValueError(f"{path}: [suite] {key} must be a string, got {suite[key]!r}")
    if not isinstance(suite["recipes"], list) or not all(isinstance(r, str) for r in suite["recipes"]) \
            or not suite["recipes"]:
        raise ValueError(f"{path}: [suite] recipes must be a non-empty list of names, got {suite['recipes']!r}")
    default_settings = _settings(suite, tuple(parse_setting(x) for x in _DEFAULT_SETTINGS), f"{path}: [suite]")
    suite.pop("settings", None)
    suite.pop("patience", None)
    if not all(isinstance(m, dict) for m in raw.get("models", [])):
        raise ValueError(f"{path}: [[models]] must be an array of tables")
    models = tuple(_model_spec(m, default_settings, str(path)) for m in raw.get("models", []))
    if not models:
        raise ValueError(f"{path}: no [[models]] declared")
    ids = [m.id for m in models]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate model ids {ids}")
    from robustness.suite.defended import check_defended

    check_defended(models, str(path))  # adversarial fine-tunings name another model as their init
    recipes = tuple(suite.pop("recipes"))
    if len(set(recipes)) != len(recipes):
        raise ValueError(f"{path}: duplicate recipes {list(recipes)}")
    if "transfers" in suite:
        pairs = suite["transfers"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise ValueError(f"{path}: [suite] transfers must be a list of [source, target] pairs, got {pairs!r}")
        try:
            for pair in pairs:
                for selector in pair:
                    parse_selector(selector, {m.id: m for m in models})
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        suite["transfers"] = tuple(tuple(p) for p in pairs)
    if "triggers" in suite:
        from robustness.suite.triggers import parse_triggers

        suite["triggers"] = parse_triggers(suite["triggers"], {m.id: m for m in models}, str(path))
    if "goals" in suite:
        if not isinstance(suite["goals"], list) or not suite["goals"]:
            raise ValueError(f"{path}: [suite] goals must be a non-empty list, got {suite['goals']!r}")
        suite["goals"] = tuple(dict.fromkeys(suite["goals"]))
    if "slowdown_score" in suite:
        scores = suite["slowdown_score"]
        scores = [scores] if isinstance(scores, str) else scores
        if not isinstance(scores, list) or not scores or not all(isinstance(x, str) for x in scores):
            raise ValueError(f"{path}: [suite] slowdown_score must be a score name or a non-empty list of them "
                             f"(exit, waffle, oavg), got {suite['slowdown_score']!r}")
        suite["slowdown_score"] = tuple(scores)
    verdict = raw.get("verdict", {})
    if not isinstance(verdict, dict):
        raise ValueError(f"{path}: [verdict] must be a table")
    unknown = set(verdict) - {f.name for f in dataclasses.fields(VerdictOptions)}
    if unknown:
        raise ValueError(f"{path}: unknown [verdict] keys {sorted(unknown)}")
    try:
        options = VerdictOptions(**verdict)
        spec = SuiteSpec(models=models, recipes=recipes, verdict=options, **suite)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    waiting = [m.id for m in models if m.awaits_choice]
    if waiting and options.select is None:
        raise ValueError(f"{path}: model {waiting[0]!r} names the '{SELECTED}' setting, which needs a pre-registered "
                         "select rule: add [verdict] select = \"smallest-patience-within-margin\"")
    return spec
