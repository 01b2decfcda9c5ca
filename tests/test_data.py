from __future__ import annotations

import pandas as pd
import pytest

from robustness.data import dataset_info, load_examples, sample_indices


@pytest.fixture()
def local_data(tmp_path):
    sst2 = tmp_path / "sst2"
    sst2.mkdir()
    pd.DataFrame({"sentence": [f"text {i}" for i in range(10)], "label": [i % 2 for i in range(10)],
                  "idx": range(10)}).to_parquet(sst2 / "validation.parquet")
    qnli = tmp_path / "qnli"
    qnli.mkdir()
    pd.DataFrame({"question": ["q0", "q1"], "sentence": ["s0", "s1"], "label": [0, 1]}).to_csv(
        qnli / "validation.csv", index=False)
    return tmp_path


def test_local_parquet_and_aliases(local_data):
    examples = load_examples("sst2", "validation", data_dir=local_data)
    assert examples.info.name == "glue/sst2"
    assert examples.texts[3] == "text 3" and examples.labels[3] == 1
    assert examples.label_names == ["negative", "positive"]
    assert examples.indices == list(range(10))


def test_pairs_from_csv(local_data):
    examples = load_examples("glue/qnli", "validation", data_dir=local_data)
    assert examples.is_pair
    assert examples.texts == [("q0", "s0"), ("q1", "s1")]
    assert examples.label_names[0] == "entailment"


def test_limit_is_deterministic_and_ordered(local_data):
    a = load_examples("sst2", "validation", data_dir=local_data, limit=4, seed=3)
    b = load_examples("sst2", "validation", data_dir=local_data, limit=4, seed=3)
    c = load_examples("sst2", "validation", data_dir=local_data, limit=4, seed=4)
    assert a.indices == b.indices == sorted(a.indices)
    assert a.indices != c.indices
    assert a.texts == [f"text {i}" for i in a.indices]
    # the positions alone, without reading the split again (bench's division draws them so)
    assert sample_indices(10, 4, 3) == a.indices and sample_indices(10, 4, 4) == c.indices
    assert sample_indices(10, None, 3) == sample_indices(10, 10, 3) == list(range(10))


def test_env_var_data_dir(local_data, monkeypatch):
    monkeypatch.setenv("ROBUSTNESS_DATA_DIR", str(local_data))
    assert len(load_examples("glue/sst2", "validation")) == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "nope"}, "unknown dataset 'nope'"),
        ({"name": "sst2", "split": "test"}, "split 'test' of glue/sst2 not found"),
        ({"name": "sst2", "limit": 0}, "limit must be >= 1"),
    ],
)
def test_clear_errors(local_data, kwargs, message):
    kwargs = {"split": "validation", **kwargs}
    with pytest.raises(ValueError, match=message):
        load_examples(kwargs.pop("name"), kwargs.pop("split"), data_dir=local_data, **kwargs)


def test_missing_columns(local_data):
    pd.DataFrame({"text": ["a"], "label": [0]}).to_parquet(local_data / "sst2" / "train.parquet")
    with pytest.raises(ValueError, match=r"missing columns \['sentence'\]"):
        load_examples("sst2", "train", data_dir=local_data)


def test_missing_data_dir(tmp_path):
    with pytest.raises(ValueError, match="data directory not found"):
        load_examples("sst2", "validation", data_dir=tmp_path / "absent")


def test_registry_label_names():
    assert dataset_info("ag_news").label_names == ("World", "Sports", "Business", "Sci/Tech")
