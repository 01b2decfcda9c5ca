"""Kills and interruptions: of `bench` in its report stage, of `train` while saving, and SIGTERM during an
attack. Each leaves either the old output or the new one (never half a file or half a model), names what it
left, and the next run completes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
if not (SHARED / "nltk_data").is_dir():
    pytest.skip(f"offline NLTK data not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)

from robustness.cli import main  # noqa: E402

SENTENCES = ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic", "so bored",
             "warm and funny", "terrible"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "sst2").mkdir()
    frame = pd.DataFrame({"sentence": SENTENCES, "label": [1, 0, 1, 0, 1, 0], "idx": range(6)})
    frame.to_parquet(root / "sst2" / "validation.parquet")
    frame.to_parquet(root / "sst2" / "train.parquet")
    return root


@pytest.fixture(scope="module")
def long_data_dir(tmp_path_factory) -> Path:
    """60 sentences: an attack on them runs long enough to be stopped in the middle."""
    root = tmp_path_factory.mktemp("long")
    (root / "sst2").mkdir()
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    sentences = [f"the {w} film number {i} was a {words[(i + 1) % 6]} and long evening at the cinema"
                 for i, w in enumerate(words * 10)]
    pd.DataFrame({"sentence": sentences, "label": [i % 2 for i in range(60)], "idx": range(60)}).to_parquet(
        root / "sst2" / "validation.parquet")
    return root


def _suite(tmp_path: Path, model_dir: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text('[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 3\nquery_budget = 5\nbatch_size = 4\n'
                    f'recipes = ["deepwordbug"]\n[[models]]\nid = "tp"\npath = "{model_dir}"\nsettings = [1]\n')
    return path


def test_bench_killed_in_report_stage_resumes(tmp_path, tiny_pabee_dir, data_dir, monkeypatch):
    from robustness import outputs

    argv = ["bench", str(_suite(tmp_path, tiny_pabee_dir)), "--out", str(tmp_path / "out"), "--data-dir",
            str(data_dir), "--nltk-data", str(SHARED / "nltk_data"), "--workers", "1"]
    real = outputs.write_bytes_atomic

    def killed_at_html(path, data):
        if Path(path).name == "report.html":
            real(Path(path).with_name(f".{Path(path).name}.x1.tmp"), data[:10])  # a tmp file, as a kill leaves
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(outputs, "write_bytes_atomic", killed_at_html)
    assert main(argv) == 130
    out = tmp_path / "out"
    assert not (out / "report.html").exists() and (out / "report.md").read_text().startswith("<!--")
    monkeypatch.setattr(outputs, "write_bytes_atomic", real)
    (out / "report.md").write_text("")  # what a non-atomic writer killed at its first byte left
    assert main(argv) == 0  # our own interrupted writes are recognised: nothing blocks the out dir
    assert "data:image/png;base64" in (out / "report.html").read_text()
    assert (out / "report.md").read_text().startswith("<!--")


def test_train_killed_while_saving_leaves_no_model(tmp_path, tiny_backbone_dir, data_dir, monkeypatch, capsys):
    from robustness.models import pabee

    out = tmp_path / "model"
    argv = ["train", "--backbone", str(tiny_backbone_dir), "--data-dir", str(data_dir), "--out", str(out),
            "--batch-size", "4"]

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pabee.PabeeModel, "save_pretrained", killed)
    assert main(argv) == 130
    assert not out.exists() and os.listdir(tmp_path) == []  # the half-saved temporary directory is gone
    monkeypatch.undo()
    assert main(argv) == 0 and json.loads((out / "train.json").read_text())["num_train"] == 6


def test_train_sigkill_leaves_old_model_or_new_one(tmp_path, tiny_backbone_dir, data_dir):
    """SIGKILL (no cleanup) at several moments: the target is always absent or a whole model; a leftover
    temporary directory is named as a half-saved model."""
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "robustness.cli", "train", "--backbone", str(tiny_backbone_dir), "--data-dir",
           str(data_dir), "--out", str(out), "--batch-size", "4", "--overwrite"]
    for delay in (2.0, 6.0, 9.0):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():
            model, _ = load_model_and_tokenizer(out)  # whole, or it would not be there
            assert (out / "train.json").is_file() and model.head == "pabee"
        for partial in tmp_path.glob(".model.partial-*"):
            with pytest.raises(ValueError, match="half-saved"):
                check_model_dir(partial)
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    load_model_and_tokenizer(out)
    shutil.rmtree(out)


def test_sigterm_records_interrupted_with_true_count(tmp_path, tiny_pabee_dir, long_data_dir):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "robustness.cli", "attack", "--model", str(tiny_pabee_dir), "--recipe", "deepwordbug",
           "--patience", "1", "--n", "60", "--query-budget", "400", "--batch-size", "1",
           "--data-dir", str(long_data_dir),
           "--nltk-data", str(SHARED / "nltk_data"), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    records = out / "records.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (records.is_file() and records.read_text().count("\n") >= 1):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    info = json.loads((out / "run.json").read_text())
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert proc.returncode == 143 and "interrupted by SIGTERM" in err
    assert info["status"] == "interrupted" and info["signal"] == "SIGTERM"
    assert info["num_records"] == records.read_text().count("\n") >= 1


def test_bench_interrupted_runs_say_so(tmp_path, tiny_pabee_dir, data_dir, monkeypatch):
    from robustness.suite import executors

    argv = ["bench", str(_suite(tmp_path, tiny_pabee_dir)), "--out", str(tmp_path / "out"), "--data-dir",
            str(data_dir), "--nltk-data", str(SHARED / "nltk_data"), "--workers", "1", "--shard-size", "1"]
    real = executors.Driver.accept
    calls = []

    def stopped_after_two_shards(self, results):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(self, results)

    monkeypatch.setattr(executors.Driver, "accept", stopped_after_two_shards)
    assert main(argv) == 130
    (run,) = (tmp_path / "out" / "runs").iterdir()
    info = json.loads((run / "run.json").read_text())
    # the third task ended but its shard was never written: its record was salvaged as it was made
    assert len(list(run.glob("shards/[0-9]*.json"))) == 2 and len(list(run.glob("shards/partial-*.jsonl"))) == 1
    assert info["status"] == "interrupted" and info["signal"] == "SIGINT" and info["num_records"] == 3
    from robustness.schema.timings import read_timings

    stopped = read_timings(tmp_path / "out")  # the stages that ran, the attacks recorded as stopped
    assert list(stopped["stage"]) == ["train", "calibrate", "preregister", "attacks"]
    assert list(stopped["status"]) == ["complete"] * 3 + ["interrupted"] and stopped["signal"].iloc[-1] == "SIGINT"
    monkeypatch.undo()
    assert main(argv) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    resumed = read_timings(tmp_path / "out").iloc[len(stopped):]
    assert resumed["invocation"].nunique() == 1 and set(resumed["invocation"]).isdisjoint(stopped["invocation"])
    assert resumed.set_index("stage").loc["attacks", "status"] == "complete"


def test_bench_rerun_changed_moves_old_runs_aside(tmp_path, tiny_pabee_dir, data_dir, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_pabee_dir, model_dir)
    argv = ["bench", str(_suite(tmp_path, model_dir)), "--out", str(tmp_path / "out"), "--data-dir",
            str(data_dir), "--nltk-data", str(SHARED / "nltk_data"), "--workers", "1"]
    assert main(argv) == 0
    (run,) = (tmp_path / "out" / "runs").glob("tp-*")
    old = json.loads((run / "spec.json").read_text())["model_fingerprint"]
    old_records = (run / "records.jsonl").read_bytes()
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(model_dir / "model.safetensors")  # the model is retrained at the same path
    save_file({k: v * 2 if v.dtype == torch.float32 else v for k, v in weights.items()},
              model_dir / "model.safetensors", metadata={"format": "pt"})
    capsys.readouterr()
    assert main(argv) == 2 and "--rerun-changed" in capsys.readouterr().err
    assert main([*argv, "--rerun-changed"]) == 0
    new = json.loads((run / "spec.json").read_text())["model_fingerprint"]
    assert new != old and json.loads((run / "run.json").read_text())["status"] == "complete"
    (kept,) = (tmp_path / "out" / "runs" / ".replaced").iterdir()
    assert kept.name == f"{run.name}-{old}" and (kept / "records.jsonl").read_bytes() == old_records


def _group_alive(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies count as gone)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to list a process group")
def test_ctrl_c_stops_every_worker_keeps_shards_and_resumes(tmp_path, tiny_pabee_dir, long_data_dir):
    """Ctrl-C (SIGINT to the terminal's process group) during a 2-worker bench: exit 130, no process of the
    group left, the shards written so far kept; the rerun resumes from them and completes."""
    suite = tmp_path / "long.toml"
    suite.write_text('[suite]\nname = "long"\ndataset = "glue/sst2"\nn = 24\nquery_budget = 400\nbatch_size = 1\n'
                     f'recipes = ["deepwordbug"]\n[[models]]\nid = "tp"\npath = "{tiny_pabee_dir}"\n'
                     'settings = [1, "full"]\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "robustness.cli", "bench", str(suite), "--out", str(out), "--data-dir",
           str(long_data_dir), "--nltk-data", str(SHARED / "nltk_data"), "--workers", "2", "--shard-size", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal job has
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not any(out.glob("runs/*/shards/*.json")):
        time.sleep(0.1)
    if proc.poll() is not None:
        pytest.fail(f"bench ended (exit {proc.returncode}) before a shard was written: {proc.stderr.read()}")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    gone = time.time() + 30
    while _group_alive(proc.pid) and time.time() < gone:
        time.sleep(0.2)
    assert _group_alive(proc.pid) == []
    if proc.returncode == 0:
        pytest.skip("the suite finished before SIGINT arrived")
    assert proc.returncode == 130, err
    kept = {}
    for shard in out.glob("runs/*/shards/*.json"):
        for record in json.loads(shard.read_text())["records"]:
            kept[(shard.parent.parent.name, record["example_id"])] = record
    assert kept
    for run_json in out.glob("runs/*/run.json"):
        info = json.loads(run_json.read_text())
        assert info["status"] in ("interrupted", "complete") and info.get("signal", "SIGINT") == "SIGINT"
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    final = {}
    for run in out.glob("runs/*"):
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
        for line in (run / "records.jsonl").read_text().splitlines():
            record = json.loads(line)
            final[(run.name, record["example_id"])] = record
    assert len(final) == 48  # 24 examples x 2 settings
    assert all(final[key] == record for key, record in kept.items())  # kept, not redone (same attack_time_s)


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (by parent id; zombies count as gone)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_ray_address_with_nothing_listening_fails_within_20_s(tmp_path, tiny_pabee_dir, data_dir):
    """The whole command, imports included: one line naming the address, exit 2, no output written."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "robustness.cli", "bench", str(_suite(tmp_path, tiny_pabee_dir)), "--out",
           str(tmp_path / "out"), "--data-dir", str(data_dir), "--engine", "ray", "--address", f"127.0.0.1:{port}"]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2 and elapsed < 20, (elapsed, proc.stderr)
    assert proc.stderr.strip().splitlines() == [f"robustness bench: error: --address 127.0.0.1:{port}: no Ray "
                                                "cluster answers there (Connection refused); start one with `ray "
                                                "start --head` or fix the address"]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to list processes")
def test_ctrl_c_stops_a_ray_bench_and_every_process_it_started(tmp_path, tiny_pabee_dir, long_data_dir):
    """Ctrl-C (SIGINT to the process group) while a local Ray instance attacks: exit 130 within seconds, and
    every process the command started (Ray's GCS, raylet and workers included) is gone soon after."""
    pytest.importorskip("ray")
    suite = tmp_path / "long.toml"
    suite.write_text('[suite]\nname = "long"\ndataset = "glue/sst2"\nn = 24\nquery_budget = 400\nbatch_size = 1\n'
                     f'recipes = ["deepwordbug"]\n[[models]]\nid = "tp"\npath = "{tiny_pabee_dir}"\n'
                     'settings = [1, "full"]\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "robustness.cli", "bench", str(suite), "--out", str(out), "--data-dir",
           str(long_data_dir), "--nltk-data", str(SHARED / "nltk_data"), "--workers", "1", "--shard-size", "1",
           "--engine", "ray"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 240
    for line in proc.stdout:  # the attacks are under way once bench says how many tasks go to Ray
        if " tasks (" in line or time.time() > deadline:
            break
    time.sleep(3)  # the actor is importing or attacking
    if proc.poll() is not None:
        pytest.fail(f"bench ended (exit {proc.returncode}) before it was interrupted: {proc.stderr.read()}")
    started = _descendants(proc.pid)
    assert started  # Ray's processes
    os.killpg(proc.pid, signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    stopped_s = time.monotonic() - start
    if proc.returncode == 0:
        pytest.skip("the suite finished before SIGINT arrived")
    assert proc.returncode == 130 and stopped_s < 30, (stopped_s, err[-2000:])
    assert "interrupted by SIGINT" in err
    gone = time.time() + 30
    while _alive(started) and time.time() < gone:
        time.sleep(0.2)
    assert _alive(started) == set()
    for run_json in out.glob("runs/*/run.json"):
        assert json.loads(run_json.read_text())["status"] in ("interrupted", "complete")


_SLOW_BENCH = """
import sys, time
from robustness.attack import runner
from robustness.cli import main

real = runner.attack_example


def slow(attack, wrapper, columns, text, label, ids, spec):  # forked workers inherit it
    time.sleep(float(sys.argv[2]))
    with open(sys.argv[1], "a") as log:
        log.write(f"{spec.run_id} {ids[0]}\\n")
    return real(attack, wrapper, columns, text, label, ids, spec)


runner.attack_example = slow
sys.exit(main(sys.argv[3:]))
"""


def _records_of(out: Path) -> dict[tuple[str, int], dict]:
    found = {}
    for run in out.glob("runs/*"):
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
        assert not (run / "shards").exists()
        records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        assert [r["example_id"] for r in records] == list(range(len(records)))  # in example order
        found.update({(run.name, r["example_id"]): r for r in records})
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to list a process group")
def test_sigkill_mid_task_keeps_finished_examples_and_resumes_with_the_rest(tmp_path, tiny_pabee_dir,
                                                                             long_data_dir):
    """SIGKILL of every process of a 2-worker bench while both workers are in the middle of a task (no task has
    ended, no shard is written): the examples already attacked are kept (salvaged), the rerun attacks only the
    others, and the records equal those of an uninterrupted bench."""
    suite = tmp_path / "long.toml"
    suite.write_text('[suite]\nname = "long"\ndataset = "glue/sst2"\nn = 8\nquery_budget = 50\nbatch_size = 1\n'
                     f'recipes = ["deepwordbug"]\n[[models]]\nid = "tp"\npath = "{tiny_pabee_dir}"\n'
                     'settings = [1, "full"]\n')
    script = tmp_path / "slow_bench.py"
    script.write_text(_SLOW_BENCH)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def cmd(out: Path, log: Path, delay: float) -> list[str]:
        return [sys.executable, str(script), str(log), str(delay), "bench", str(suite), "--out", str(out),
                "--data-dir", str(long_data_dir), "--nltk-data", str(SHARED / "nltk_data"), "--workers", "2",
                "--shard-size", "4"]

    out, killed_log = tmp_path / "out", tmp_path / "killed.log"
    proc = subprocess.Popen(cmd(out, killed_log, 0.4), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)

    def salvaged() -> int:
        return sum(p.read_text().count("\n") for p in out.glob("runs/*/shards/partial-*.jsonl"))

    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and salvaged() < 4:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail(f"bench ended (exit {proc.returncode}) before it was killed: {proc.stderr.read()}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    gone = time.time() + 30
    while _group_alive(proc.pid) and time.time() < gone:
        time.sleep(0.2)
    assert not list(out.glob("runs/*/shards/[0-9]*.json")), "a task ended before the kill: too fast to test"
    kept = {}
    for path in out.glob("runs/*/shards/partial-*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)["record"]
            kept[(path.parent.parent.name, record["example_id"])] = record
    assert len(kept) >= 4

    resumed_log = tmp_path / "resumed.log"
    assert subprocess.run(cmd(out, resumed_log, 0.0), env=env, capture_output=True, timeout=600).returncode == 0
    attacked = [tuple(line.split()) for line in resumed_log.read_text().splitlines()]
    assert len(attacked) == 16 - len(kept)
    assert {(run, int(eid)) for run, eid in attacked}.isdisjoint(kept)  # only the examples without a record
    final = _records_of(out)
    assert len(final) == 16 and all(final[key] == record for key, record in kept.items())  # kept, not redone

    straight = tmp_path / "straight"
    assert subprocess.run(cmd(straight, tmp_path / "straight.log", 0.0), env=env, capture_output=True,
                          timeout=600).returncode == 0

    def untimed(records: dict) -> dict:
        return {key: {k: v for k, v in r.items() if k != "attack_time_s"} for key, r in records.items()}

    assert untimed(final) == untimed(_records_of(straight))
