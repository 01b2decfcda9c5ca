"""The suite-wide progress bar that every engine (:mod:`robustness.suite.executors`,
:mod:`robustness.suite.ray_engine`) feeds with its workers' events: examples done out of runs x examples, with
its ETA, and each worker's current task in the bar's status line."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Listener", "Listeners", "Progress"]


class Listener(Protocol):
    """What hears a worker's events (:data:`robustness.suite.work.Report`, with the worker's name)."""

    def event(self, worker: str, event: str, value: Any) -> None: ...


class Listeners:
    """Hands every event to each listener in turn (the driver, which keeps each example's record, then the bar)."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = listeners

    def event(self, worker: str, event: str, value: Any) -> None:
        for listener in self.listeners:
            listener.event(worker, event, value)


class Progress:
    """The suite-wide bar: examples done / total with ETA; status line ``worker: task`` per worker."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="attacks", unit="ex", disable=not enabled, smoothing=0.05)
        self.tasks: dict[str, str] = {}

    def event(self, worker: str, event: str, value: Any) -> None:
        if event == "examples":  # one example (its value is the example's record, for the driver)
            self.bar.update(1)
        elif event == "task":
            self.tasks[worker] = value
            self.bar.set_postfix_str(" | ".join(f"w{i}: {t}" for i, t in enumerate(self.tasks.values())))

    def close(self) -> None:
        self.bar.close()
