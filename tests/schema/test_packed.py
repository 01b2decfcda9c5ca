"""Packed files (robustness.schema.packed): a ``.jsonl.gz`` reads as the ``.jsonl`` it was packed from."""

from __future__ import annotations

import gzip
import json

import pytest

from robustness.schema.packed import check_not_packed, compress, packed_path, read_stored, stored_path
from robustness.schema.records import read_records


def _record(example_id: int) -> dict:
    return {"schema_version": 3, "example_id": example_id, "dataset_index": example_id, "label": 1,
            "result": "skipped", "orig_pred": 0, "adv_pred": None, "orig_text": "t é", "adv_text": None,
            "num_queries": 1, "num_forward_passes": 1, "layers_computed": 2, "layers_encoded": 2,
            "query_mean_exit_layer": 2.0, "orig_exit_layer": 2, "adv_exit_layer": None,
            "orig_layer_preds": [0, 0], "adv_layer_preds": None, "words_changed": None, "words_total": 2,
            "attack_time_s": 0.1, "goal": "accuracy", "goal_target": None, "slowdown_score": None}


def test_read_stored_finds_either_form_and_gives_the_same_bytes(tmp_path):
    plain = tmp_path / "a" / "records.jsonl"
    plain.parent.mkdir()
    data = "".join(json.dumps(_record(i), ensure_ascii=False) + "\n" for i in range(3)).encode() + b'{"torn'
    assert read_stored(plain) is None and stored_path(plain) is None
    plain.write_bytes(data)
    assert stored_path(plain) == plain and read_stored(plain) == data
    packed = tmp_path / "b" / "records.jsonl"
    packed.parent.mkdir()
    packed_path(packed).write_bytes(compress(data))
    assert packed_path(packed).name == "records.jsonl.gz" and stored_path(packed) == packed_path(packed)
    assert read_stored(packed) == data
    # the same records, torn last line dropped, from either form
    assert read_records(packed) == read_records(plain) and [r["example_id"] for r in read_records(packed)] == [0, 1, 2]


def test_compress_is_reproducible_and_plain_gzip():
    data = b'{"a": 1}\n' * 50
    assert compress(data) == compress(data) and gzip.decompress(compress(data)) == data


def test_both_forms_or_a_torn_gzip_are_refused(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"")
    packed_path(path).write_bytes(compress(b""))
    with pytest.raises(ValueError, match="holds both records.jsonl and records.jsonl.gz"):
        read_records(path)
    path.unlink()
    packed_path(path).write_bytes(compress(json.dumps(_record(0)).encode() + b"\n")[:-6])
    with pytest.raises(ValueError, match="records.jsonl.gz is not a whole gzip file"):
        read_records(path)


def test_stages_that_append_refuse_a_packed_copy(tmp_path):
    check_not_packed(tmp_path, "quality")  # a plain run
    packed_path(tmp_path / "records.jsonl").write_bytes(compress(b""))
    with pytest.raises(ValueError, match=r"is a packed copy \(records.jsonl.gz\): run quality on the original run"):
        check_not_packed(tmp_path, "quality")
