"""The plan: groups of settings, shards, deterministic parts that cover the grid exactly once."""

from __future__ import annotations

import pytest

from robustness.suite.plan import attack_order, max_tasks, parse_part, plan_tasks, select_part, shards
from robustness.suite.specs import RunSpec


def _specs(n: int = 5) -> list[RunSpec]:
    return [RunSpec(model_id=m, model_dir=f"/m/{m}", recipe=r, dataset="glue/sst2", setting=p, n=n)
            for r in ("deepwordbug", "pwws")
            for m, ps in (("a", ("patience:1", "patience:2", "full")), ("b", ("full",))) for p in ps]


def test_tasks_group_every_setting_of_a_model_and_cut_shards():
    tasks = plan_tasks(_specs(), shard_size=2)
    assert [t.label for t in tasks] == ["a/deepwordbug[0:2]", "a/deepwordbug[2:4]", "a/deepwordbug[4:5]",
                                        "b/deepwordbug[0:2]", "b/deepwordbug[2:4]", "b/deepwordbug[4:5]",
                                        "a/pwws[0:2]", "a/pwws[2:4]", "a/pwws[4:5]",
                                        "b/pwws[0:2]", "b/pwws[2:4]", "b/pwws[4:5]"]
    assert [s.setting for s in tasks[0].specs] == ["patience:1", "patience:2", "full"]
    assert tasks[0].size == 6 and tasks[2].size == 3
    assert shards(5, 5) == [(0, 1, 2, 3, 4)]
    with pytest.raises(ValueError, match="shard size"):
        shards(5, 0)


def test_slowdown_runs_of_every_score_share_the_task_of_their_model_and_recipe():
    specs = [RunSpec(model_id="a", model_dir="/m/a", recipe="pwws", dataset="glue/sst2", setting="patience:2", n=3,
                     **goal) for goal in ({}, {"goal": "slowdown"}, {"goal": "slowdown", "slowdown_score": "waffle"},
                                          {"goal": "slowdown", "slowdown_score": "oavg"})]
    (task,) = plan_tasks(specs, shard_size=3)
    assert [(s.goal, s.slowdown_score) for s in task.specs] == [("accuracy", "exit"), ("slowdown", "exit"),
                                                                ("slowdown", "waffle"), ("slowdown", "oavg")]


def test_finished_examples_leave_the_todo_but_keep_shard_boundaries():
    specs = _specs()
    done = {specs[0].run_id: {0, 1, 2}, specs[3].run_id: set(range(5))}
    tasks = plan_tasks(specs, done, shard_size=2)
    assert len(tasks) == 12  # finished tasks stay in the plan, so parts do not move
    assert tasks[0].todo == ((), (0, 1), (0, 1)) and tasks[1].todo == ((3,), (2, 3), (2, 3))
    assert [t.size for t in tasks[3:6]] == [0, 0, 0]


def test_parts_are_deterministic_disjoint_and_cover_the_plan():
    tasks = plan_tasks(_specs(), shard_size=2)
    parts = [select_part(tasks, (i, 3)) for i in (1, 2, 3)]
    labels = [t.label for part in parts for t in part]
    assert sorted(labels) == sorted(t.label for t in tasks) and len(set(labels)) == len(labels)
    assert parts[0] == select_part(plan_tasks(list(_specs()), shard_size=2), (1, 3))
    assert parse_part("2/3") == (2, 3) and select_part(tasks, None) == tasks
    for bad in ("0/3", "4/3", "1", "a/b"):
        with pytest.raises(ValueError, match="i/k"):
            parse_part(bad)


@pytest.mark.parametrize("part", [None, (1, 1), (1, 3), (2, 3), (3, 3), (5, 20)])
@pytest.mark.parametrize("shard_size", [1, 2, 5, 25])
def test_max_tasks_is_the_size_of_the_part_of_a_fresh_plan(part, shard_size):
    plan = plan_tasks(_specs(), shard_size=shard_size)
    assert max_tasks(2, 2, 5, shard_size, part) == len(select_part(plan, part))
    # a model without a run (its settings not calibrated yet) makes fewer tasks, never more
    fewer = plan_tasks([s for s in _specs() if s.model_id == "a"], shard_size=shard_size)
    assert len(select_part(fewer, part)) <= max_tasks(2, 2, 5, shard_size, part)


def test_attack_order_is_deepest_first_and_stable():
    def spec(setting, goal="accuracy"):
        return RunSpec(model_id="a", model_dir="/m/a", recipe="deepwordbug", dataset="glue/sst2", setting=setting,
                       goal=goal)

    specs = [spec("patience:1"), spec("patience:3"), spec("full"), spec("entropy:0.5"), spec("entropy:0.1"),
             spec("maxprob:0.8"), spec("maxprob:0.95"), spec("patience:2", "slowdown"), spec("patience:2")]
    order = [specs[j] for j in attack_order(specs)]
    # runs reading every layer first (in plan order), then each policy from strictest to most lenient
    assert [(s.setting, s.goal) for s in order] == [
        ("full", "accuracy"), ("patience:2", "slowdown"), ("maxprob:0.95", "accuracy"),
        ("maxprob:0.8", "accuracy"), ("entropy:0.1", "accuracy"), ("entropy:0.5", "accuracy"),
        ("patience:3", "accuracy"), ("patience:2", "accuracy"), ("patience:1", "accuracy")]
    assert attack_order(specs[:1]) == [0] and attack_order([]) == []
