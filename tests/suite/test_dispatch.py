"""The task queue: largest task first, a worker stays on the group it has prepared, two workers start on two
groups; one worker keeps the plan's order."""

from __future__ import annotations

from robustness.suite.dispatch import TaskQueue
from robustness.suite.plan import plan_tasks
from robustness.suite.specs import RunSpec


def _specs(n: int = 6) -> list[RunSpec]:
    return [RunSpec(model_id=m, model_dir=f"/m/{m}", recipe=r, dataset="glue/sst2", setting=p, n=n)
            for r in ("deepwordbug", "pwws")
            for m, ps in (("a", ("patience:1", "full")), ("b", ("full",))) for p in ps]


def _labels(tasks) -> list[str]:
    return [t.label for t in tasks]


def test_one_worker_keeps_the_plan_order_and_skips_finished_tasks():
    specs = _specs()
    tasks = plan_tasks(specs, {s.run_id: {0, 1, 2} for s in specs if s.model_id == "b"}, shard_size=3)
    queue, taken, last = TaskQueue(tasks, 1), [], None
    while (last := queue.take(last)) is not None:
        taken.append(last)
    assert taken == [t for t in tasks if t.size]
    assert "b/pwws[0:3]" not in _labels(taken)


def test_largest_first_then_the_workers_own_group_then_a_group_nobody_runs():
    # sizes: a/* shards 2 settings x 3 = 6, b/* shards 3; plan order a/dwb, b/dwb, a/pwws, b/pwws
    queue = TaskQueue(plan_tasks(_specs(), shard_size=3), 2)
    first, second = queue.take(), queue.take()
    # both largest; the second worker starts on the other group instead of the first one's next shard
    assert (first.label, second.label) == ("a/deepwordbug[0:3]", "a/pwws[0:3]")
    # each worker stays on its group (ties among the largest), although a/deepwordbug[3:6] comes first in plan order
    assert queue.take(after=second).label == "a/pwws[3:6]"
    third = queue.take(after=first)
    assert third.label == "a/deepwordbug[3:6]"
    # the large tasks are gone: the small ones follow, a group nobody runs before one somebody runs
    fourth = queue.take(after=third)
    assert fourth.label == "b/deepwordbug[0:3]"
    assert queue.take(after=[t for t in queue.running if t.label == "a/pwws[3:6]"][0]).label == "b/pwws[0:3]"
    assert queue.take(after=fourth).label == "b/deepwordbug[3:6]"
    assert _labels(queue.pending) == ["b/pwws[3:6]"]


def test_a_larger_task_beats_the_own_group():
    specs = _specs()
    tasks = plan_tasks(specs, {s.run_id: {3} for s in specs if s.recipe == "deepwordbug"}, shard_size=3)
    queue = TaskQueue(tasks, 2)
    first, second = queue.take(), queue.take()
    assert (first.label, second.label) == ("a/deepwordbug[0:3]", "a/pwws[0:3]")
    # a/deepwordbug[3:6] lost an example (size 4): the larger a/pwws[3:6] (6) goes first, own group or not
    assert queue.take(after=first).label == "a/pwws[3:6]"
    assert queue.take(after=second).label == "a/deepwordbug[3:6]"
    assert queue.take().label == "b/deepwordbug[0:3]"  # size 3, as large as b/pwws's, earlier in plan order
    assert sorted(t.size for t in queue.pending) == [2, 3, 3]
