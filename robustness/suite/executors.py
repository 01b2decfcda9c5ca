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
* ``ray``: Ray actors (:mod:`robustness.suite.ray_engine`), one per CPU, each running tasks one after another.
* GPUs (:mod:`robustness.suite.gpus`): the local pool spawns one worker per visible GPU, each seeing only its
  own; Ray actors request ``num_gpus``. Without a GPU nothing above changes.

With several workers, :class:`~robustness.suite.dispatch.TaskQueue` picks each worker's next task: the
largest first (a short tail), preferring the group the worker has prepared.

Progress: one bar over examples (runs x examples) for the whole suite, with its ETA, and each worker's
current task in the bar's status line. Each example's event carries its record, which the driver appends to the
run's salvage file before the bar counts it (:meth:`Driver.event`): a stop, even a SIGKILL of every process,
loses at most the example each worker was attacking (with Ray, also those of the worker's last unsent batch of
events, at most ``_RayWorker.FLUSH_S`` seconds of work).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue as queue_module
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from robustness.schema.specs import RunSpec
from robustness.suite import work
from robustness.suite.dispatch import Outcome, TaskQueue
from robustness.suite.plan import Task
from robustness.suite.progress import Listener, Listeners, Progress
from robustness.suite.ray_engine import RayPool, own_ray_pool, run_on_ray

__all__ = ["ENGINES", "Driver", "Progress", "RayPool", "default_workers", "execute"]

ENGINES = ("local", "ray")


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Driver:
    """Writes what workers return and completes runs."""

    def __init__(self, specs: Sequence[RunSpec], runs_dir: Path, done: dict[str, set[int]],
                 command: str | None) -> None:
        self.specs = {s.run_id: s for s in specs}
        self.runs_dir, self.done, self.command = runs_dir, done, command
        self.completed: list[str] = []
        self._salvage: dict[str, Path] = {}  # run id -> this process's salvage file, its torn tail cut

    def event(self, worker: str, event: str, value: Any) -> None:
        """A worker's progress event: an example's record (``("examples", example)``) is appended at once to the
        run's salvage file (:func:`robustness.suite.shards.append_salvage`), so that a stop before its task
        ends does not lose it. It does not count towards completing the run here: the run completes when its
        task's shard arrives (charged its set-up; two tasks of a run may end in either order). A later bench
        counts it as done (:func:`robustness.suite.shards.done_ids`)."""
        if event != "examples":
            return
        from robustness.schema.records import truncate_torn_tail
        from robustness.suite.shards import append_salvage, salvage_path

        run_id = value["run_id"]
        if run_id not in self._salvage:
            self._salvage[run_id] = salvage_path(self.runs_dir / run_id)
            truncate_torn_tail(self._salvage[run_id])  # an earlier process of this id (pid reuse) stopped mid-line
        append_salvage(self._salvage[run_id], value, worker)

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
def _in_process(tasks: Sequence[Task], resources: Any, progress: Listener) -> Iterator[Outcome]:
    work.init_worker(resources)
    name = work.worker_name()
    for task in tasks:
        yield task, work.run_task(task, resources, lambda event, value: progress.event(name, event, value))


_EVENTS: Any = None  # a worker process's queue to the driver
START_METHOD = "fork" if sys.platform == "linux" else "spawn"  # how local workers start


def _pool_init(events: Any, resources: Any, gpus: Any = None, threads: int = 1) -> None:
    """A worker's start. ``gpus``: a queue of ``CUDA_VISIBLE_DEVICES`` values, one per worker (GPU workers,
    spawned): this worker takes one before anything touches CUDA, and runs every task on it (``cuda:0``)."""
    import signal

    global _EVENTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it terminates the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a fork inherits the driver's handler; terminate() must kill
    _EVENTS = events
    if gpus is None:
        work.init_worker(resources)
        return
    from robustness.suite.gpus import WORKER_DEVICE

    os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()
    work.init_worker(resources, threads=threads, device=WORKER_DEVICE)


def _pool_task(index: int, task: Task, resources: Any) -> None:
    """Run ``task``; its results go to the driver through the event queue, behind the task's progress events,
    so that the driver hears of the end at once and hands this worker its next task."""
    name = work.worker_name()
    results = work.run_task(task, resources, lambda event, value: _EVENTS.put((name, event, value)))
    _EVENTS.put((name, "results", (index, results)))


def _drain(events: Any, progress: Listener, wait_s: float) -> list[tuple[int, list[dict[str, Any]]]]:
    """Hand queued progress events to ``progress`` (waiting up to ``wait_s`` for the first; each example's
    record among them is salvaged by the driver as it is handed on); returns the ``(task index, results)`` of the
    tasks that ended."""
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


def _local_pool(tasks: Sequence[Task], resources: Any, progress: Listener, workers: int,
                gpus: Sequence[str] | None = None) -> Iterator[Outcome]:
    """Tasks go out one per idle worker (:class:`~robustness.suite.dispatch.TaskQueue`): the next task is
    chosen when a worker ends one, for that worker, which is the only idle one. ``gpus``: one spawned worker
    per entry (its ``CUDA_VISIBLE_DEVICES``), ``workers`` ignored."""
    context = multiprocessing.get_context("spawn" if gpus else START_METHOD)
    if not gpus and START_METHOD == "fork":
        work.preload(resources)
    events = context.Queue()
    initargs: tuple[Any, ...] = (events, resources)
    if gpus:
        workers, slots = len(gpus), context.Queue()
        for gpu in gpus:
            slots.put(gpu)
        initargs = (events, resources, slots, max(1, default_workers() // workers))
    pool = context.Pool(workers, initializer=_pool_init, initargs=initargs)
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


def execute(tasks: Sequence[Task], driver: Driver, resources: Any, *, workers: int = 1, engine: str = "local",
            address: str | None = None, progress: bool = True, pool: RayPool | None = None,
            gpus: Sequence[str] | None = None, gpus_per_task: float = 0.0) -> None:
    """Run ``tasks`` on ``engine`` and let ``driver`` write every result as it arrives. With ``engine="ray"``
    the tasks go to ``pool`` if given (the caller closes it), else to a pool made and closed here (its workers
    requesting ``gpus_per_task`` GPUs). ``gpus`` (local engine, :func:`robustness.suite.gpus.gpu_slots`): one
    worker per entry, on that GPU; None: ``workers`` CPU workers, as before."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if address and engine != "ray":
        raise ValueError("--address is for --engine ray")
    tasks = [t for t in tasks if t.size]
    bar = Progress(sum(t.size for t in tasks), progress)
    heard = Listeners(driver, bar)  # every worker event: the driver salvages records first, then the bar counts
    runners: dict[str, Callable[[], Iterator[Outcome]]] = {
        "ray": lambda: (run_on_ray(tasks, pool, heard) if pool is not None
                        else own_ray_pool(tasks, resources, heard, workers, address, gpus_per_task)),
        "local": lambda: (_in_process(tasks, resources, heard) if (len(gpus) if gpus else workers) == 1
                          or len(tasks) <= 1
                          else _local_pool(tasks, resources, heard, min(workers, len(tasks)),
                                           list(gpus)[:len(tasks)] if gpus else None)),
    }
    try:
        if tasks:
            with contextlib.closing(runners[engine]()) as outcomes:  # an error here stops the engine at once
                for _task, results in outcomes:
                    driver.accept(results)
    finally:
        bar.close()
