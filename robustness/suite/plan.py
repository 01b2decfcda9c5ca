"""A suite's runs -> tasks: the units of work the executors hand to workers.

A task is one *group* of runs (the same model, recipe and example sample; they differ only in how the model
exits, e.g. its patience) restricted to one *shard* of the examples. Keeping every setting of a model in one
task lets them share the model's layer cache and TextAttack's model-independent work
(:mod:`robustness.attack.shared_caches`); shards keep tasks small enough to balance over workers.

The plan is deterministic: the same runs, shard size and finished work give the same tasks in the same
order, so ``--part i/k`` (tasks i-1, i-1+k, i-1+2k, ... of the plan) slices the grid the same way in every
job of an array. Records do not depend on the plan: every example is seeded from (seed, example id).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from robustness.schema.specs import RunSpec

#: RunSpec fields that say how the model exits or what the attack aims at; runs that differ only in these
#: share a task. (Fields a RunSpec lacks are ignored, so the grouping follows the spec as it grows.)
SWEEP_FIELDS = ("patience", "setting", "goal", "goal_target", "keep_prediction", "slowdown_score")
DEFAULT_SHARD_SIZE = 25
T = TypeVar("T")


@dataclass(frozen=True)
class Task:
    """Examples ``ids`` (example ids of the sample, ascending) of every run in ``specs``; ``todo`` says, per
    run (same order as ``specs``), which of those ids still need a record."""

    specs: tuple[RunSpec, ...]
    ids: tuple[int, ...]
    todo: tuple[tuple[int, ...], ...]

    @property
    def shard(self) -> tuple[int, int]:
        """``(first id, last id + 1)``: the shard's name on disk and in progress messages."""
        return self.ids[0], self.ids[-1] + 1

    @property
    def size(self) -> int:
        """Examples to attack (runs x pending examples): the progress bar's unit."""
        return sum(len(ids) for ids in self.todo)

    @property
    def label(self) -> str:
        spec = self.specs[0]
        return f"{spec.model_id}/{spec.recipe}[{self.shard[0]}:{self.shard[1]}]"


def group_key(spec: RunSpec) -> str:
    """What runs of one task have in common: every spec field except :data:`SWEEP_FIELDS`."""
    content = {k: v for k, v in dataclasses.asdict(spec).items() if k not in SWEEP_FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def attack_order(specs: Sequence[RunSpec]) -> list[int]:
    """The positions of a task's runs in the order each example is attacked: deepest first.

    The runs share one layer cache, and a text's layers are computed once, as deep as the deepest run that
    queries it needs. Run shallow-first, the texts every run queries (the original, the word-importance
    deletions, ...) are encoded a few layers at a time, resumed by every deeper run in small batches; run
    deepest-first, the first run encodes them in one all-layer pass and the others find their exits known.
    So: runs that read every layer (full depth, the slowdown goal) first, then each policy from its strictest
    setting to its most lenient (:meth:`~robustness.schema.settings.Setting.sort_key` reversed). The order
    changes only how fast a task runs, never a record: every run's attack of an example is independent."""
    def key(j: int) -> tuple[bool, tuple[int, float]]:
        spec = specs[j]
        reads_all = spec.goal == "slowdown" or spec.exit_setting.policy == "full"
        return reads_all, spec.exit_setting.sort_key()

    return sorted(range(len(specs)), key=key, reverse=True)


def shards(n: int, shard_size: int) -> list[tuple[int, ...]]:
    """Example ids ``0..n-1`` cut into consecutive shards of at most ``shard_size``."""
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    return [tuple(range(start, min(start + shard_size, n))) for start in range(0, n, shard_size)]


def plan_tasks(specs: Sequence[RunSpec], done: dict[str, set[int]] | None = None,
               shard_size: int = DEFAULT_SHARD_SIZE) -> list[Task]:
    """Every task of ``specs``, with what is not yet in ``done`` (run id -> finished example ids) as its
    ``todo``; finished tasks stay in the plan (``size`` 0) so that a part is the same slice whatever other
    parts have finished.

    Groups keep the order of their first run in ``specs`` (the caller's priority, e.g. recipe-major); within
    a group, runs keep their order and tasks go shard by shard. Shards are cut from the whole sample, not
    from what is left, so a resumed suite has the same shard boundaries as a fresh one."""
    done = done or {}
    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(group_key(spec), []).append(spec)
    tasks = []
    for group in groups.values():
        for ids in shards(group[0].n, shard_size):
            todo = tuple(tuple(i for i in ids if i not in done.get(s.run_id, ())) for s in group)
            tasks.append(Task(specs=tuple(group), ids=ids, todo=todo))
    return tasks


def max_tasks(models: int, recipes: int, n: int, shard_size: int, part: tuple[int, int] | None) -> int:
    """The most tasks ``part`` of a suite's plan can hold, known before its models exist: the suite's runs
    differ only in model, recipe and :data:`SWEEP_FIELDS`, so every (model, recipe) is at most one group, cut
    into the shards of ``n`` examples (fewer when a model has no run)."""
    return len(select_part(range(models * recipes * len(shards(n, shard_size))), part))


def parse_part(text: str) -> tuple[int, int]:
    """``"i/k"`` -> ``(i, k)`` with 1 <= i <= k; anything else is a ValueError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--part must look like i/k with 1 <= i <= k, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def select_part(tasks: Sequence[T], part: tuple[int, int] | None) -> list[T]:
    """Part ``i`` of ``k`` of a plan (every k-th task from the i-th: neighbouring shards go to different
    parts, which balances them); ``None`` is the whole plan."""
    if part is None:
        return list(tasks)
    i, k = part
    return list(tasks[i - 1 :: k])
