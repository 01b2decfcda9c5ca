"""The suite field ``triggers``: universal slowdown triggers that ``bench`` searches after the attacks.

``triggers = [{model = "pabee", setting = "patience:2", length = 3}]`` -- each entry searches one trigger on
``model`` at ``setting`` (a setting or a calibration reference such as ``entropy@patience:2``) with the suite's
dataset, split, n, seed, batch size and max length (so it is evaluated on the attack runs' sample), and
optional ``length`` (3), ``train_n`` (64), ``train_split`` ("train"), ``candidates`` (50), ``iterations`` (2),
``beam`` (1), ``vocabulary`` ("tokenizer"), ``score`` ("exit"); it is evaluated at ``evaluate_on`` (settings of
the same model; default: every setting of the model) and replayed on ``replay_on`` (``MODEL@SETTING`` or
``MODEL@*`` selectors; default none). Results land in ``<out>/triggers/<run_id>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustness.schema.settings import calibrated_setting, parse_setting
from robustness.schema.triggers import TriggerSpec

__all__ = ["TriggerEntry", "parse_triggers", "trigger_jobs"]

_SEARCH_KEYS = {"length": int, "train_n": int, "candidates": int, "iterations": int, "beam": int,
                "train_split": str, "vocabulary": str, "score": str}


@dataclass(frozen=True)
class TriggerEntry:
    """One entry of the suite's ``triggers`` (see the module docstring)."""

    model: str
    setting: str
    search: tuple[tuple[str, Any], ...] = ()
    evaluate_on: tuple[str, ...] | None = None
    replay_on: tuple[str, ...] = ()


def _check_setting(text: Any, where: str) -> str:
    if not isinstance(text, str | int) or isinstance(text, bool):
        raise ValueError(f"{where}: a setting must be a string such as 'patience:2', got {text!r}")
    text = str(text)
    if "@" in text:
        calibrated_setting(text)
        return text
    return parse_setting(text).label


def parse_triggers(raw: Any, models: dict[str, Any], where: str) -> tuple[TriggerEntry, ...]:
    """The ``triggers`` list of a suite file, checked against its models; ``ValueError`` naming ``where``."""
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ValueError(f"{where}: [suite] triggers must be a list of tables such as "
                         "{model = \"pabee\", setting = \"patience:2\", length = 3}")
    entries = []
    for entry in raw:
        unknown = set(entry) - {"model", "setting", "evaluate_on", "replay_on", *_SEARCH_KEYS}
        if unknown:
            raise ValueError(f"{where}: unknown trigger keys {sorted(unknown)}")
        if entry.get("model") not in models or "setting" not in entry:
            raise ValueError(f"{where}: every trigger needs a model of the suite ({', '.join(models)}) and a setting")
        if models[entry["model"]].head != "pabee":
            raise ValueError(f"{where}: trigger model {entry['model']!r} is a full-depth baseline (no early exit)")
        for key, kind in _SEARCH_KEYS.items():
            if key in entry and (isinstance(entry[key], bool) or not isinstance(entry[key], kind)):
                raise ValueError(f"{where}: trigger {key} must be {kind.__name__}, got {entry[key]!r}")
        lists = {}
        for key in ("evaluate_on", "replay_on"):
            if key in entry and not isinstance(entry[key], list):
                raise ValueError(f"{where}: trigger {key} must be a list, got {entry[key]!r}")
        try:
            setting = _check_setting(entry["setting"], where)
            if "evaluate_on" in entry:
                lists["evaluate_on"] = tuple(_check_setting(s, where) for s in entry["evaluate_on"])
            for selector in entry.get("replay_on", []):
                model, sep, target = str(selector).partition("@")
                if not sep or model not in models or not target:
                    raise ValueError(f"trigger replay_on {selector!r} must be MODEL@SETTING or MODEL@* with a model "
                                     f"of the suite ({', '.join(models)})")
                if target != "*":
                    _check_setting(target, where)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        search = tuple(sorted((k, entry[k]) for k in _SEARCH_KEYS if k in entry))
        entries.append(TriggerEntry(model=entry["model"], setting=setting, search=search,
                                    replay_on=tuple(entry.get("replay_on", [])), **lists))
    return tuple(entries)


def _model_settings(model: Any) -> list[str]:
    return [*(s.label for s in model.settings), *model.calibrated]


#: One trigger job: its spec, the settings of its own model to evaluate at, the replays (model dir, settings).
TriggerJob = tuple[TriggerSpec, list[str], list[tuple[str, list[str]]]]


def trigger_jobs(suite: Any, model_dirs: dict[str, str]) -> list[TriggerJob]:
    """For each trigger of ``suite``: its spec (setting resolved in the model's calibration), the settings to
    evaluate it at on its own model, and the replays ``(model_dir, settings)``."""
    from robustness.attack.trigger import resolve_setting

    models = {m.id: m for m in suite.models}
    jobs = []
    for entry in suite.triggers:
        model_dir = model_dirs[entry.model]
        spec = TriggerSpec(model_id=entry.model, model_dir=model_dir,
                           setting=resolve_setting(entry.setting, model_dir).label, dataset=suite.dataset,
                           split=suite.split, n=suite.n, seed=suite.seed, batch_size=suite.batch_size,
                           max_length=suite.max_length, data_dir=suite.data_dir, **dict(entry.search))
        own = list(entry.evaluate_on) if entry.evaluate_on is not None else _model_settings(models[entry.model])
        replays: dict[str, list[str]] = {}
        for selector in entry.replay_on:
            model, _, target = selector.partition("@")
            settings = _model_settings(models[model]) if target == "*" else [target]
            replays.setdefault(model_dirs[model], []).extend(settings)
        jobs.append((spec, own, list(replays.items())))
    return jobs
