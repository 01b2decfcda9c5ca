"""Fixtures that write fake run directories (spec.json, run.json, records.jsonl) with hand-made records.

Four examples, L = 3, two recipes. Per example: (label, clean layer preds, adversarial layer preds).
PABEE exits and results follow from the preds (see ``fake_records``); the baseline keeps only the last
layer. Expected values for patience 1 and the baseline are worked out by hand in test_metrics.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_runs import EXAMPLES, NUM_LAYERS, fake_records

from robustness.suite.specs import RunSpec


def write_run(root: Path, model_id: str, head: str, patience: int | None, recipe: str,
              status: str = "complete", records: list[dict] | None = None, **spec_fields) -> Path:
    """A run directory; ``spec_fields`` override RunSpec fields (``stock``, ``seed``, ...)."""
    rows = records if records is not None else fake_records(patience, single_head=head == "full")
    # a complete run's spec.json must agree with its records (robustness.requests): n is their number
    n = len(rows) if status == "complete" else max(len(rows), len(EXAMPLES))
    spec = RunSpec(model_id=model_id, model_dir=f"/models/{model_id}", recipe=recipe, dataset="sst2",
                   setting=patience, **{"n": n, "seed": 7, **spec_fields})
    run_dir = root / "runs" / spec.run_id
    run_dir.mkdir(parents=True)
    full = {**spec.to_dict(), "run_id": spec.run_id, "num_layers": NUM_LAYERS, "head": head,
            "label_names": ["negative", "positive"]}
    (run_dir / "spec.json").write_text(json.dumps(full))
    info = {"status": status, "run_id": spec.run_id, "started_at": "2025-01-01T00:00:00Z",
            "finished_at": "2025-01-01T00:01:00Z", "seed": 7,
            "versions": {"robustness": "0.1.0", "torch": "2.13.0", "transformers": "4.57.6",
                         "textattack": "0.3.11", "python": "3.12"},
            "timings": {"wall_time_s": 60.0, "attack_time_s": 2.0}, "num_records": len(rows),
            "command": f"robustness attack --model {model_id} --recipe {recipe}"}
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


@pytest.fixture
def make_records():
    """The :func:`fake_records` helper."""
    return fake_records


@pytest.fixture
def make_run():
    """The :func:`write_run` helper, for tests that need extra runs."""
    return write_run


def build_suite(out: Path) -> Path:
    """Baseline + PABEE at patience 1, 2, full, for two recipes, and one unfinished run."""
    for recipe in ("textfooler", "deepwordbug"):
        write_run(out, "bert-base", "full", None, recipe)
        for patience in (1, 2, None):
            write_run(out, "pabee", "pabee", patience, recipe)
    write_run(out, "pabee-unfinished", "pabee", 1, "textfooler", status="running", records=fake_records(1)[:2])
    return out


@pytest.fixture
def suite_out(tmp_path: Path) -> Path:
    """A suite out dir written by :func:`build_suite` (fresh per test)."""
    return build_suite(tmp_path / "suite")


@pytest.fixture(scope="session")
def shared_suite_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same suite, written once per session, for tests that only read it."""
    return build_suite(tmp_path_factory.mktemp("shared") / "suite")


@pytest.fixture
def run_dirs(suite_out: Path) -> dict[str, Path]:
    """Run dirs by short name (``base``, ``p1``, ``p2``, ``pfull``) for the textfooler recipe."""
    names = {"bert-base-pfull": "base", "pabee-p1": "p1", "pabee-p2": "p2", "pabee-pfull": "pfull"}
    found = {}
    for path in (suite_out / "runs").iterdir():
        prefix, recipe = path.name.split("_")[:2]
        if recipe == "textfooler" and prefix in names:
            found[names[prefix]] = path
    return found
