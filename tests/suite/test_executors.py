"""Records, tables and report do not depend on how the suite ran: sequential runs, 1 worker, 2 workers,
Ray, a job array of parts; shard results merge into one run directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)

from robustness.cli import main  # noqa: E402

SENTENCES = ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
             "i have never been so bored", "warm , funny and surprisingly moving", "terrible"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory, tiny_pabee_dir, tiny_full_dir, write_sst2):
    root = tmp_path_factory.mktemp("suite")
    write_sst2(root, SENTENCES)
    path = root / "tiny.toml"
    path.write_text(
        '[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 6\nquery_budget = 12\nbatch_size = 4\n'
        'recipes = ["deepwordbug"]\nsettings = [1, "maxprob:0.9", "full"]\n'
        f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{tiny_pabee_dir}"\n'
        f'[[models]]\nid = "tf"\nhead = "full"\npath = "{tiny_full_dir}"\n'
    )
    return path, root


def _bench(suite, out: Path, *flags: str) -> None:
    path, root = suite
    assert main(["bench", str(path), "--out", str(out), "--data-dir", str(root / "data"),
                 "--nltk-data", str(SHARED / "nltk_data"), "--shard-size", "2", *flags]) == 0


def _records(out: Path) -> dict[str, list[dict]]:
    runs = {}
    for run in sorted((out / "runs").iterdir()):
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
        assert not (run / "shards").exists()
        lines = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        assert [r["example_id"] for r in lines] == list(range(6))
        runs[run.name] = [{k: v for k, v in r.items() if k != "attack_time_s"} for r in lines]
    return runs


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {p.name: pd.read_csv(p) for p in sorted((out / "tables").glob("*.csv"))}
    return {name: t[[c for c in t.columns if "time" not in c]] for name, t in tables.items()}


def _report(out: Path) -> str:
    return (out / "report.md").read_text().split("## Provenance")[0]


@pytest.fixture(scope="module")
def sequential(suite, tmp_path_factory):
    """One worker: the tasks in order, in this process."""
    out = tmp_path_factory.mktemp("w1")
    _bench(suite, out, "--workers", "1")
    return out


def _same(a: Path, b: Path) -> None:
    assert _records(a) == _records(b)
    tables_a, tables_b = _tables(a), _tables(b)
    assert tables_a.keys() == tables_b.keys()
    for name in tables_a:
        pd.testing.assert_frame_equal(tables_a[name], tables_b[name])
    assert _report(a) == _report(b)


def test_one_worker_equals_run_attack(sequential, suite, tmp_path):
    from robustness.attack.runner import run_attack
    from robustness.suite.specs import RunSpec

    for run in (sequential / "runs").iterdir():
        spec = RunSpec.from_dict(json.loads((run / "spec.json").read_text()))
        run_attack(spec, tmp_path / "runs" / run.name, progress=False)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path)]) == 0
    _same(sequential, tmp_path)


def test_two_workers_equal_one(sequential, suite, tmp_path):
    _bench(suite, tmp_path, "--workers", "2")
    _same(sequential, tmp_path)


def test_parts_then_plain_bench_equal_one_worker(sequential, suite, tmp_path, capsys):
    _bench(suite, tmp_path, "--workers", "1", "--part", "2/3")
    assert not (tmp_path / "report.md").exists()
    assert any((tmp_path / "runs").glob("*/shards/*.json"))
    _bench(suite, tmp_path, "--workers", "1", "--part", "1/3")
    _bench(suite, tmp_path, "--workers", "1", "--part", "3/3")
    capsys.readouterr()
    _bench(suite, tmp_path, "--workers", "1")
    assert "4 of 4 runs already complete" in capsys.readouterr().out
    _same(sequential, tmp_path)


def test_ray_equals_one_worker(sequential, suite, tmp_path):
    pytest.importorskip("ray")
    _bench(suite, tmp_path, "--engine", "ray", "--workers", "2")
    _same(sequential, tmp_path)


def test_runs_are_charged_their_cpu_time_unknown_when_a_shard_predates_it(suite, tmp_path):
    _bench(suite, tmp_path, "--workers", "1", "--part", "1/3")
    older = sorted((tmp_path / "runs").glob("*/shards/*.json"))[0]
    shard = json.loads(older.read_text())
    assert shard["cpu_time_s"] > 0
    del shard["cpu_time_s"]  # as written before runs recorded CPU time
    older.write_text(json.dumps(shard))
    _bench(suite, tmp_path, "--workers", "1")
    timings = {run.name: json.loads((run / "run.json").read_text())["timings"] for run in (tmp_path / "runs").iterdir()}
    assert timings.pop(older.parent.parent.name)["cpu_time_s"] is None
    assert timings and all(t["cpu_time_s"] > 0 for t in timings.values())


def test_a_ray_that_cannot_start_fails_bench_before_any_run_is_written(suite, tmp_path, monkeypatch, capsys):
    from robustness.suite import executors

    class UnreachableRay:
        def __init__(self, resources, workers, address=None, max_actors=None) -> None:
            self.closed = False

        def wait(self):
            raise ConnectionError("Could not find any running Ray instance.")

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.closed = True

    monkeypatch.setattr(executors, "RayPool", UnreachableRay)
    path, root = suite
    code = main(["bench", str(path), "--out", str(tmp_path), "--data-dir", str(root / "data"),
                 "--nltk-data", str(SHARED / "nltk_data"), "--engine", "ray", "--address", "auto"])
    assert code == 2 and "Could not find any running Ray instance" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_bench_stopped_mid_task_keeps_its_records_and_attacks_only_the_rest(sequential, suite, tmp_path,
                                                                              monkeypatch):
    """One task per group (shard size 6): stopped after the fifth record, no task has ended, yet the five are
    kept (salvaged); the rerun attacks only the other 19 examples of the 4 runs, and its records, tables and
    report equal an uninterrupted bench's."""
    from robustness.attack import runner
    from robustness.suite import executors

    real_event, heard = executors.Driver.event, []

    def stopped_after_five(self, worker, event, value):
        real_event(self, worker, event, value)
        if event == "examples":
            heard.append((value["run_id"], value["record"]))
            if len(heard) == 5:
                raise KeyboardInterrupt

    monkeypatch.setattr(executors.Driver, "event", stopped_after_five)
    path, root = suite
    argv = ["bench", str(path), "--out", str(tmp_path), "--data-dir", str(root / "data"), "--nltk-data",
            str(SHARED / "nltk_data"), "--shard-size", "6", "--workers", "1"]
    assert main(argv) == 130
    assert not list((tmp_path / "runs").glob("*/shards/[0-9]*.json"))  # no task ended
    interrupted = {run.name: json.loads((run / "run.json").read_text()) for run in (tmp_path / "runs").iterdir()}
    assert {info["status"] for info in interrupted.values()} == {"interrupted"}
    assert sum(info["num_records"] for info in interrupted.values()) == 5
    monkeypatch.undo()

    real_attack, attacked = runner.attack_example, []

    def counted(attack, wrapper, columns, text, label, ids, spec):
        attacked.append((spec.run_id, ids[0]))
        return real_attack(attack, wrapper, columns, text, label, ids, spec)

    monkeypatch.setattr(runner, "attack_example", counted)
    assert main(argv) == 0
    salvaged = {(run_id, record["example_id"]) for run_id, record in heard}
    assert len(attacked) == 4 * 6 - 5 and salvaged.isdisjoint(attacked)
    final = {run.name: [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
             for run in (tmp_path / "runs").iterdir()}
    assert all(final[run_id][record["example_id"]] == record for run_id, record in heard)  # kept, not redone
    _same(sequential, tmp_path)
