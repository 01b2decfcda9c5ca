"""Bench records each stage's wall and CPU time (:mod:`robustness.suite.timings`): the status of a stopped or failed
stage, the CPU time of child processes, the lines of a tiny bench, and `pack` / `ls timings` on its output."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustness.cli import main
from robustness.schema.timings import STAGES, TIMINGS_FILE, read_timings
from robustness.signals import Interrupted
from robustness.suite.timings import timed

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / TIMINGS_FILE).read_text().splitlines()]


def test_a_stopped_stage_is_recorded_interrupted_with_its_signal_and_the_stop_goes_on(tmp_path):
    said = []
    with pytest.raises(KeyboardInterrupt):
        with timed(tmp_path, "s", "attacks", log=said.append, engine="local", command="robustness bench x"):
            raise Interrupted("SIGTERM")
    with pytest.raises(KeyboardInterrupt):
        with timed(tmp_path, "s", "train"):
            raise KeyboardInterrupt
    first, second = _lines(tmp_path)
    assert (first["stage"], first["status"], first["signal"], first["engine"]) == ("attacks", "interrupted",
                                                                                  "SIGTERM", "local")
    assert first["command"] == "robustness bench x" and first["cpu_count"] == os.cpu_count()
    assert (second["status"], second["signal"]) == ("interrupted", "SIGINT")  # a plain Ctrl-C
    assert said == [f"[bench] attacks: interrupted, wall {first['wall_time_s']:.1f} s, CPU "
                    f"{first['cpu_time_s']:.1f} s"]


def test_a_failed_stage_is_recorded_failed_and_its_error_goes_on(tmp_path):
    with pytest.raises(ValueError, match="boom"):
        with timed(tmp_path, "s", "report", invocation="i1"):
            raise ValueError("boom")
    with timed(tmp_path, "s", "clean", invocation="i1"):
        pass
    assert [(x["stage"], x["status"], x["invocation"]) for x in _lines(tmp_path)] == [("report", "failed", "i1"),
                                                                                     ("clean", "complete", "i1")]


def test_wall_time_and_the_cpu_time_of_this_process_and_of_its_children(tmp_path):
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n    pass\n"
    with timed(tmp_path, "s", "quality"):
        subprocess.run([sys.executable, "-c", busy], check=True)  # a child burning ~0.3 s of CPU, waited for
    with timed(tmp_path, "s", "report"):
        time.sleep(0.3)  # wall time, no CPU
    child, sleeping = _lines(tmp_path)
    assert child["cpu_time_s"] >= 0.2 and child["wall_time_s"] >= 0.2
    assert sleeping["wall_time_s"] >= 0.3 and sleeping["cpu_time_s"] < 0.1


@pytest.mark.skipif(not (SHARED / "nltk_data").is_dir(), reason=f"offline NLTK data not found under {SHARED}")
def test_bench_records_its_stages_and_pack_and_ls_timings_carry_and_total_them(
        tmp_path, tiny_pabee_dir, tiny_full_dir, write_sst2, capsys):
    write_sst2(tmp_path, ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
                          "i have never been so bored", "warm and funny", "a tedious mess"])
    suite = tmp_path / "tiny.toml"
    suite.write_text('[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 4\nquery_budget = 10\nbatch_size = 4\n'
                     'recipes = ["deepwordbug"]\npatience = [1, "full"]\n'
                     f'[[models]]\nid = "tp"\nhead = "pabee"\npath = "{tiny_pabee_dir}"\n'
                     f'[[models]]\nid = "tf"\nhead = "full"\npath = "{tiny_full_dir}"\n')
    out = tmp_path / "out"
    argv = ["bench", str(suite), "--out", str(out), "--data-dir", str(tmp_path / "data"),
            "--nltk-data", str(SHARED / "nltk_data")]
    assert main(argv) == 0
    lines = _lines(out)
    # no quality or revalidation asked for: every other stage, once, in the order run, all by one invocation
    assert [x["stage"] for x in lines] == [s for s in STAGES if s not in ("quality", "revalidate")]
    assert {x["status"] for x in lines} == {"complete"} and len({x["invocation"] for x in lines}) == 1
    assert {x["suite"] for x in lines} == {"tiny"} and {x["engine"] for x in lines} == {"local"}
    assert lines[0]["command"].startswith("robustness bench ") and lines[0]["part"] is None
    attacks = next(x for x in lines if x["stage"] == "attacks")
    assert attacks["wall_time_s"] > 0 and attacks["cpu_time_s"] > 0
    assert main(argv) == 0  # a second invocation (everything done) adds its own lines
    frame = read_timings(out)
    assert len(frame) == 2 * len(lines) and frame["invocation"].nunique() == 2

    capsys.readouterr()
    assert main(["pack", str(out), "--into", str(tmp_path / "packed")]) == 0
    stored = tmp_path / "packed" / (TIMINGS_FILE + ".gz")
    assert gzip.decompress(stored.read_bytes()) == (out / TIMINGS_FILE).read_bytes()
    printed = {}
    for where in (out, tmp_path / "packed"):
        capsys.readouterr()
        assert main(["ls", "timings", str(where)]) == 0
        printed[where] = capsys.readouterr().out
    text = printed[out]
    assert text == printed[tmp_path / "packed"]
    header, *rows, total = text.strip().splitlines()
    assert header.split() == ["suite", "stage", "invocations", "wall_time_s", "cpu_time_s", "interrupted", "failed"]
    assert [row.split()[:3] for row in rows] == [["tiny", s, "2"] for s in STAGES if s not in ("quality",
                                                                                               "revalidate")]
    assert total == (f"total: wall {frame['wall_time_s'].sum():.1f} s ({frame['wall_time_s'].sum() / 3600:.2f} h), "
                     f"CPU {frame['cpu_time_s'].sum():.1f} s ({frame['cpu_time_s'].sum() / 3600:.2f} h)")

    assert main(["ls", "timings", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{tmp_path / 'data'} holds no {TIMINGS_FILE}" in err
