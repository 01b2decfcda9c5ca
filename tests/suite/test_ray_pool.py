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
