"""The Ray engine: one Ray actor per CPU (``num_cpus=1``) runs tasks one after another, keeping its models and
attacks like a local worker: ``workers`` actors on a local Ray instance with ``workers`` CPUs when no address
is given, one per CPU of the cluster at ``address`` otherwise (``pip install -e ".[ray]"``). Each task is a
streaming generator that sends its progress events and then its results to the driver, which alone writes
the output directory. ``robustness bench`` makes the :class:`RayPool` before it prepares the runs, so that
the actors' start (a fresh process importing torch, transformers and TextAttack) overlaps the driver's work;
the driver itself imports none of them for the attacks.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from robustness.suite import work
from robustness.suite.dispatch import Event, Outcome, TaskQueue
from robustness.suite.plan import Task

if TYPE_CHECKING:
    from robustness.suite.progress import Listener

#: the driver's environment variables a cluster's workers get (a local instance inherits the whole environment)
_RAY_ENV = ("PYTHONPATH", "NLTK_DATA", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")


class _RayWorker:
    """A Ray actor: one worker process that runs tasks one after another and keeps its models and prepared
    attacks between them, as a local worker does (a Ray task per task could land on a new process and pay the
    imports and set-up again). :meth:`run` is a streaming generator: it yields ``("events", [event, ...])``,
    the progress events of at most ``FLUSH_S`` seconds, and finally ``("results", shard results)``; each
    yield is an object sent to the driver, so progress needs no queue actor and no polling round trips. An
    example's event carries its record, which the driver salvages on arrival: a stop loses the example being
    attacked and those of the batch not yet sent (at most ``FLUSH_S`` seconds of work)."""

    FLUSH_S = 0.5

    def __init__(self, resources: Any, device: str | None = None) -> None:
        if device is None:  # a CPU worker, as before devices existed
            work.init_worker(resources)
        else:  # the GPU Ray gave this actor (it sees only that one)
            work.init_worker(resources, device=device)
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


#: How long the probe of ``--address`` waits for a TCP connection, and how long the pool waits for Ray to connect
#: to a cluster that answered the probe (Ray itself retries an unreachable address for minutes).
PROBE_TIMEOUT_S, CONNECT_TIMEOUT_S = 5.0, 30.0
#: How long leaving the pool waits for its thread (stuck in ``ray.init``, say) before leaving it to the exit.
CLOSE_TIMEOUT_S = 15.0


def _local_aliases(host: str) -> list[str]:
    """``host`` and, for a loopback name, the node's IP: Ray connects there instead (it rewrites 127.0.0.1)."""
    hosts = [host]
    if host in ("127.0.0.1", "localhost", "::1"):
        try:
            from ray._private.services import get_node_ip_address

            hosts.append(get_node_ip_address())
        except Exception:  # noqa: BLE001 - a private helper of Ray: without it only the given host is probed
            pass
    return hosts


def probe_address(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """``ValueError`` naming ``address`` unless something listens at its host and port (one TCP connection per
    candidate host, each bounded by ``timeout_s``): an unreachable cluster is refused in seconds, where
    ``ray.init`` would retry for minutes. ``auto`` and ``local`` are left to Ray (it finds or starts one)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    problem = "no answer"
    for candidate in _local_aliases(host):
        try:
            with socket.create_connection((candidate, int(port)), timeout=timeout_s) as connection:
                connection.settimeout(timeout_s)
                if _speaks_grpc(connection):
                    return
                problem = "something listens there, but it does not speak gRPC"
        except TimeoutError:
            problem = f"no answer within {timeout_s:g} s"
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
    raise ValueError(f"--address {address}: no Ray cluster answers there ({problem}); start one with `ray start "
                     "--head` or fix the address")


#: An HTTP/2 client's first bytes: the connection preface and an empty SETTINGS frame.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(connection: socket.socket) -> bool:
    """Whether the peer answers an HTTP/2 preface with a SETTINGS frame, as every gRPC server (Ray's GCS, the
    Ray client server behind ``ray://``) does first; a silent or other server does not."""
    connection.sendall(_HTTP2_HELLO)
    header = b""
    while len(header) < 9:
        chunk = connection.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == 4  # the frame type byte: SETTINGS


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
                 max_actors: int | None = None, gpus_per_task: float = 0.0) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        if gpus_per_task < 0:
            raise ValueError(f"--gpus-per-task must be >= 0, got {gpus_per_task}")
        if address:
            probe_address(address)
        self.address = address
        self.ray, self.actors = _import_ray(), []
        self.gpus_per_task = gpus_per_task
        self._error: BaseException | None = None
        self._ready, self._closing = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(resources, workers, address, max_actors),
                                        name="ray-pool", daemon=True)
        self._thread.start()

    def _actors(self, resources: Any, workers: int, max_actors: int | None) -> list[Any]:
        """The actors: ``num_cpus=1`` each, as before devices existed; with ``gpus_per_task`` > 0 each also
        requests that many GPUs (Ray schedules it on a GPU node and sets its ``CUDA_VISIBLE_DEVICES``), and
        there are no more of them than the cluster's GPUs hold."""
        ray = self.ray
        if self.gpus_per_task <= 0:
            actor = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)
            count = max(1, min(workers, max_actors if max_actors is not None else workers))
            return [actor.remote(resources) for _ in range(count)]
        from robustness.suite.gpus import WORKER_DEVICE

        gpus = float(ray.cluster_resources().get("GPU", 0))
        if gpus < self.gpus_per_task:
            raise ValueError(f"--gpus-per-task {self.gpus_per_task:g}: the Ray cluster has {gpus:g} GPUs; "
                             "use --device cpu, or a cluster with GPU nodes")
        actor = ray.remote(num_cpus=1, num_gpus=self.gpus_per_task, max_restarts=0)(_RayWorker)
        count = max(1, min(workers, int(gpus // self.gpus_per_task),
                           max_actors if max_actors is not None else workers))
        return [actor.remote(resources, WORKER_DEVICE) for _ in range(count)]

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
            self.actors = self._actors(resources, workers, max_actors)
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
        """The actors, once started (a timeout per wait, so that Ctrl-C gets through); a cluster at ``address``
        that has not let Ray connect within ``CONNECT_TIMEOUT_S`` is a ``ValueError`` naming it."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self._ready.wait(timeout=0.5):
            if self.address and time.monotonic() > deadline:
                raise ValueError(f"--address {self.address}: Ray did not connect within {CONNECT_TIMEOUT_S:.0f} s; "
                                 "check that a Ray cluster (GCS) of this version runs there")
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
        """Kill the actors and disconnect (in the pool's thread). A thread still starting Ray (an interrupted or
        failed start) is waited for ``CLOSE_TIMEOUT_S`` at most: it is a daemon, and Ray's processes end with
        this process."""
        self._closing.set()
        self._thread.join(timeout=None if self._ready.is_set() else CLOSE_TIMEOUT_S)

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close()
        if exc_type is None and self._error is not None:  # a failed start the driver never waited for
            raise self._error


def run_on_ray(tasks: Sequence[Task], pool: RayPool, progress: Listener) -> Iterator[Outcome]:
    """Run ``tasks`` on the pool's actors (:class:`~robustness.suite.dispatch.TaskQueue` picks each actor's next
    task); yields each task with its results as it ends, and hands its progress events to ``progress``."""
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


def own_ray_pool(tasks: Sequence[Task], resources: Any, progress: Listener, workers: int,
                  address: str | None, gpus_per_task: float = 0.0) -> Iterator[Outcome]:
    with RayPool(resources, workers, address, max_actors=len(tasks), gpus_per_task=gpus_per_task) as pool:
        yield from run_on_ray(tasks, pool, progress)
