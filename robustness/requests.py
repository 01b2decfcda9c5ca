"""Impossible requests, refused before any work: the one validation path of what a user asks for.

Every entry point that names a count, an exit setting, a goal or a calibration -- the command line, a suite,
a hand-edited ``spec.json``, report options -- checks it here, against the model's facts (layers L and head,
read from its ``config.json`` without loading it: :func:`robustness.models.saved.saved_facts`), so that a new
entry point cannot forget a rule. Each problem is one ``ValueError`` line naming where it came from (a flag,
a file, a suite model), the problem and what to do.

The rules:

* counts: ``--batch-size``, ``--n``, ``--workers``, ``--shard-size``, ... are integers >= 1; ``--timing-repeats``
  >= 0 (:data:`COUNT_FLAGS`, checked for every subcommand by :func:`check_flags`);
* a setting must be one the model can reach: a full-depth baseline only runs ``full``; ``patience:P`` needs
  P < L (P >= L never exits early);
* the slowdown goal needs an early exit to push: not at ``full``, not on a full-depth baseline, and its target
  layer in 2..L (every text already exits at or after layer 1, so a target of 1 skips every example);
* a calibration target (``entropy@patience:2``, ``maxprob@1.86``) is a reachable setting or a layer speed-up
  in [1, L] (exiting at layer 1 is the fastest: speed-up L);
* a pre-registered verdict setting is one that is run;
* a ``spec.json`` has valid fields that still hash to its recorded run id, and agrees with its records.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from typing import Any

from robustness.schema.settings import Setting, check_setting_reachable, parse_setting

__all__ = ["COUNT_FLAGS", "check_calibration_target", "check_count", "check_flags", "check_run_request",
           "check_spec_records", "check_verdict_setting", "read_spec"]

#: argparse destinations that are counts, and their smallest value (an absent flag, None, is not checked).
COUNT_FLAGS = {"batch_size": 1, "max_length": 1, "n": 1, "limit": 1, "eval_limit": 1, "epochs": 1,
               "query_budget": 1, "workers": 1, "shard_size": 1, "min_n": 1, "goal_target": 1,
               "timing_repeats": 0}


def check_count(value: Any, flag: str, minimum: int = 1) -> int:
    """``value`` is an integer >= ``minimum``: ``ValueError`` naming ``flag`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{flag} must be >= {minimum} (an integer), got {value!r}")
    return value


def check_flags(args: argparse.Namespace) -> None:
    """Every count flag of a parsed command line (:data:`COUNT_FLAGS`), and flags that only go together:
    ``--address`` needs ``--engine ray``. Called by the CLI for every subcommand before it does anything."""
    for name, minimum in COUNT_FLAGS.items():
        value = getattr(args, name, None)
        if value is not None:
            check_count(value, f"--{name.replace('_', '-')}", minimum)
    if getattr(args, "address", None) and getattr(args, "engine", "ray") != "ray":
        raise ValueError("--address names a Ray cluster; add --engine ray, or drop --address to run locally")


def check_run_request(setting: Any, *, num_layers: int, head: str, where: str, goal: str = "accuracy",
                      goal_target: int | None = None) -> Setting:
    """``setting`` (any form :func:`parse_setting` reads) and ``goal`` are possible on a model with
    ``num_layers`` layers and ``head`` ("pabee" or "full"); returns the parsed setting. ``where`` names the
    model or its directory in the message."""
    try:
        chosen = parse_setting(setting)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if head == "full" and chosen.policy != "full":
        raise ValueError(f"{where}: model is a full-depth baseline; its setting must be 'full', got {chosen.label!r}")
    check_setting_reachable(chosen, num_layers, where)
    if goal == "slowdown":
        if chosen.policy == "full" or head == "full":
            raise ValueError(f"{where}: the slowdown goal needs an early-exit setting; at {chosen.label} on a {head} "
                             "model every text already exits at the last layer (use the accuracy goal)")
        if goal_target is not None and not 2 <= goal_target <= num_layers:
            raise ValueError(f"{where}: slowdown goal target {goal_target} is outside 2..{num_layers} (the model's "
                             "layers; 1 skips every text); pick a target in that range or leave it out (= L)")
    return chosen


def check_calibration_target(target: str, *, num_layers: int, head: str, where: str, setting: bool | None = None
                             ) -> None:
    """A calibration target is a setting the model can reach or a layer speed-up in [1, L]; only multi-exit
    models have thresholds. ``setting``: True for a setting (``--match-patience``: ``2`` is patience 2), False
    for a speed-up (``--match-speedup``), None to read it as a reference's target does (``entropy@2`` and
    ``entropy@1.86`` are speed-ups, ``entropy@patience:2`` a setting)."""
    if head != "pabee":
        raise ValueError(f"{where}: thresholds are calibrated on a multi-exit (pabee) model, not a {head} one")
    try:
        if setting:
            raise ValueError("a setting")
        speedup = float(target)
    except (TypeError, ValueError):
        if setting is False:
            raise ValueError(f"{where}: a layer speed-up is a number, got {target!r}") from None
        check_run_request(target, num_layers=num_layers, head=head, where=where)
        return
    if not (math.isfinite(speedup) and 1 <= speedup <= num_layers):
        raise ValueError(f"{where}: layer speed-up {target} is impossible on {num_layers} layers; give one in "
                         f"[1, {num_layers}] (L / mean exit layer)")


def check_verdict_setting(setting: str | None, available: Iterable[str], where: str) -> None:
    """A pre-registered verdict setting must be one of the settings that are run (``available``: labels)."""
    if setting is None:
        return
    labels = sorted(set(available), key=lambda label: parse_setting(label).sort_key())
    if parse_setting(setting).label not in labels:
        raise ValueError(f"{where} {setting} is never run; choose one of {', '.join(labels)}")


def read_spec(path: Any, data: dict[str, Any]) -> Any:
    """The :class:`~robustness.suite.specs.RunSpec` of an attack run's ``spec.json`` (``data``, read from ``path``),
    checked: every field valid, and the fields still hash to the ``run_id`` the file records (a hand edit of
    ``n``, the setting, the recipe ... after the run is refused: the records were made by the recorded spec)."""
    import dataclasses

    from robustness.suite.specs import RunSpec

    kinds = {"int": int, "int | None": int, "str": str, "str | None": str, "bool": bool}
    try:
        for field in dataclasses.fields(RunSpec):
            value, kind = data.get(field.name), kinds.get(str(field.type))
            if value is not None and kind is not None and (type(value) is bool) != (kind is bool) \
                    or value is not None and kind is not None and not isinstance(value, kind):
                raise ValueError(f"field {field.name} is {value!r}, not of type {field.type}")
        spec = RunSpec.from_dict(data)
    except (TypeError, ValueError, KeyError) as exc:
        problem = " ".join(str(exc).split())[:90]
        raise ValueError(f"{path}: not a valid run spec ({problem}); restore the file or rerun with --overwrite") \
            from None
    recorded = data.get("run_id")
    if recorded is not None and recorded != spec.run_id:
        raise ValueError(f"{path}: edited after the run (its fields no longer give run id {recorded}); restore the "
                         "file or rerun with --overwrite")
    return spec


def check_spec_records(path: Any, data: dict[str, Any], example_ids: Iterable[int], complete: bool) -> None:
    """The records of a run agree with its ``spec.json`` (``data`` at ``path``): example ids in 0..n-1, and a
    complete run holds exactly ``n`` of them. Attack runs are also checked by :func:`read_spec`."""
    ids = list(example_ids)
    if data.get("kind") != "transfer":
        read_spec(path, data)
    n = data.get("n")
    if n is None:  # a transfer of a source run that recorded no n
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{path}: n must be an integer >= 1, got {n!r}; restore the file")
    outside = [i for i in ids if not 0 <= int(i) < n]
    if outside or (complete and len(ids) != n):
        found = f"example id {outside[0]}" if outside else f"{len(ids)} records"
        raise ValueError(f"{path} says n = {n} but the run holds {found}; restore the file or rerun the run")
