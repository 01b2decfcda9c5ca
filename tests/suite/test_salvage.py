"""Salvaged records: each example a worker finishes is appended at once to its run's salvage file, so that a stop
in the middle of a task loses at most the example being attacked. Counted as done, merged by finalize_run into
the records of a straight run (duplicates of a shard's record kept once, differing ones refused), timed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from robustness.schema.records import upgrade_record
from robustness.suite.executors import Driver
from robustness.suite.shards import (
    SHARD_DIR,
    append_salvage,
    done_ids,
    finalize_run,
    mark_interrupted,
    salvage_path,
    write_shard,
)

N = 6


@pytest.fixture
def records(make_record) -> list[dict]:
    """Six current-version records, example ids 0..5, each with its own attack time."""
    made = []
    for i in range(N):
        record = upgrade_record(make_record(i, "succeeded" if i % 2 else "skipped", f"text {i}",
                                            f"adv {i}" if i % 2 else None))
        made.append({**record, "attack_time_s": 1.0 + i})
    return made


@pytest.fixture
def run_dir(tmp_path) -> Path:
    path = tmp_path / "runs" / "r1"
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"run_id": "r1", "status": "running", "num_examples": N}))
    return path


def _example(record: dict, cpu: float = 0.5, encoded: int = 3) -> dict:
    return {"run_id": "r1", "record": record, "cpu_time_s": cpu, "num_encoded": encoded, "device": "cpu"}


def _shard(records: list[dict], cpu: float = 10.0) -> dict:
    return {"run_id": "r1", "records": records, "worker": "w1", "device": "cpu", "setup_time_s": 2.0,
            "wall_time_s": 2.0 + sum(r["attack_time_s"] for r in records), "cpu_time_s": cpu, "num_encoded": 20}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_driver_appends_each_record_at_once_and_a_later_bench_counts_it_done(run_dir, records):
    driver = Driver([SimpleNamespace(run_id="r1", n=N)], run_dir.parent, {"r1": set()}, None)
    driver.event("w1", "task", "tp/deepwordbug[0:6]")  # not a record: nothing written
    assert not (run_dir / SHARD_DIR).exists()
    for record in records[:2]:
        driver.event("w1", "examples", _example(record, cpu=0.25))
    (path,) = (run_dir / SHARD_DIR).glob("partial-*.jsonl")
    assert path == salvage_path(run_dir)
    lines = [json.loads(line) for line in _lines(path)]
    assert [line["record"] for line in lines] == records[:2]
    assert lines[0] == {"record": records[0], "cpu_time_s": 0.25, "num_encoded": 3, "worker": "w1", "device": "cpu"}
    assert done_ids(run_dir) == {0, 1}
    assert driver.done["r1"] == set()  # this bench completes the run from its tasks' shards


def test_a_run_completes_when_its_last_shard_arrives_not_from_its_records_in_flight(run_dir, records):
    """Two tasks of one run end in either order: every record is salvaged before the first shard arrives, yet the
    run completes only with the second shard (each charged its set-up), and no shard is left behind."""
    driver = Driver([SimpleNamespace(run_id="r1", n=N)], run_dir.parent, {"r1": set()}, None)
    for record in records:
        driver.event("w1", "examples", _example(record))
    driver.accept([_shard(records[3:], cpu=3.0)])
    assert driver.completed == [] and json.loads((run_dir / "run.json").read_text())["status"] == "running"
    driver.accept([_shard(records[:3], cpu=3.0)])
    assert driver.completed == ["r1"] and not (run_dir / SHARD_DIR).exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["executor"]["shards"] == 2 and info["executor"]["salvaged_records"] == 0
    assert info["timings"]["cpu_time_s"] == 6.0 and info["timings"]["setup_time_s"] == 4.0
    assert [json.loads(line) for line in _lines(run_dir / "records.jsonl")] == records


def test_a_shard_of_a_run_completed_elsewhere_is_not_written(run_dir, records):
    """A part of a job array completed the run from this task's salvaged records before the task ended."""
    for record in records:
        append_salvage(salvage_path(run_dir), _example(record), "w1")
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    assert write_shard(run_dir, _shard(records[:3])) is None and not (run_dir / SHARD_DIR).exists()


def test_a_complete_run_loses_a_shard_folder_left_by_a_stop(run_dir, records):
    write_shard(run_dir, _shard(records))
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    (run_dir / SHARD_DIR).mkdir()  # as a stop between writing run.json and removing the folder leaves it
    (run_dir / SHARD_DIR / "000000-000006.json").write_text(json.dumps(_shard(records)))
    assert finalize_run(SimpleNamespace(n=N), run_dir, None) and not (run_dir / SHARD_DIR).exists()


def test_an_invalid_record_is_refused_before_it_is_written(run_dir, records):
    broken = {k: v for k, v in records[0].items() if k != "orig_text"}
    with pytest.raises(ValueError, match="missing fields: orig_text"):
        append_salvage(salvage_path(run_dir), _example(broken), "w1")
    assert not salvage_path(run_dir).exists()


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(run_dir, records):
    path = salvage_path(run_dir)
    append_salvage(path, _example(records[0]), "w1")
    with path.open("a") as handle:  # a stop in the middle of the second append
        handle.write(json.dumps({"record": records[1], "cpu_time_s": 0.5})[:40])
    assert done_ids(run_dir) == {0}
    mark_interrupted(run_dir, "SIGKILL")
    assert json.loads((run_dir / "run.json").read_text())["num_records"] == 1
    driver = Driver([SimpleNamespace(run_id="r1", n=N)], run_dir.parent, {"r1": set()}, None)
    driver.event("w1", "examples", _example(records[2]))  # the same process id: its torn tail is cut first
    assert [json.loads(line)["record"]["example_id"] for line in _lines(path)] == [0, 2]
    assert done_ids(run_dir) == {0, 2}


def test_a_bad_whole_line_is_named(run_dir, records):
    path = salvage_path(run_dir)
    append_salvage(path, _example(records[0]), "w1")
    with path.open("a") as handle:
        handle.write('{"cpu_time_s": 1.0}\n')
    with pytest.raises(ValueError, match=r"partial-.*\.jsonl, line 2: not a salvaged record"):
        done_ids(run_dir)


def _straight_run(tmp_path: Path, records: list[dict]) -> tuple[list[dict], dict]:
    """records.jsonl and run.json of a run whose only shard holds every record (an uninterrupted bench)."""
    run_dir = tmp_path / "straight"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r1", "status": "running"}))
    write_shard(run_dir, _shard(records))
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    lines = [json.loads(line) for line in _lines(run_dir / "records.jsonl")]
    return lines, json.loads((run_dir / "run.json").read_text())


def test_finalize_merges_records_shards_and_salvage_into_the_straight_run(tmp_path, run_dir, records):
    straight, _ = _straight_run(tmp_path, records)
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:2]))  # a sequential run
    write_shard(run_dir, _shard(records[2:4], cpu=7.0))
    path = salvage_path(run_dir)
    for record in records[3:]:  # example 3: salvaged, then its task ended and wrote it in the shard too
        append_salvage(path, _example(record, cpu=0.5, encoded=4), "w2")
    other = run_dir / SHARD_DIR / "partial-elsewhere-1.jsonl"  # another driver (a part of a job array)
    append_salvage(other, _example(records[5], cpu=0.5, encoded=4), "w3")
    assert done_ids(run_dir) == set(range(N))
    assert not finalize_run(SimpleNamespace(n=N + 1), run_dir, None)  # example 6 has no record yet
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    assert [json.loads(line) for line in _lines(run_dir / "records.jsonl")] == straight == records
    assert not (run_dir / SHARD_DIR).exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["num_records"] == N and info["resumed_records"] == 2
    # salvaged examples 4 and 5 count once each (3 is the shard's): their attack time, CPU and encoded texts
    timings = info["timings"]
    assert timings["wall_time_s"] == pytest.approx(2.0 + 3.0 + 4.0 + 5.0 + 6.0)
    assert timings["attack_time_s"] == pytest.approx(sum(r["attack_time_s"] for r in records))
    assert timings["cpu_time_s"] == pytest.approx(7.0 + 0.5 + 0.5) and timings["setup_time_s"] == 2.0
    assert info["cache"]["num_encoded"] == 20 + 4 + 4
    assert info["executor"] == {"shards": 1, "salvaged_records": 2, "workers": ["w1", "w2", "w3"],
                                "devices": ["cpu"]}


def test_finalize_from_salvage_alone(run_dir, records):
    path = salvage_path(run_dir)
    for record in records:
        append_salvage(path, _example(record, cpu=0.5), "w1")
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    assert [json.loads(line) for line in _lines(run_dir / "records.jsonl")] == records
    timings = json.loads((run_dir / "run.json").read_text())["timings"]
    assert timings["wall_time_s"] == pytest.approx(sum(r["attack_time_s"] for r in records))
    assert timings["cpu_time_s"] == pytest.approx(0.5 * N) and timings["setup_time_s"] == 0


def test_a_salvaged_record_that_differs_from_its_shard_is_refused(run_dir, records):
    write_shard(run_dir, _shard(records))
    append_salvage(salvage_path(run_dir), _example({**records[2], "adv_text": "another"}), "w1")
    with pytest.raises(ValueError, match="example 2 has two different records"):
        finalize_run(SimpleNamespace(n=N), run_dir, None)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert not (run_dir / "records.jsonl").exists()


def test_two_salvaged_records_of_one_example_must_agree(run_dir, records):
    for record in records:
        append_salvage(salvage_path(run_dir), _example(record), "w1")
    other = run_dir / SHARD_DIR / "partial-elsewhere-1.jsonl"
    append_salvage(other, _example(records[0]), "w2")  # identical: kept once, its CPU counted once
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    assert json.loads((run_dir / "run.json").read_text())["timings"]["cpu_time_s"] == pytest.approx(0.5 * N)


def test_cpu_time_unknown_when_a_shard_predates_it(run_dir, records):
    old = _shard(records[:3])
    del old["cpu_time_s"]
    write_shard(run_dir, old)
    for record in records[3:]:
        append_salvage(salvage_path(run_dir), _example(record), "w1")
    assert finalize_run(SimpleNamespace(n=N), run_dir, None)
    assert json.loads((run_dir / "run.json").read_text())["timings"]["cpu_time_s"] is None

