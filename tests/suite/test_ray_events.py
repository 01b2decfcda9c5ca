"""A Ray worker streams a task's progress events (an example's carries its record) in batches (each yield is an
object sent to the driver), never loses one, sends the last batch before the task's results, and re-raises a
task's failure after the events it had."""

from __future__ import annotations

from typing import Any

import pytest

from robustness.suite import ray_engine


def _example(i: int) -> dict:
    """What an example's event carries for the driver to salvage (robustness.suite.work.task_events)."""
    return {"run_id": "r1", "record": {"example_id": i}, "cpu_time_s": 0.1, "num_encoded": 2, "device": "cpu"}


def _worker(monkeypatch, flush_s: float, fail: bool = False) -> Any:
    def fake_task_events(task: Any, resources: Any):
        yield "task", task
        if fail:
            raise RuntimeError("boom")
        for i in range(3):
            yield "examples", _example(i)
        return [f"result of {task}"]

    monkeypatch.setattr(ray_engine.work, "init_worker", lambda resources: None)
    monkeypatch.setattr(ray_engine.work, "worker_name", lambda: "w")
    monkeypatch.setattr(ray_engine.work, "task_events", fake_task_events)
    monkeypatch.setattr(ray_engine._RayWorker, "FLUSH_S", flush_s)
    return ray_engine._RayWorker(None)


def test_events_of_a_fast_task_arrive_in_one_batch_before_its_results(monkeypatch):
    worker = _worker(monkeypatch, flush_s=3600.0)
    examples = [("w", "examples", _example(i)) for i in range(3)]
    assert list(worker.run("t1")) == [("events", [("w", "task", "t1")] + examples), ("results", ["result of t1"])]
    assert list(worker.run("t2"))[0][1][0] == ("w", "task", "t2")


def test_events_are_sent_once_the_interval_has_passed(monkeypatch):
    worker = _worker(monkeypatch, flush_s=0.0)
    examples = [("events", [("w", "examples", _example(i))]) for i in range(3)]
    assert list(worker.run("t1")) == [("events", [("w", "task", "t1")]), *examples, ("results", ["result of t1"])]


@pytest.mark.parametrize("flush_s", [0.0, 3600.0])
def test_a_failing_task_raises_after_its_events(monkeypatch, flush_s):
    worker = _worker(monkeypatch, flush_s=flush_s, fail=True)
    stream = worker.run("t1")
    assert next(stream) == ("events", [("w", "task", "t1")])
    with pytest.raises(RuntimeError, match="boom"):
        next(stream)
