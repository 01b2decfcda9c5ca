"""Which task a free worker gets next: the scheduling policy every multi-worker engine shares.

A worker keeps the prepared attacks of the last group it ran (:mod:`robustness.suite.work`): models, recipes,
WordNet or embeddings, the layer cache. Switching group costs that set-up again, so a worker that has to
switch pays for it and one that stays does not. The policy:

1. the largest pending task (examples to attack) goes first, so that the tasks left when workers start to
   fall idle are small ones (longest-processing-time-first, which shortens the tail);
2. among the largest, a task of the group the worker just finished (its attacks are ready);
3. then a task of a group no other worker is running (two workers on two groups prepare two groups each
   once, instead of both preparing every group);
4. then plan order.

With one worker the queue keeps the plan's own order (recipe-major, so an interrupted suite leaves whole
recipes). Records do not depend on who runs what (:mod:`robustness.suite.plan`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from robustness.suite.plan import Task, group_key

Event = tuple[str, str, Any]  # (worker, event, value): a worker's progress, see robustness.suite.work.Report
Outcome = tuple[Task, list[dict[str, Any]]]  # a task that ended, with its shard results


class TaskQueue:
    """The pending tasks of a multi-worker run. :meth:`take` hands out the next one; the engine calls it once
    per idle worker at the start (``after=None``) and then, each time a task ends, for the worker that ran
    it (``after=`` that task)."""

    def __init__(self, tasks: Iterable[Task], workers: int) -> None:
        self.pending, self.workers = [t for t in tasks if t.size], workers
        self.running: list[Task] = []
        self._groups: dict[int, str] = {}

    def _group(self, task: Task) -> str:
        if id(task) not in self._groups:
            self._groups[id(task)] = group_key(task.specs[0])
        return self._groups[id(task)]

    def take(self, after: Task | None = None) -> Task | None:
        """The next task for a worker that has just finished ``after`` (None: one that has run nothing yet), or
        None when nothing is pending."""
        if after is not None:
            self.running.remove(after)
        if not self.pending:
            return None
        if self.workers == 1:
            task = self.pending[0]
        else:
            largest = max(t.size for t in self.pending)
            own = self._group(after) if after is not None else None
            busy = {self._group(t) for t in self.running}

            def rank(task: Task) -> tuple[bool, bool]:  # False first: own group, then a group nobody runs
                group = self._group(task)
                return group != own, group in busy

            task = min((t for t in self.pending if t.size == largest), key=rank)  # min keeps plan order on ties
        self.pending.remove(task)
        self.running.append(task)
        return task
