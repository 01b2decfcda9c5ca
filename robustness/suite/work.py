"""The worker side of a task: attack its examples for every run of its group, return one shard result per run.

A worker process keeps the models it has loaded and the attacks of the last group it ran, so consecutive
shards of one group pay the set-up once. Within a task the examples go one by one, and each example is
attacked at every setting of the group before the next, deepest setting first
(:func:`~robustness.suite.plan.attack_order`): the settings share the model's layer cache (a
text is encoded once for all of them, as deep as the deepest of them needs) and TextAttack's
model-independent work for that example (:mod:`robustness.attack.shared_caches`). Every example is attacked exactly as
:func:`~robustness.attack.runner.run_attack` attacks it (own seed, cleared caches, own accounting), so the
records do not depend on the task, the worker or the order. Each record is also reported as soon as it is made
(:func:`task_events`), so that the driver keeps it even if the task never ends (:mod:`robustness.suite.shards`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Generator
from typing import Any

from robustness.suite.plan import Task, attack_order, group_key

#: per process: model dir -> (model, tokenizer); and the prepared attacks of the last group
_MODELS: dict[tuple[str, str], tuple[Any, Any]] = {}
_GROUP: dict[str, Any] = {}
#: set by a GPU worker's start (robustness.suite.gpus): the one device it was given, whatever the spec names
_DEVICE_OVERRIDE: str | None = None

Report = Callable[[str, Any], None]  # (event, value): ("task", label) when a task starts, ("examples", example)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def init_worker(resources: Any, threads: int = 1, device: str | None = None) -> None:
    """Per-process set-up: one torch thread, :func:`preload` (TextAttack offline-safely, the attack stack), and
    no tokenizer thread pool: TextAttack turns the tokenizers' parallelism on at import, which would give
    every worker a Rust thread per core (and a forked worker a copy of the driver's pool, which hangs).
    ``device``: run every task there whatever its spec names (a GPU worker that sees one GPU: ``cuda:0``)."""
    global _DEVICE_OVERRIDE
    import torch

    _DEVICE_OVERRIDE = device

    torch.set_num_threads(threads)
    preload(resources)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # after the import, which sets it; read when a batch is encoded


def preload(resources: Any) -> None:
    """Import what a worker imports (TextAttack offline-safely, the attack stack) without changing this
    process's torch threads: workers forked from this process then start with it."""
    import importlib

    from robustness.resources.textattack_compat import import_textattack

    import_textattack(getattr(resources, "nltk_data", None), offline=getattr(resources, "offline", None))
    for module in ("recipes", "runner", "shared_caches", "wrapper"):
        importlib.import_module(f"robustness.attack.{module}")


def task_device(spec: Any) -> Any:
    """The ``torch.device`` a task of ``spec`` runs on in this process (the worker's own GPU, if it has one)."""
    from robustness.devices import resolve_device

    return resolve_device(_DEVICE_OVERRIDE or spec.device)


def _model(model_dir: str, device: Any) -> tuple[Any, Any]:
    key = (model_dir, str(device))
    if key not in _MODELS:
        from robustness.models.pabee import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(model_dir)
        _MODELS[key] = (model.to(device), tokenizer)
    return _MODELS[key]


def _prepared(task: Task, resources: Any, share_work: bool) -> dict[str, Any]:
    """The group's examples, one wrapper and attack per run (sharing one layer cache); reused by the
    next task of the same group in this process."""
    key = group_key(task.specs[0])
    if _GROUP.get("key") != (key, share_work) or set(_GROUP["attacks"]) != {s.run_id for s in task.specs}:
        from robustness.attack.runner import load_run_examples, prepare_attack
        from robustness.attack.shared_caches import SharedWork
        from robustness.attack.wrapper import LayerLogitsCache
        from robustness.devices import use_device

        device = task_device(task.specs[0])
        use_device(str(device))  # the recipes' sentence encoder loads there too
        model, tokenizer = _model(task.specs[0].model_dir, device)
        cache, shared = LayerLogitsCache(), (SharedWork() if share_work else None)
        examples = load_run_examples(task.specs[0])
        attacks = {s.run_id: prepare_attack(s, model, tokenizer, resources, cache, examples, shared)
                   for s in task.specs}
        _GROUP.clear()
        from robustness.devices import device_label

        _GROUP.update(key=(key, share_work), examples=examples, attacks=attacks, cache=cache, shared=shared,
                      device=device_label(next(model.parameters()).device))
    return _GROUP


def run_task(task: Task, resources: Any, report: Report | None = None, share_work: bool = True
             ) -> list[dict[str, Any]]:
    """Attack the task's pending examples; one shard result per run that had any (same order as
    ``task.specs``): ``{"run_id", "records", "wall_time_s", "setup_time_s", "cpu_time_s", "num_encoded",
    "worker"}``. ``report(event, value)`` hears :func:`task_events`' events as they happen.
    ``share_work`` False gives each setting its own TextAttack caches (same records, more work)."""
    steps = task_events(task, resources, share_work)
    while True:
        try:
            event = next(steps)
        except StopIteration as stop:
            return stop.value
        if report is not None:
            report(*event)


def task_events(task: Task, resources: Any, share_work: bool = True
                ) -> Generator[tuple[str, Any], None, list[dict[str, Any]]]:
    """:func:`run_task` as a generator: yields ``("task", label)`` before the set-up and, after each example's
    record, ``("examples", example)`` -- one example, with what the driver needs to keep its record before the
    task ends (:func:`robustness.suite.shards.append_salvage`): ``{"run_id", "record", "cpu_time_s" (this
    process's CPU seconds for the example, set-up excluded), "num_encoded" (texts the run's wrapper encoded for
    it), "device"}``; returns the shard results (``StopIteration.value``), which hold the same records."""
    from robustness.attack.runner import attack_example

    start, cpu_start = time.perf_counter(), time.process_time()
    yield "task", task.label
    group = _prepared(task, resources, share_work)
    examples = group["examples"]
    columns = tuple(examples.info.text_columns)
    pending = [set(ids) for ids in task.todo]
    runs_with_work = max(1, sum(bool(p) for p in pending))
    setup_s = (time.perf_counter() - start) / runs_with_work
    setup_cpu_s = (time.process_time() - cpu_start) / runs_with_work
    records: list[list[dict[str, Any]]] = [[] for _ in task.specs]
    cpu_s = [setup_cpu_s] * len(task.specs)  # this process's CPU time (all its threads) charged to each run
    encoded = {s.run_id: group["attacks"][s.run_id][0].num_encoded for s in task.specs}
    order = attack_order(task.specs)
    for eid in task.ids:
        if group["shared"] is not None:
            group["shared"].clear()  # cached TextAttack work holds for one original text
        for j in order:
            spec = task.specs[j]
            if eid not in pending[j]:
                continue
            wrapper, attack = group["attacks"][spec.run_id]
            example_cpu_start, example_encoded = time.process_time(), wrapper.num_encoded
            record = dict(attack_example(attack, wrapper, columns, examples.texts[eid], examples.labels[eid],
                                         (eid, examples.indices[eid]), spec))
            example_cpu_s = time.process_time() - example_cpu_start
            cpu_s[j] += example_cpu_s
            records[j].append(record)
            yield "examples", {"run_id": spec.run_id, "record": record, "cpu_time_s": example_cpu_s,
                               "num_encoded": wrapper.num_encoded - example_encoded, "device": group["device"]}
    results = []
    for j, spec in enumerate(task.specs):
        if not records[j]:
            continue
        wrapper = group["attacks"][spec.run_id][0]
        results.append({
            "run_id": spec.run_id, "records": records[j], "worker": worker_name(), "device": group["device"],
            "wall_time_s": setup_s + sum(r["attack_time_s"] for r in records[j]), "setup_time_s": setup_s,
            "cpu_time_s": cpu_s[j],
            # texts this run's wrapper encoded (the group's runs share one cache: a text is encoded once)
            "num_encoded": wrapper.num_encoded - encoded[spec.run_id],
        })
    return results
