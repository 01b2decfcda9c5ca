"""The Ray pool: as many actors as workers (or the cluster's CPUs), never more than the plan can use; surplus
actors are killed once the plan is known; leaving it kills every actor and disconnects from a Ray it connected
to (which stops a local instance it started), never from one the caller had started.
The pool starts Ray in a thread that lives until the pool closes. A stand-in for the ``ray`` module records
the calls (the real Ray is exercised end to end in ``test_executors.py``)."""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import pytest

from robustness.suite import ray_engine


class FakeRay(types.ModuleType):
    def __init__(self, initialized: bool = False, cpus: int = 8, fail_remote: bool = False) -> None:
        super().__init__("ray")
        self.initialized, self.cpus, self.fail_remote = initialized, cpus, fail_remote
        self.inits: list[dict[str, Any]] = []
        self.killed: list[Any] = []
        self.shutdowns = 0
        self.created: list[Any] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **options: Any) -> None:
        self.inits.append(options)
        self.init_thread = threading.current_thread()
        self.initialized = True

    def shutdown(self) -> None:
        self.shutdowns += 1
        self.initialized = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": float(self.cpus)}

    def kill(self, actor: Any) -> None:
        self.killed.append(actor)

    def remote(self, **options: Any):
        fake = self

        def decorate(cls: type) -> Any:
            class Handle:
                @staticmethod
                def remote(resources: Any) -> str:
                    if fake.fail_remote:
                        raise RuntimeError("no actor")
                    fake.created.append(f"actor{len(fake.created)}")
                    return fake.created[-1]
            assert options == {"num_cpus": 1, "max_restarts": 0} and cls is ray_engine._RayWorker
            return Handle

        return decorate


@pytest.fixture
def fake_ray(monkeypatch):
    def install(**kwargs: Any) -> FakeRay:
        fake = FakeRay(**kwargs)
        monkeypatch.setitem(sys.modules, "ray", fake)
        return fake

    return install


def test_a_local_instance_gets_one_actor_per_worker_up_to_the_plans_bound(fake_ray):
    ray = fake_ray()
    with ray_engine.RayPool("res", workers=4, max_actors=3) as pool:
        assert pool.wait() == ["actor0", "actor1", "actor2"]
        # Ray starts in a thread of the pool that lives as long as the pool (Ray's parent-death signal is per thread)
        assert ray.init_thread is not threading.main_thread() and ray.init_thread.is_alive()
        assert ray.inits == [{"num_cpus": 4, "include_dashboard": False, "log_to_driver": False}]
        assert pool.actors == ["actor0", "actor1", "actor2"]
        pool.trim(1)
        assert pool.actors == ["actor0"] and ray.killed == ["actor1", "actor2"]
        pool.trim(0)  # an empty plan keeps one actor (the engine is never asked to run nothing)
        assert pool.actors == ["actor0"]
    assert ray.killed == ["actor1", "actor2", "actor0"] and ray.shutdowns == 1 and not ray.init_thread.is_alive()


def test_a_cluster_gets_one_actor_per_cpu(fake_ray, monkeypatch):
    monkeypatch.setenv("ROBUSTNESS_SHARED", "/shared")
    ray = fake_ray(cpus=6)
    with ray_engine.RayPool("res", workers=2, address="auto", max_actors=100) as pool:
        assert len(pool.wait()) == 6
        assert ray.inits[0]["address"] == "auto"
        assert ray.inits[0]["runtime_env"]["env_vars"]["ROBUSTNESS_SHARED"] == "/shared"
    assert ray.shutdowns == 1  # disconnects: on a cluster, ray.shutdown() stops only this driver


def test_an_initialized_ray_is_used_and_not_stopped(fake_ray):
    ray = fake_ray(initialized=True)
    with ray_engine.RayPool("res", workers=2) as pool:
        assert len(pool.wait()) == 2
    assert ray.inits == [] and ray.shutdowns == 0 and len(ray.killed) == 2


def test_a_failed_start_raises_in_the_driver_and_stops_the_instance_it_started(fake_ray):
    ray = fake_ray(fail_remote=True)
    with pytest.raises(RuntimeError, match="no actor"), ray_engine.RayPool("res", workers=2) as pool:
        pool.wait()
    assert ray.shutdowns == 1 and not pool._thread.is_alive()
    with pytest.raises(RuntimeError, match="no actor"), ray_engine.RayPool("res", workers=2):
        pass  # never waited for: leaving the pool raises the failure
    with pytest.raises(KeyError), ray_engine.RayPool("res", workers=2):
        raise KeyError("the driver's own error")  # not masked by the pool's


def test_bad_workers_and_a_missing_ray_are_one_line_errors(fake_ray, monkeypatch):
    fake_ray()
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        ray_engine.RayPool("res", workers=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ValueError, match=r'pip install -e "\.\[ray\]"'):
        ray_engine.RayPool("res", workers=2)


# --- an unreachable or wrong --address fails in seconds, and a start that hangs never blocks the exit ----------
def _server(reply: bytes | None):
    """A TCP server on a free local port that accepts and answers ``reply`` (None: stays silent)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            if reply is not None:
                connection.recv(64)
                connection.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return server, f"127.0.0.1:{server.getsockname()[1]}"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_listening_is_refused_at_once_naming_the_address(fake_ray, monkeypatch):
    import time

    ray = fake_ray()
    monkeypatch.setattr(ray_engine, "_local_aliases", lambda host: [host])
    address = f"127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(ValueError, match=rf"--address {address}: no Ray cluster answers there \(Connection refused"):
        ray_engine.RayPool("res", workers=1, address=address)
    assert time.monotonic() - start < 5 and ray.inits == []  # Ray never tried (it would retry for minutes)
    for bad in ("somewhere", "host:port", "ray://:10001", "h:0"):
        with pytest.raises(ValueError, match=f"--address {bad}: expected HOST:PORT"):
            ray_engine.probe_address(bad)


def test_a_silent_or_foreign_server_is_refused_a_grpc_one_accepted(monkeypatch):
    import time

    monkeypatch.setattr(ray_engine, "_local_aliases", lambda host: [host])
    silent, address = _server(None)
    start = time.monotonic()
    with pytest.raises(ValueError, match="no answer within 0.5 s"):
        ray_engine.probe_address(address, timeout_s=0.5)
    assert time.monotonic() - start < 3
    http, address = _server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(ValueError, match="does not speak gRPC"):
        ray_engine.probe_address(address, timeout_s=2)
    settings = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100])  # a server's first frame: SETTINGS
    grpc, address = _server(settings)
    ray_engine.probe_address(address, timeout_s=2)
    ray_engine.probe_address(f"ray://{address}", timeout_s=2)
    ray_engine.probe_address("auto")  # left to Ray
    for server in (silent, http, grpc):
        server.close()


class HangingRay(FakeRay):
    """``ray.init`` that never returns (Ray retrying an address that let it connect but never answers)."""

    def init(self, **options: Any) -> None:
        self.inits.append(options)
        threading.Event().wait()


def test_a_hanging_start_times_out_and_leaving_the_pool_is_bounded(monkeypatch):
    import time

    monkeypatch.setitem(sys.modules, "ray", HangingRay())
    monkeypatch.setattr(ray_engine, "probe_address", lambda address: None)
    monkeypatch.setattr(ray_engine, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setattr(ray_engine, "CLOSE_TIMEOUT_S", 1.0)
    start = time.monotonic()
    with pytest.raises(ValueError, match="--address h:1: Ray did not connect within 1 s"), \
            ray_engine.RayPool("res", workers=1, address="h:1") as pool:
        pool.wait()
    assert time.monotonic() - start < 5  # leaving the pool did not wait for the hung thread (a daemon)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), ray_engine.RayPool("res", workers=1) as pool:
        raise KeyboardInterrupt  # Ctrl-C while a local instance is still starting
    assert time.monotonic() - start < 5
