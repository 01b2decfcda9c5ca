"""The stage timings file: hand-made lines -> exact totals; a torn last line is skipped; anything else malformed is
one line naming the file; a packed (gzipped) file reads the same."""

from __future__ import annotations

import gzip
import json

import pytest

from robustness.schema.timings import TIMINGS_FILE, append_timing, read_timings, stage_totals


def _line(suite: str, stage: str, invocation: str, wall: float, cpu: float, status: str = "complete") -> dict:
    return {"schema_version": 1, "suite": suite, "stage": stage, "invocation": invocation,
            "started_at": "2026-12-07T20:00:00+00:00", "wall_time_s": wall, "cpu_time_s": cpu, "status": status,
            "signal": "SIGTERM" if status == "interrupted" else None, "engine": "local", "part": None,
            "cpu_count": 2, "command": "robustness bench s.toml --out o"}


LINES = [
    _line("s", "train", "a", 100.0, 190.0, "interrupted"),
    _line("s", "train", "b", 50.5, 99.5),
    _line("s", "calibrate", "b", 1.25, 1.0),
    _line("s", "calibrate", "b", 0.75, 0.5),  # twice in one invocation: after the select rule chose
    _line("s", "attacks", "b", 30.0, 58.0, "failed"),
    _line("s", "report", "c", 2.0, 1.5),
    _line("s", "attacks", "c", 10.0, 20.0),
    _line("t", "attacks", "d", 4.0, 8.0),
]


def _write(out, lines, tail: bytes = b"") -> None:
    out.mkdir(exist_ok=True)
    (out / TIMINGS_FILE).write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines) + tail)


def test_hand_made_lines_give_exact_totals_in_stage_order(tmp_path):
    _write(tmp_path, LINES)
    frame = read_timings(tmp_path)
    assert len(frame) == 8 and list(frame["stage"])[:3] == ["train", "train", "calibrate"]
    totals = stage_totals(frame)
    rows = [tuple(r) for r in totals.itertuples(index=False)]
    assert rows == [("s", "train", 2, 150.5, 289.5, 1, 0),
                    ("s", "calibrate", 1, 2.0, 1.5, 0, 0),
                    ("s", "attacks", 2, 40.0, 78.0, 0, 1),
                    ("s", "report", 1, 2.0, 1.5, 0, 0),
                    ("t", "attacks", 1, 4.0, 8.0, 0, 0)]


def test_a_torn_last_line_is_skipped_and_cut_before_the_next_append(tmp_path):
    _write(tmp_path, LINES[:2], tail=b'{"schema_version": 1, "suite": "s", "sta')
    assert list(read_timings(tmp_path)["invocation"]) == ["a", "b"]
    append_timing(tmp_path, LINES[2])
    assert list(read_timings(tmp_path)["stage"]) == ["train", "train", "calibrate"]
    assert (tmp_path / TIMINGS_FILE).read_bytes().count(b"\n") == 3


@pytest.mark.parametrize("bad, says", [
    (b"not json\n", "line 2: not a valid timing line"),
    (json.dumps([1]).encode() + b"\n", "a JSON list, not an object"),
    (json.dumps({**LINES[0], "status": "done"}).encode() + b"\n", "status is 'done'"),
    (json.dumps({**LINES[0], "wall_time_s": -1.0}).encode() + b"\n", "wall_time_s is -1.0"),
    (json.dumps({**LINES[0], "cpu_time_s": "3"}).encode() + b"\n", "cpu_time_s is '3'"),
    (json.dumps({k: v for k, v in LINES[0].items() if k != "stage"}).encode() + b"\n", "missing fields: stage"),
    (json.dumps({**LINES[0], "schema_version": 9}).encode() + b"\n", "unknown schema_version 9"),
])
def test_a_malformed_line_is_one_line_naming_the_file(tmp_path, bad, says):
    _write(tmp_path, LINES[:1], tail=bad + json.dumps(LINES[1]).encode() + b"\n")
    with pytest.raises(ValueError) as caught:
        read_timings(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / TIMINGS_FILE}, line 2") and says in message
    assert len(message) < 200 + len(str(tmp_path))


def test_a_folder_without_the_file_or_no_folder_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=f"holds no {TIMINGS_FILE}"):
        read_timings(tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        read_timings(tmp_path / "missing")
    with pytest.raises(ValueError, match="status is"):
        append_timing(tmp_path, {**LINES[0], "status": "ok"})
    assert not (tmp_path / TIMINGS_FILE).exists()


def test_a_packed_file_reads_the_same(tmp_path):
    _write(tmp_path, LINES)
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / (TIMINGS_FILE + ".gz")).write_bytes(gzip.compress((tmp_path / TIMINGS_FILE).read_bytes()))
    assert stage_totals(read_timings(packed)).equals(stage_totals(read_timings(tmp_path)))
