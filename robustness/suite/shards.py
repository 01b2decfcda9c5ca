"""Where executors put finished work: shard files and salvaged records in the run directory, merged into one
run when complete.

Workers never write run directories: they return one *shard result* per run of their task (the records of
that run for the task's examples, and the time spent on them), and the driver writes it, atomically, as
``<run_dir>/shards/<first>-<stop>.json``. A shard file is all-or-nothing; so that a stop in the middle of a task
(SIGINT, SIGTERM, even SIGKILL of every process) does not lose the task's finished examples, each worker also
reports every record as soon as it is made, and the driver appends it at once (fsynced) to a *salvage file*,
``<run_dir>/shards/partial-<host>-<pid>.jsonl`` (one per driver process, so that parts of a job array never
append to one file): one JSON line ``{"record", "cpu_time_s", "num_encoded", "worker", "device"}`` per example.
A stop therefore loses at most the example each worker was attacking (and a torn last line, which readers
skip); a resumed suite counts salvaged records as done (:func:`done_ids`) and attacks only the rest.

Once every example of a run has a record, the driver merges the run's ``records.jsonl`` (records from an
earlier sequential run, if any), every shard and the salvaged records in example order (a record in a shard and
in a salvage file is one example: the two must be identical), writes ``run.json`` (status ``complete``) and
deletes the shard folder, salvage files included: the run directory then looks exactly like one written by a
sequential :func:`~robustness.attack.runner.run_attack`, records included.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
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
from robustness.schema.records import (
    append_json_line,
    read_records,
    truncate_torn_tail,
    validate_record,
    whole_lines,
)
from robustness.schema.specs import RunSpec

SHARD_DIR = "shards"
SALVAGE_PREFIX = "partial"  # salvage files: shards/partial-<host>-<pid>.jsonl


def _shard_results(run_dir: Path) -> list[dict[str, Any]]:
    folder = run_dir / SHARD_DIR
    if not folder.is_dir():
        return []
    return [read_json_object(path) for path in sorted(folder.glob("[0-9]*.json"))]  # a bad one is named


def salvage_path(run_dir: Path) -> Path:
    """This process's salvage file of ``run_dir`` (its name holds the host and the process id)."""
    return run_dir / SHARD_DIR / f"{SALVAGE_PREFIX}-{socket.gethostname()}-{os.getpid()}.jsonl"


def append_salvage(path: Path, example: dict[str, Any], worker: str) -> None:
    """Append one example a worker reported (``{"record", "cpu_time_s", "num_encoded", "device", ...}``, see
    :func:`robustness.suite.work.task_events`) to the salvage file ``path`` as one fsynced JSON line. The
    caller cuts a torn tail (:func:`~robustness.schema.records.truncate_torn_tail`) before its first append."""
    validate_record(example["record"])
    path.parent.mkdir(exist_ok=True)
    append_json_line(path, {"record": example["record"], "cpu_time_s": example["cpu_time_s"],
                            "num_encoded": example["num_encoded"], "worker": worker,
                            "device": example.get("device", "cpu")})


def _salvaged(run_dir: Path) -> list[dict[str, Any]]:
    """Every whole line of the run's salvage files (a torn last line is skipped), records validated."""
    lines = []
    for path in sorted((run_dir / SHARD_DIR).glob(f"{SALVAGE_PREFIX}-*.jsonl")):
        for number, raw in whole_lines(path.read_bytes()):
            try:
                line = json.loads(raw.decode("utf-8"))
                validate_record(line["record"])  # as write_shard validates: records of this version
                float(line["cpu_time_s"])
            except (ValueError, KeyError, TypeError) as exc:  # JSON and UTF-8 errors are ValueErrors
                raise ValueError(f"{path}, line {number}: not a salvaged record ({exc}); delete the line and "
                                 "rerun to attack its example again") from None
            lines.append(line)
    return lines


def done_ids(run_dir: Path) -> set[int]:
    """Example ids that already have a record: in ``records.jsonl``, a shard file or a salvage file."""
    ids = {r["example_id"] for r in read_records(run_dir / RECORDS_FILE)}
    for shard in _shard_results(run_dir):
        ids.update(r["example_id"] for r in shard["records"])
    ids.update(line["record"]["example_id"] for line in _salvaged(run_dir))
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


def write_shard(run_dir: Path, result: dict[str, Any]) -> Path | None:
    """Write one shard result (``records``, ``wall_time_s``, ...) atomically; returns its path, or None when the
    run is already complete (another part of a job array completed it from this task's salvaged records before
    the task ended: the records are in ``records.jsonl`` already). (Parts of a job array attack disjoint
    examples, so no two writers ever write one shard.)"""
    for record in result["records"]:
        validate_record(record)
    ids = [r["example_id"] for r in result["records"]]
    folder = run_dir / SHARD_DIR
    with exclusive(run_dir, wait=True):  # finalize_run removes the folder under the same lock
        if (run_dir / RUN_FILE).is_file() and read_json_object(run_dir / RUN_FILE).get("status") == "complete":
            return None
        folder.mkdir(exist_ok=True)
        path = folder / f"{min(ids):06d}-{max(ids) + 1:06d}.json"
        write_json_atomic(path, result)
    return path


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _merge_salvaged(by_id: dict[int, Any], salvaged: list[dict[str, Any]], run_dir: Path) -> list[dict[str, Any]]:
    """Add to ``by_id`` the salvaged records of examples it lacks; returns their salvage lines (one per example).
    A salvaged record of an example ``by_id`` has (its task ended and wrote its shard) must equal that record."""
    added: dict[int, dict[str, Any]] = {}
    for line in salvaged:
        record = line["record"]
        eid = record["example_id"]
        if eid in by_id:
            if by_id[eid] != record:
                raise ValueError(f"{run_dir / SHARD_DIR}: example {eid} has two different records (shard, "
                                 "salvage); a bug: report it, or delete the folder to redo its examples")
            continue
        by_id[eid], added[eid] = record, line
    return list(added.values())


def finalize_run(spec: RunSpec, run_dir: Path, command: str | None) -> bool:
    """If every example of the run has a record, merge them into ``records.jsonl`` in example order, write
    ``run.json`` (complete) and remove the shard folder (salvage files included); returns whether the run is
    complete.

    Timings: ``attack_time_s`` sums the records. ``wall_time_s``, ``cpu_time_s`` and ``cache.num_encoded`` sum
    the shards (each charged its share of its task's set-up) plus, for each salvaged record that no shard holds
    (its task was stopped before it ended), that example's ``attack_time_s``, CPU seconds and encoded texts:
    the set-up of a stopped task (loading the model and attacks, before its first example) and the example it
    was attacking when stopped are counted nowhere, so these sums then undercount what the run cost by that
    much. ``setup_time_s`` sums the shards' only."""
    with exclusive(run_dir, wait=True):
        info = read_json_object(run_dir / RUN_FILE)
        if info.get("status") == "complete":
            shutil.rmtree(run_dir / SHARD_DIR, ignore_errors=True)  # left by a stop just after run.json was written
            return True
        earlier = read_records(run_dir / RECORDS_FILE)
        shards = _shard_results(run_dir)
        by_id = {r["example_id"]: r for r in earlier}
        for shard in shards:
            by_id.update({r["example_id"]: r for r in shard["records"]})
        salvaged = _merge_salvaged(by_id, _salvaged(run_dir), run_dir)
        if set(by_id) != set(range(spec.n)):
            return False
        records = [by_id[i] for i in range(spec.n)]
        counts = {k: sum(r["result"] == k for r in records) for k in ("succeeded", "failed", "skipped")}
        info.update(
            status="complete", finished_at=utc_now(), versions=versions(), command=command, num_examples=spec.n,
            resumed_records=len(earlier), num_records=len(records), counts=counts, error=None,
            cache={"num_encoded": sum(s["num_encoded"] for s in shards) + sum(x["num_encoded"] for x in salvaged)},
            # a task attacks several runs: each run is charged its own examples' time plus its share of setup
            timings={"wall_time_s": (sum(s["wall_time_s"] for s in shards)
                                     + sum(x["record"]["attack_time_s"] for x in salvaged)),
                     "setup_time_s": sum(s["setup_time_s"] for s in shards),
                     "attack_time_s": sum(r["attack_time_s"] for r in records),
                     # CPU seconds of the worker processes for this run's shards and salvaged examples
                     # (None if a shard predates it)
                     "cpu_time_s": (sum(s["cpu_time_s"] for s in shards) + sum(x["cpu_time_s"] for x in salvaged)
                                    if all("cpu_time_s" in s for s in shards) else None)},
            executor={"shards": len(shards), "salvaged_records": len(salvaged),
                      "workers": sorted({s["worker"] for s in shards} | {x["worker"] for x in salvaged}),
                      "devices": sorted({s.get("device", "cpu") for s in shards}
                                        | {x["device"] for x in salvaged})},  # never part of the run's id
        )
        _write_records(run_dir / RECORDS_FILE, records)
        write_json_atomic(run_dir / RUN_FILE, info)
        shutil.rmtree(run_dir / SHARD_DIR, ignore_errors=True)
    return True


def mark_interrupted(run_dir: Path, signal: str) -> None:
    """A run that is not complete when the suite is stopped: ``run.json`` says ``interrupted``, by which
    signal, and how many examples have a record (in records.jsonl, shard or salvage files)."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return
    info = read_json_object(path)
    if info.get("status") == "complete":
        return
    info.update(status="interrupted", signal=signal, finished_at=utc_now(), num_records=len(done_ids(run_dir)))
    write_json_atomic(path, info)
