"""Dataset registry: a hub name or a local directory -> texts, labels, label names.

Local copies mirror the hub datasets' columns. A data directory may be the dataset's own folder
(holding ``<split>.parquet`` or ``<split>.csv``) or a parent holding one folder per dataset, named after
the last part of the hub name (``<data_dir>/sst2/validation.parquet`` for ``glue/sst2``). The data
directory comes from an argument (``--data-dir``, a suite's ``data_dir``) or ``ROBUSTNESS_DATA_DIR``;
without one, the dataset is loaded from the Hugging Face hub.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DATA_DIR_ENV = "ROBUSTNESS_DATA_DIR"
#: Longest text accepted (characters). Longer examples are refused, not truncated: an attack on a
#: 100,000-character text ran for minutes and took gigabytes, and the model would only see its start.
MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class DatasetInfo:
    """What we know about a registered dataset."""

    name: str
    hub_path: tuple[str, ...]  # arguments of ``datasets.load_dataset``
    text_columns: tuple[str, ...]  # one column, or two for sentence pairs
    label_names: tuple[str, ...]
    splits: tuple[str, ...]


REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("glue/sst2", ("glue", "sst2"), ("sentence",), ("negative", "positive"), ("train", "validation")),
        DatasetInfo(
            "rotten_tomatoes", ("rotten_tomatoes",), ("text",), ("negative", "positive"),
            ("train", "validation", "test"),
        ),
        DatasetInfo("imdb", ("imdb",), ("text",), ("negative", "positive"), ("train", "test")),
        DatasetInfo("ag_news", ("ag_news",), ("text",), ("World", "Sports", "Business", "Sci/Tech"), ("train", "test")),
        DatasetInfo(
            "glue/qnli", ("glue", "qnli"), ("question", "sentence"), ("entailment", "not_entailment"),
            ("train", "validation"),
        ),
    )
}
ALIASES = {"sst2": "glue/sst2", "qnli": "glue/qnli", "glue/sst-2": "glue/sst2"}

Text = str | tuple[str, str]


@dataclass(frozen=True)
class Examples:
    """A (sub-sampled) split: ``texts[i]`` is a string, or a (first, second) pair for pair datasets."""

    info: DatasetInfo
    split: str
    texts: list[Text]
    labels: list[int]
    indices: list[int]  # row of each example in the full split

    @property
    def label_names(self) -> list[str]:
        return list(self.info.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.info.text_columns) == 2

    def __len__(self) -> int:
        return len(self.labels)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name`` (aliases accepted); ``ValueError`` if unknown."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[key]


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The explicit ``data_dir``, else ``$ROBUSTNESS_DATA_DIR``, else None (use the hub)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise ValueError(f"data directory not found: {path}")
    return path


def _local_split_file(info: DatasetInfo, data_dir: Path, split: str) -> Path:
    folder = data_dir / info.name.split("/")[-1]
    for base in (folder, data_dir):
        for ext in ("parquet", "csv"):
            candidate = base / f"{split}.{ext}"
            if candidate.is_file():
                return candidate
    available = sorted({p.stem for base in (folder, data_dir) if base.is_dir() for p in base.glob("*.parquet")})
    raise ValueError(
        f"split {split!r} of {info.name} not found under {data_dir} (available: {', '.join(available) or 'none'})"
    )


def _read_local(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, encoding="utf-8")
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types for a corrupt file
        message = " ".join(str(exc).split())[:200]
        raise ValueError(f"{path}: cannot read it as {path.suffix[1:]}: {message}") from None


def _load_frame(info: DatasetInfo, split: str, data_dir: Path | None) -> tuple[pd.DataFrame, str]:
    """The split as a DataFrame, and where it came from (a file, or ``<hub name>/<split>``)."""
    if data_dir is not None:
        path = _local_split_file(info, data_dir, split)
        return _read_local(path), str(path)
    if split not in info.splits:
        raise ValueError(f"{info.name} has no split {split!r}; splits: {', '.join(info.splits)}")
    import datasets  # imported lazily: slow, and unneeded for local data

    return datasets.load_dataset(*info.hub_path, split=split).to_pandas(), f"{info.name}/{split}"


def _checked_labels(values: pd.Series, num_labels: int, source: str) -> list[int]:
    """Integer labels in 0..num_labels-1; ``ValueError`` naming the source for anything else."""
    if values.isna().any():
        raise ValueError(f"{source}: label is missing in row {int(values.isna().to_numpy().argmax())}")
    if not (pd.api.types.is_integer_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise ValueError(f"{source}: labels must be integers 0..{num_labels - 1}, got {values.dtype} values "
                         f"such as {values.iloc[0]!r}")
    labels = [int(v) for v in values]
    bad = sorted({v for v in labels if not 0 <= v < num_labels})
    if bad:
        raise ValueError(f"{source} has labels {bad} outside 0..{num_labels - 1} (unlabelled split?)")
    return labels


def _checked_texts(values: pd.Series, source: str) -> list[str]:
    """Non-empty strings of at most MAX_TEXT_CHARS characters; ``ValueError`` naming the source and row."""
    texts = []
    for row, value in zip(values.index, values, strict=True):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{source}: {values.name!r} in row {row} is empty or not text ({value!r})")
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"{source}: {values.name!r} in row {row} has {len(value)} characters, more than "
                             f"the limit of {MAX_TEXT_CHARS}")
        texts.append(value)
    return texts


def sample_indices(size: int, limit: int | None, seed: int) -> list[int]:
    """The row positions :func:`load_examples` keeps of a split of ``size`` rows: all of them, or with ``limit``
    a deterministic random subset of ``limit`` drawn with ``seed``, in their original order."""
    indices = list(range(size))
    if limit is not None and limit < size:
        indices = sorted(random.Random(seed).sample(indices, limit))
    return indices


def load_examples(
    name: str, split: str, *, data_dir: str | os.PathLike | None = None, limit: int | None = None, seed: int = 0
) -> Examples:
    """Load ``split`` of dataset ``name``; with ``limit``, a deterministic random subset of ``limit`` rows
    (the same ``seed`` always gives the same rows, kept in their original order). ``ValueError`` naming the
    file for an empty split, fewer rows than ``limit``, missing/empty/overlong texts or non-integer labels."""
    info = dataset_info(name)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    frame, source = _load_frame(info, split, resolve_data_dir(data_dir))
    missing = [c for c in (*info.text_columns, "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} is missing columns {missing}; has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{source} has no rows")
    if limit is not None and limit > len(frame):
        raise ValueError(f"{source} has {len(frame)} rows, fewer than the {limit} examples asked for")
    indices = sample_indices(len(frame), limit, seed)
    rows = frame.iloc[indices]
    labels = _checked_labels(rows["label"], len(info.label_names), source)
    columns = [_checked_texts(rows[c], source) for c in info.text_columns]
    texts: list[Text] = list(columns[0]) if len(columns) == 1 else list(zip(columns[0], columns[1], strict=True))
    return Examples(info=info, split=split, texts=texts, labels=labels, indices=indices)
