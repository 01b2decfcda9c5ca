"""Run a plan's tasks: in this process, on a local process pool, or as Ray tasks; the driver writes results.

Every engine runs :func:`robustness.suite.work.run_task` on the tasks and hands each task's shard results
back to the driver (this process), which writes them (:mod:`robustness.suite.shards`) and completes a run as
soon as all its examples have records. Workers write nothing: with Ray, only the driver needs the output
directory; the workers need the models, the data and the resources at the same paths as the driver.

* ``local`` (default): ``workers`` processes (one torch thread each), or this process when ``workers == 1``.
  On Linux the workers are forked from the driver once it has imported what they need
  (:func:`robustness.suite.work.preload`), so a worker starts without importing torch, transformers or
  TextAttack again; elsewhere they are spawned. A fork must not use the thread pools the driver may have
  started: :func:`_pool_init` pins one torch thread (OpenMP) and turns off the tokenizers' parallelism
  (Rust threads; TextAttack turns it on at import).
  Ctrl-C terminates every worker; finished tasks are kept, the rest run on the next call.
* ``ray``: one Ray actor per CPU (``num_cpus=1``) runs tasks one after another, keeping its models and
  attacks like a local worker: ``workers`` actors on a local Ray instance with ``workers`` CPUs when no
  address is given, one per CPU of the cluster at ``address`` otherwise (``pip install -e ".[ray]"``).
  Each task is a streaming generator that sends its progress events and then its results to the driver.
  ``robustness bench`` makes the :class:`RayPool` before it prepares the runs, so that the actors' start (a
  fresh process importing torch, transformers and TextAttack) overlaps the driver's work.

With several workers, :class:`~robustness.suite.dispatch.TaskQueue` picks each worker's next task: the
largest first (a short tail), preferring the group the worker has prepared.

Progress: one bar over examples (runs x examples) for the whole suite, with its ETA, and each worker's
current task in the bar's status line.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import queue as queue_module
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from robustness.suite import work
from robustness.suite.dispatch import TaskQueue
from robustness.suite.plan import Task
from robustness.suite.specs import RunSpec

ENGINES = ("local", "ray")
Event = tuple[str, str, Any]  # (worker, event, value), see work.Report
Outcome = tuple[Task, list[dict[str, Any]]]
_RAY_ENV = ("PYTHONPATH", "NLTK_DATA", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Progress:
    """The suite-wide bar: examples done / total with ETA; status line ``worker: task`` per worker."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="attacks", unit="ex", disable=not enabled, smoothing=0.05)
        self.tasks: dict[str, str] = {}

    def event(self, worker: str, event: str, value: Any) -> None:
        if event == "examples":
            self.bar.update(value)
        elif event == "task":
            self.tasks[worker] = value
            self.bar.set_postfix_str(" | ".join(f"w{i}: {t}" for i, t in enumerate(self.tasks.values())))

    def close(self) -> None:
        self.bar.close()


class Driver:
    """Writes what workers return and completes runs."""

    def __init__(self, specs: Sequence[RunSpec], runs_dir: Path, done: dict[str, set[int]],
                 command: str | None) -> None:
        self.specs = {s.run_id: s for s in specs}
        self.runs_dir, self.done, self.command = runs_dir, done, command
        self.completed: list[str] = []

    def accept(self, results: list[dict[str, Any]]) -> None:
        from robustness.suite.shards import write_shard

        for result in results:
            run_id = result["run_id"]
            write_shard(self.runs_dir / run_id, result)
            self.done[run_id].update(r["example_id"] for r in result["records"])
            self._complete(run_id)

    def complete_finished(self) -> None:
        """Complete runs whose examples all have records but whose run.json does not say so yet (their last
        shard came from another part of a job array, or a run was killed while merging)."""
        for run_id in self.specs:
            self._complete(run_id)

    def _complete(self, run_id: str) -> None:
        from robustness.suite.shards import finalize_run

        spec = self.specs[run_id]
        if len(self.done[run_id]) >= spec.n and finalize_run(spec, self.runs_dir / run_id, self.command):
            self.completed.append(run_id)


# --------------------------------------------------------------------------------------------------- engines
def _in_process(tasks: Sequence[Task], resources: Any, progress: Progress) -> Iterator[Outcome]:
    work.init_worker(resources)
    name = work.worker_name()
    for task in tasks:
        yield task, work.run_task(task, resources, lambda event, value: progress.event(name, event, value))


_EVENTS: Any = None  # a worker process's queue to the driver
START_METHOD = "fork" if sys.platform == "linux" else "spawn"  # how local workers start


def _pool_init(events: Any, resources: Any) -> None:
    import signal

    global _EVENTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it terminates the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a fork inherits the driver's handler; terminate() must kill
    _EVENTS = events
    work.init_worker(resources)


def _pool_task(index: int, task: Task, resources: Any) -> None:
    """Run ``task``; its results go to the driver through the event queue, behind the task's progress events,
    so that the driver hears of the end at once and hands this worker its next task."""
    name = work.worker_name()
    results = work.run_task(task, resources, lambda event, value: _EVENTS.put((name, event, value)))
    _EVENTS.put((name, "results", (index, results)))


def _drain(events: Any, progress: Progress, wait_s: float) -> list[tuple[int, list[dict[str, Any]]]]:
    """Hand queued progress events to ``progress`` (waiting up to ``wait_s`` for the first); returns the
    ``(task index, results)`` of the tasks that ended."""
    ended = []
    try:
        item = events.get(timeout=wait_s)
        while True:
            worker, event, value = item
            if event == "results":
                ended.append(value)
            else:
                progress.event(worker, event, value)
            item = events.get_nowait()
    except queue_module.Empty:
        return ended


def _local_pool(tasks: Sequence[Task], resources: Any, progress: Progress, workers: int) -> Iterator[Outcome]:
    """Tasks go out one per idle worker (:class:`~robustness.suite.dispatch.TaskQueue`): the next task is
    chosen when a worker ends one, for that worker, which is the only idle one."""
    context = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "fork":
        work.preload(resources)
    events = context.Queue()
    pool = context.Pool(workers, initializer=_pool_init, initargs=(events, resources))
    queue, running, numbers = TaskQueue(tasks, workers), {}, itertools.count()

    def submit(after: Task | None) -> None:
        task = queue.take(after)
        if task is not None:
            index = next(numbers)
            running[index] = (task, pool.apply_async(_pool_task, (index, task, resources)))

    try:
        for _ in range(workers):
            submit(None)
        while running:
            for index, results in _drain(events, progress, 0.2):
                task, _handle = running.pop(index)
                submit(task)
                yield task, results
            for _task, handle in list(running.values()):
                if handle.ready():
                    handle.get()  # re-raises a worker's exception here (a task that returned sent its results)
        pool.close()
    finally:
        pool.terminate()  # no-op after close() and a clean end; stops every worker on Ctrl-C or an error
        pool.join()


class _RayWorker:
    """A Ray actor: one worker process that runs tasks one after another and keeps its models and prepared
    attacks between them, as a local worker does (a Ray task per task could land on a new process and pay the
    imports and set-up again). :meth:`run` is a streaming generator: it yields ``("events", [event, ...])``,
    the progress events of at most ``FLUSH_S`` seconds, and finally ``("results", shard results)``; each
    yield is an object sent to the driver, so progress needs no queue actor and no polling round trips."""

    FLUSH_S = 0.5

    def __init__(self, resources: Any) -> None:
        work.init_worker(resources)
        self.resources, self.name = resources, work.worker_name()

    def run(self, task: Task) -> Iterator[tuple[str, Any]]:
        pending: list[Event] = []
        flushed = time.monotonic()
        steps = work.task_events(task, self.resources)
        while True:
            try:
                event, value = next(steps)
            except StopIteration as stop:
                if pending:
                    yield "events", pending
                yield "results", stop.value
                return
            except Exception:
                if pending:  # the driver hears what was done before the failure, then the failure
                    yield "events", pending
                raise
            pending.append((self.name, event, value))
            if time.monotonic() - flushed >= self.FLUSH_S:
                yield "events", pending
                pending, flushed = [], time.monotonic()


def _import_ray() -> Any:
    """``import ray`` for a driver, without Ray's C++ failure-signal handler in this process: that handler also
    catches SIGTERM and, racing the command line's own handler, sometimes aborts the process (exit code 134
    instead of 143, seen with Ray 2.60). Ray reads ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER`` when it is imported;
    the variable is set for that import only (unless the user set it), so Ray's workers keep their crash traces."""
    if sys.modules.get("ray") is not None:
        return sys.modules["ray"]
    user = os.environ.get("RAY_DISABLE_FAILURE_SIGNAL_HANDLER")
    if user is None:
        os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
    try:
        import ray
    except ImportError:
        raise ValueError('--engine ray needs Ray: pip install -e ".[ray]"') from None
    finally:
        if user is None:
            del os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"]
    return ray


class _NoThreadSigtermNote(logging.Filter):
    """Drops Ray's note that ``ray.init`` outside the main thread sets no SIGTERM handler: the command line
    handles SIGTERM itself (runs marked interrupted, exit code 143), which Ray's handler would replace."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


class RayPool:
    """Ray and its actors, ``with RayPool(...) as pool``: ``workers`` actors (``num_cpus=1``) on a local instance
    with ``workers`` CPUs, or one per CPU of the cluster at ``address``; never more than ``max_actors``.

    Made before the driver prepares the runs (``robustness bench`` makes it first), the pool starts in a thread
    of its own, so that Ray's start (seconds of waiting for its processes) overlaps the driver's imports and
    its actors' imports (a fresh process importing torch, transformers and TextAttack) overlap the driver's
    preparation. The thread lives until the pool closes: Ray's processes get a parent-death signal, which
    fires when the *thread* that started them ends. :meth:`wait` waits for the actors (re-raising a failed
    start); :meth:`trim` kills those the plan has no task for. Leaving the pool kills the actors and
    disconnects from Ray if the pool connected (which stops a local instance it started; a cluster keeps
    running)."""

    def __init__(self, resources: Any, workers: int, address: str | None = None,
                 max_actors: int | None = None) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.ray, self.actors = _import_ray(), []
        self._error: BaseException | None = None
        self._ready, self._closing = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(resources, workers, address, max_actors),
                                        name="ray-pool", daemon=True)
        self._thread.start()

    def _serve(self, resources: Any, workers: int, address: str | None, max_actors: int | None) -> None:
        ray, started = self.ray, False
        try:
            if not ray.is_initialized():
                # A local instance started here inherits this environment (its worker processes are started,
                # and prestarted, by a raylet forked from this process); a cluster gets the variables that
                # matter through a runtime env, which makes Ray start workers of their own for it.
                options = ({"address": address, "runtime_env": {"env_vars": {
                    k: v for k, v in os.environ.items() if k in _RAY_ENV or k.startswith("ROBUSTNESS_")}}}
                    if address else {"num_cpus": workers})
                started = True
                quiet = _NoThreadSigtermNote()
                logging.getLogger("ray._private.worker").addFilter(quiet)
                try:
                    ray.init(**options, include_dashboard=False, log_to_driver=False)
                finally:
                    logging.getLogger("ray._private.worker").removeFilter(quiet)
            if address:
                workers = int(ray.cluster_resources().get("CPU", workers))
            actor = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
            count = max(1, min(workers, max_actors if max_actors is not None else workers))
            self.actors = [actor.remote(resources) for _ in range(count)]
        except BaseException as exc:  # handed to the driver by wait()
            self._error = exc
        finally:
            self._ready.set()
        self._closing.wait()
        for worker in self.actors:
            ray.kill(worker)
        self.actors = []
        if started and ray.is_initialized():
            ray.shutdown()

    def wait(self) -> list[Any]:
        """The actors, once started (a timeout per wait, so that Ctrl-C gets through)."""
        while not self._ready.wait(timeout=0.5):
            pass
        if self._error is not None:
            raise self._error
        return self.actors

    def trim(self, count: int) -> None:
        """Keep ``max(1, count)`` actors; kill the rest."""
        keep = max(1, count)
        for worker in self.wait()[keep:]:
            self.ray.kill(worker)
        del self.actors[keep:]

    def close(self) -> None:
        self._closing.set()
        self._thread.join()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close()
        if exc_type is None and self._error is not None:  # a failed start the driver never waited for
            raise self._error


def _ray(tasks: Sequence[Task], pool: RayPool, progress: Progress) -> Iterator[Outcome]:
    ray = pool.ray
    pool.trim(len(tasks))
    queue, running = TaskQueue(tasks, len(pool.actors)), {}

    def submit(worker: Any, after: Task | None = None) -> None:
        task = queue.take(after)
        if task is not None:
            running[worker.run.remote(task)] = (worker, task)

    for worker in pool.actors:
        submit(worker)
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)  # a timeout: Ctrl-C gets through
        for stream in ready:
            kind, payload = ray.get(next(stream))  # re-raises a worker's exception here
            if kind == "events":
                for item in payload:
                    progress.event(*item)
                continue
            worker, task = running.pop(stream)
            submit(worker, task)
            yield task, payload


def _own_ray_pool(tasks: Sequence[Task], resources: Any, progress: Progress, workers: int,
                  address: str | None) -> Iterator[Outcome]:
    with RayPool(resources, workers, address, max_actors=len(tasks)) as pool:
        yield from _ray(tasks, pool, progress)


def execute(tasks: Sequence[Task], driver: Driver, resources: Any, *, workers: int = 1, engine: str = "local",
            address: str | None = None, progress: bool = True, pool: RayPool | None = None) -> None:
    """Run ``tasks`` on ``engine`` and let ``driver`` write every result as it arrives. With ``engine="ray"``
    the tasks go to ``pool`` if given (the caller closes it), else to a pool made and closed here."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if address and engine != "ray":
        raise ValueError("--address is for --engine ray")
    tasks = [t for t in tasks if t.size]
    bar = Progress(sum(t.size for t in tasks), progress)
    runners: dict[str, Callable[[], Iterator[Outcome]]] = {
        "ray": lambda: (_ray(tasks, pool, bar) if pool is not None
                        else _own_ray_pool(tasks, resources, bar, workers, address)),
        "local": lambda: (_in_process(tasks, resources, bar) if workers == 1 or len(tasks) <= 1
                          else _local_pool(tasks, resources, bar, min(workers, len(tasks)))),
    }
    try:
        if tasks:
            with contextlib.closing(runners[engine]()) as outcomes:  # an error here stops the engine at once
                for _task, results in outcomes:
                    driver.accept(results)
    finally:
        bar.close()
