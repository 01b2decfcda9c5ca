"""Ray workers send progress events in batches (a put is a round trip to the queue's actor), never lose one,
and flush at the end of each task so the driver has them before it sees the task's result."""

from __future__ import annotations

from typing import Any

from robustness.suite import executors


class FakeQueue:
    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str, Any]]] = []

    def put_nowait_batch(self, items: list[tuple[str, str, Any]]) -> None:
        self.batches.append(list(items))


def _worker(monkeypatch, flush_s: float) -> tuple[Any, FakeQueue]:
    def fake_run_task(task: Any, resources: Any, report: Any) -> list[str]:
        report("task", task)
        for _ in range(3):
            report("examples", 1)
        return [f"result of {task}"]

    monkeypatch.setattr(executors.work, "init_worker", lambda resources: None)
    monkeypatch.setattr(executors.work, "worker_name", lambda: "w")
    monkeypatch.setattr(executors.work, "run_task", fake_run_task)
    monkeypatch.setattr(executors._RayWorker, "FLUSH_S", flush_s)
    events = FakeQueue()
    return executors._RayWorker(None, events), events


def test_events_of_a_fast_task_arrive_in_one_batch_when_it_ends(monkeypatch):
    worker, events = _worker(monkeypatch, flush_s=3600.0)
    assert worker.run("t1") == ["result of t1"]
    assert events.batches == [[("w", "task", "t1")] + [("w", "examples", 1)] * 3]
    worker.run("t2")
    assert len(events.batches) == 2 and events.batches[1][0] == ("w", "task", "t2")


def test_events_are_flushed_once_the_interval_has_passed(monkeypatch):
    worker, events = _worker(monkeypatch, flush_s=0.0)
    worker.run("t1")
    assert events.batches == [[("w", "task", "t1")]] + [[("w", "examples", 1)]] * 3


def test_events_are_flushed_when_the_task_fails(monkeypatch):
    worker, events = _worker(monkeypatch, flush_s=3600.0)

    def failing(task: Any, resources: Any, report: Any) -> None:
        report("task", task)
        raise RuntimeError("boom")

    monkeypatch.setattr(executors.work, "run_task", failing)
    try:
        worker.run("t1")
    except RuntimeError:
        pass
    assert events.batches == [[("w", "task", "t1")]]
