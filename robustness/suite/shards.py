"""Where executors put finished work: shard files in the run directory, merged into one run when complete.

Workers never write run directories: they return one *shard result* per run of their task (the records of
that run for the task's examples, and the time spent on them), and the driver writes it, atomically, as
``<run_dir>/shards/<first>-<stop>.json``. A shard file is all-or-nothing, so a suite killed at any moment
resumes at task granularity. Once every example of a run has a record, the driver merges the run's
``records.jsonl`` (records from an earlier sequential run, if any, plus every shard) in example order,
writes ``run.json`` (status ``complete``) and deletes the shard files: the run directory then looks exactly
like one written by a sequential :func:`~robustness.attack.runner.run_attack`, records included.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from robustness.attack.rundir import (
    RECORDS_FILE,
    RUN_FILE,
    check_or_write_spec,
    check_same_model,
    exclusive,
    spec_content,
)
from robustness.models.fingerprint import model_fingerprint
from robustness.models.saved import saved_facts
from robustness.provenance import read_json_object, utc_now, versions, write_json_atomic, write_text_atomic
from robustness.schema.records import read_records, truncate_torn_tail, validate_record
from robustness.schema.specs import RunSpec

SHARD_DIR = "shards"


def _shard_results(run_dir: Path) -> list[dict[str, Any]]:
    folder = run_dir / SHARD_DIR
    if not folder.is_dir():
        return []
    return [read_json_object(path) for path in sorted(folder.glob("[0-9]*.json"))]  # a bad one is named


def done_ids(run_dir: Path) -> set[int]:
    """Example ids that already have a record: in ``records.jsonl`` or in a shard file."""
    ids = {r["example_id"] for r in read_records(run_dir / RECORDS_FILE)}
    for shard in _shard_results(run_dir):
        ids.update(r["example_id"] for r in shard["records"])
    return ids


def prepare_run(spec: RunSpec, run_dir: Path, command: str | None, fingerprint: str | None = None) -> set[int]:
    """Create ``run_dir`` with its ``spec.json`` (or check the one there) and a ``running`` run.json;
    returns the example ids already done. ``fingerprint``: the model's, when the caller has just computed it
    (it hashes the weights: a suite's runs of one model need it once)."""
    fingerprint = fingerprint or model_fingerprint(spec.model_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(run_dir, wait=True):
        check_same_model(run_dir, fingerprint, spec.model_dir)
        check_or_write_spec(run_dir, spec, spec_content(spec, saved_facts(spec.model_dir), fingerprint))
        truncate_torn_tail(run_dir / RECORDS_FILE)
        if not (run_dir / RUN_FILE).is_file():
            write_json_atomic(run_dir / RUN_FILE, {"run_id": spec.run_id, "status": "running", "started_at": utc_now(),
                                                   "seed": spec.seed, "command": command, "num_examples": spec.n})
        return done_ids(run_dir)


def write_shard(run_dir: Path, result: dict[str, Any]) -> Path:
    """Write one shard result (``records``, ``wall_time_s``, ...) atomically; returns its path. (Parts of a job
    array attack disjoint examples, so no two writers ever write one shard.)"""
    for record in result["records"]:
        validate_record(record)
    ids = [r["example_id"] for r in result["records"]]
    folder = run_dir / SHARD_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{min(ids):06d}-{max(ids) + 1:06d}.json"
    write_json_atomic(path, result)
    return path


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def finalize_run(spec: RunSpec, run_dir: Path, command: str | None) -> bool:
    """If every example of the run has a record, merge them into ``records.jsonl`` in example order, write
    ``run.json`` (complete) and remove the shard files; returns whether the run is complete."""
    with exclusive(run_dir, wait=True):
        info = read_json_object(run_dir / RUN_FILE)
        if info.get("status") == "complete":
            return True
        earlier = read_records(run_dir / RECORDS_FILE)
        shards = _shard_results(run_dir)
        by_id = {r["example_id"]: r for r in earlier}
        for shard in shards:
            by_id.update({r["example_id"]: r for r in shard["records"]})
        if set(by_id) != set(range(spec.n)):
            return False
        records = [by_id[i] for i in range(spec.n)]
        counts = {k: sum(r["result"] == k for r in records) for k in ("succeeded", "failed", "skipped")}
        info.update(
            status="complete", finished_at=utc_now(), versions=versions(), command=command, num_examples=spec.n,
            resumed_records=len(earlier), num_records=len(records), counts=counts, error=None,
            cache={"num_encoded": sum(s["num_encoded"] for s in shards)},
            # a task attacks several runs: each run is charged its own examples' time plus its share of setup
            timings={"wall_time_s": sum(s["wall_time_s"] for s in shards),
                     "setup_time_s": sum(s["setup_time_s"] for s in shards),
                     "attack_time_s": sum(r["attack_time_s"] for r in records),
                     # CPU seconds of the worker processes for this run's shards (None if a shard predates it)
                     "cpu_time_s": (sum(s["cpu_time_s"] for s in shards)
                                    if all("cpu_time_s" in s for s in shards) else None)},
            executor={"shards": len(shards), "workers": sorted({s["worker"] for s in shards}),
                      "devices": sorted({s.get("device", "cpu") for s in shards})},  # never part of the run's id
        )
        _write_records(run_dir / RECORDS_FILE, records)
        write_json_atomic(run_dir / RUN_FILE, info)
        shutil.rmtree(run_dir / SHARD_DIR, ignore_errors=True)
    return True


def mark_interrupted(run_dir: Path, signal: str) -> None:
    """A run that is not complete when the suite is stopped: ``run.json`` says ``interrupted``, by which
    signal, and how many examples have a record (in records.jsonl or shard files)."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return
    info = read_json_object(path)
    if info.get("status") == "complete":
        return
    info.update(status="interrupted", signal=signal, finished_at=utc_now(), num_records=len(done_ids(run_dir)))
    write_json_atomic(path, info)
