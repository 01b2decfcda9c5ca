"""Fixtures that write fake run directories (spec.json, run.json, records.jsonl) with hand-made records.

Four examples, L = 3, two recipes. Per example: (label, clean layer preds, adversarial layer preds).
PABEE exits and results follow from the preds (see ``fake_records``); the baseline keeps only the last
layer. Expected values for patience 1 and the baseline are worked out by hand in test_metrics.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustness.suite.specs import RunSpec

NUM_LAYERS = 3
EXAMPLES = [  # label, orig_layer_preds, adv_layer_preds, num_queries, words_changed, words_total
    (1, [1, 1, 0], [0, 0, 1], 10, 1, 5),
    (0, [0, 0, 0], [1, 0, 0], 20, 2, 10),
    (1, [0, 0, 1], [1, 1, 0], 30, 3, 6),
    (0, [0, 0, 0], [0, 0, 1], 6, 1, 4),
]


def pabee_exit(preds: list[int], patience: int | None) -> int:
    """The PABEE rule on one example's layer predictions (layers 1..L)."""
    if patience is None:
        return len(preds)
    counter = 0
    for i in range(1, len(preds)):
        counter = counter + 1 if preds[i] == preds[i - 1] else 0
        if counter == patience:
            return i + 1
    return len(preds)


def fake_records(patience: int | None, single_head: bool = False) -> list[dict]:
    records = []
    for example_id, (label, orig_lp, adv_lp, queries, changed, total) in enumerate(EXAMPLES):
        orig_exit = pabee_exit(orig_lp, patience)
        orig_pred = orig_lp[orig_exit - 1]
        skipped = orig_pred != label
        adv_exit = None if skipped else pabee_exit(adv_lp, patience)
        adv_pred = None if skipped else adv_lp[adv_exit - 1]
        result = "skipped" if skipped else ("succeeded" if adv_pred != label else "failed")
        keep = (lambda lp: lp[-1:]) if single_head else (lambda lp: list(lp))
        records.append({
            "schema_version": 2, "example_id": example_id, "dataset_index": 100 + example_id, "label": label,
            "result": result, "orig_pred": orig_pred, "adv_pred": adv_pred,
            "orig_text": f"text {example_id}", "adv_text": None if skipped else f"adv | {example_id}",
            "num_queries": 1 if skipped else queries, "num_forward_passes": 1 if skipped else queries // 2,
            # deployed: as if every query of the example exited where the original text does
            "layers_computed": orig_exit if skipped else (queries // 2) * orig_exit,
            "layers_encoded": NUM_LAYERS if skipped else (queries // 2) * NUM_LAYERS,
            "query_mean_exit_layer": float(orig_exit), "goal": "accuracy", "goal_target": None,
            "orig_exit_layer": orig_exit, "adv_exit_layer": adv_exit, "orig_layer_preds": keep(orig_lp),
            "adv_layer_preds": None if skipped else keep(adv_lp),
            "words_changed": changed if result == "succeeded" else (None if skipped else 0),
            "words_total": total, "attack_time_s": 0.5,
        })
    return records


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
