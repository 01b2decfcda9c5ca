"""GPU workers without a GPU: which GPU each local worker gets (fake device lists), that it sees only that one
(``CUDA_VISIBLE_DEVICES``) and runs on ``cuda:0``, that GPU workers are spawned, and what Ray actors request.
CPU suites keep their workers exactly as before (no GPU slot, no GPU requested)."""

from __future__ import annotations

import queue
import sys
import types
from typing import Any

import pytest
import torch

from robustness.suite import executors, ray_engine, work
from robustness.suite.gpus import WORKER_DEVICE, gpu_slots, gpus_per_task, visible_gpus
from robustness.suite.plan import Task
from robustness.suite.specs import RunSpec


def test_visible_gpus_follow_torch_and_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5, GPU-ab12,7,9")  # torch counts only what it can use
    assert visible_gpus() == ["5", "GPU-ab12", "7"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert visible_gpus() == []


@pytest.mark.parametrize(("device", "workers", "visible", "slots"), [
    ("cpu", None, ["0", "1"], None),  # CPU workers as before, GPUs or not
    ("auto", 4, [], None),  # auto without a GPU: the CPU
    ("auto", None, ["0", "1", "2", "3"], ["0", "1", "2", "3"]),  # one worker per visible GPU
    ("cuda", 2, ["0", "1", "2", "3"], ["0", "1"]),  # --workers caps them
    ("cuda", 8, ["4", "6"], ["4", "6"]),  # never more workers than GPUs
    ("cuda:1", None, ["4", "6"], ["6"]),  # one named GPU: one worker on it
])
def test_gpu_slots(device, workers, visible, slots):
    assert gpu_slots(device, workers, visible) == slots


def test_gpu_slots_refusals():
    with pytest.raises(ValueError, match="--device cuda: torch sees no CUDA device"):
        gpu_slots("cuda", None, [])
    with pytest.raises(ValueError, match=r"--device cuda:2: 2 CUDA device\(s\) visible"):
        gpu_slots("cuda:2", None, ["0", "1"])
    with pytest.raises(ValueError, match="--device must be"):
        gpu_slots("gpu", None, ["0"])


def test_gpus_per_task_defaults_and_refusals():
    assert gpus_per_task("cuda", None) == 1.0 and gpus_per_task("cuda:2", None) == 1.0
    assert gpus_per_task("cpu", None) == 0.0 and gpus_per_task("auto", None) == 0.0
    assert gpus_per_task("cuda", 0.5) == 0.5 and gpus_per_task("auto", 1) == 1.0
    with pytest.raises(ValueError, match="--gpus-per-task must be >= 0"):
        gpus_per_task("cuda", -1)
    with pytest.raises(ValueError, match="--device is cpu"):
        gpus_per_task("cpu", 1)


class _FakeContext:
    """multiprocessing's context, in this process: the pool's workers start (initializer) and run tasks inline."""

    def __init__(self, method: str, started: list[dict[str, Any]]) -> None:
        self.method, self.started = method, started

    def Queue(self) -> queue.Queue:  # noqa: N802 - multiprocessing's name
        return queue.Queue()

    def Pool(self, workers: int, initializer: Any, initargs: tuple) -> Any:  # noqa: N802
        for _ in range(workers):
            initializer(*initargs)

        class Handle:
            def ready(self) -> bool:
                return True

            def get(self) -> None:
                return None

        class Pool:
            def apply_async(self, fn: Any, args: tuple) -> Handle:
                fn(*args)
                return Handle()

            def close(self) -> None: ...
            def terminate(self) -> None: ...
            def join(self) -> None: ...

        return Pool()


def _tasks(count: int) -> list[Task]:
    spec = RunSpec(model_id="m", model_dir="/m", recipe="textfooler", dataset="glue/sst2", n=count, device="cuda")
    return [Task(specs=(spec,), ids=(i,), todo=((i,),)) for i in range(count)]


@pytest.mark.parametrize("gpus", [None, ["3", "5"]])
def test_local_workers_get_one_gpu_each_and_are_spawned(monkeypatch, gpus):
    started: list[dict[str, Any]] = []
    methods: list[str] = []

    def context(method: str) -> _FakeContext:
        methods.append(method)
        return _FakeContext(method, started)

    def init_worker(resources: Any, threads: int = 1, device: str | None = None) -> None:
        import os

        started.append({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "device": device, "threads": threads})

    monkeypatch.setattr(executors.multiprocessing, "get_context", context)
    monkeypatch.setattr(work, "init_worker", init_worker)
    monkeypatch.setattr(work, "preload", lambda resources: None)
    monkeypatch.setattr(work, "run_task", lambda task, resources, report: [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(executors, "default_workers", lambda: 16)
    tasks = _tasks(4)
    bar = executors.Progress(4, enabled=False)
    ended = list(executors._local_pool(tasks, "res", bar, workers=3, gpus=gpus))
    assert sorted(t.ids for t, _ in ended) == [t.ids for t in tasks]
    if gpus is None:  # CPU: as before: the platform's start method, 3 workers, one thread, no device of their own
        assert methods == [executors.START_METHOD]
        assert started == [{"visible": "3,5", "device": None, "threads": 1}] * 3
    else:
        assert methods == ["spawn"]  # the driver may hold a CUDA context, which a fork cannot carry
        assert started == [{"visible": "3", "device": WORKER_DEVICE, "threads": 8},
                           {"visible": "5", "device": WORKER_DEVICE, "threads": 8}]


def test_execute_runs_one_gpu_in_process_and_several_in_the_pool(monkeypatch):
    calls: list[Any] = []

    def inline(tasks, resources, bar):
        calls.append("inline")
        yield from ()

    def pool(tasks, resources, bar, workers, gpus):
        calls.append(("pool", workers, gpus))
        yield from ()

    monkeypatch.setattr(executors, "_in_process", inline)
    monkeypatch.setattr(executors, "_local_pool", pool)
    driver = types.SimpleNamespace(accept=lambda results: None)
    executors.execute(_tasks(3), driver, "res", workers=8, gpus=["0"], progress=False)
    executors.execute(_tasks(3), driver, "res", workers=8, gpus=["0", "1", "2", "3"], progress=False)
    executors.execute(_tasks(3), driver, "res", workers=2, progress=False)  # CPU: as before
    assert calls == ["inline", ("pool", 3, ["0", "1", "2"]), ("pool", 2, None)]


class _GpuRay(types.ModuleType):
    """A stand-in for ``ray`` that records what the actors request."""

    def __init__(self, gpus: float) -> None:
        super().__init__("ray")
        self.gpus, self.options, self.created, self.initialized = gpus, [], [], False

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **options: Any) -> None:
        self.initialized = True

    def shutdown(self) -> None:
        self.initialized = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 16.0, "GPU": self.gpus}

    def kill(self, actor: Any) -> None: ...

    def remote(self, **options: Any):
        self.options.append(options)
        fake = self

        class Handle:
            @staticmethod
            def remote(*args: Any) -> str:
                fake.created.append(args)
                return f"actor{len(fake.created)}"

        return lambda cls: Handle


def test_ray_actors_request_gpus_and_are_no_more_than_the_gpus(monkeypatch):
    ray = _GpuRay(gpus=4)
    monkeypatch.setitem(sys.modules, "ray", ray)
    with ray_engine.RayPool("res", workers=8, gpus_per_task=1) as pool:
        assert len(pool.wait()) == 4
    assert ray.options == [{"num_cpus": 1, "num_gpus": 1, "max_restarts": 0}]
    assert ray.created == [("res", WORKER_DEVICE)] * 4  # each actor runs on the one GPU Ray gives it
    ray = _GpuRay(gpus=4)
    monkeypatch.setitem(sys.modules, "ray", ray)
    with ray_engine.RayPool("res", workers=8, gpus_per_task=0.5, max_actors=3) as pool:
        assert len(pool.wait()) == 3
    ray = _GpuRay(gpus=4)
    monkeypatch.setitem(sys.modules, "ray", ray)
    with ray_engine.RayPool("res", workers=2) as pool:  # CPU: the request of before, no device
        assert len(pool.wait()) == 2
    assert ray.options == [{"num_cpus": 1, "max_restarts": 0}] and ray.created == [("res",)] * 2


def test_a_ray_cluster_without_gpus_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", _GpuRay(gpus=0))
    with pytest.raises(ValueError, match="--gpus-per-task 1: the Ray cluster has 0 GPUs"), \
            ray_engine.RayPool("res", workers=2, gpus_per_task=1) as pool:
        pool.wait()


def test_a_worker_runs_every_task_on_its_own_gpu(monkeypatch):
    spec = RunSpec(model_id="m", model_dir="/m", recipe="textfooler", dataset="glue/sst2", device="cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # what a worker with one visible GPU sees
    monkeypatch.setattr(work, "_DEVICE_OVERRIDE", WORKER_DEVICE)
    assert work.task_device(spec) == torch.device("cuda:0")
    monkeypatch.setattr(work, "_DEVICE_OVERRIDE", None)
    with pytest.raises(ValueError, match=r"--device cuda:3: torch sees 1 CUDA device"):
        work.task_device(spec)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert work.task_device(RunSpec(model_id="m", model_dir="/m", recipe="r", dataset="d")) == torch.device("cpu")
