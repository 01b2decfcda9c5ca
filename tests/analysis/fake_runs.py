"""Hand-made records for the analysis tests (imported by ``conftest.py`` and by test modules; a module of its own
so that no test imports ``conftest``, whose name several test folders share).

Four examples, L = 3. Per example: (label, clean layer preds, adversarial layer preds). PABEE exits and results
follow from the preds; the baseline keeps only the last layer. Expected values for patience 1 and the baseline are
worked out by hand in test_metrics.py.
"""

from __future__ import annotations

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
