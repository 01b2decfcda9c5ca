from __future__ import annotations

import math

import pytest
import torch

from robustness.models.evaluate import EVAL_COLUMNS, accuracy_table, all_layer_logits, evaluate_model, paired_speedup
from robustness.models.pabee import load_model_and_tokenizer


class _FakeModel:
    """Only what accuracy_table needs: L, head and the exit rule."""

    def __init__(self, head: str, num_layers: int = 3):
        self.head, self.num_layers = head, num_layers

    def exit_from_layer_logits(self, layer_logits, setting):
        from robustness.models.exits import setting_exit

        if self.head == "full":
            return torch.full((layer_logits.shape[1],), self.num_layers), layer_logits[-1]
        return setting_exit(layer_logits, setting)


def _logits(preds: list[list[int]]) -> torch.Tensor:
    """[L, B, 2] logits whose argmax per layer/example is ``preds[layer][example]``."""
    return torch.nn.functional.one_hot(torch.tensor(preds), 2).float()


def test_accuracy_table_on_hand_made_logits():
    # 3 layers, 3 examples; labels 1, 0, 1.
    # ex0 preds 1,1,1: p1 exits at 2 (right), p2 exits at 3 (right)
    # ex1 preds 1,0,0: p1 exits at 3 (right: 0), p2 -> 3 (right)
    # ex2 preds 0,0,1: p1 exits at 2 (wrong: 0), p2 -> 3 (right: 1)
    layer_logits = _logits([[1, 1, 0], [1, 0, 0], [1, 0, 1]])
    table = accuracy_table(_FakeModel("pabee"), layer_logits, [1, 0, 1])
    assert list(table["setting"]) == ["patience:1", "patience:2", "full"]
    p1, p2, full = table.to_dict(orient="records")
    assert p1["accuracy"] == pytest.approx(2 / 3) and p1["mean_exit_layer"] == pytest.approx(7 / 3)
    assert p1["layer_speedup"] == pytest.approx(3 / (7 / 3))
    assert p2["accuracy"] == 1.0 and p2["mean_exit_layer"] == 3.0 and p2["layer_speedup"] == 1.0
    assert full["accuracy"] == 1.0
    # p1 predicts 1, 0, 0: class 1 recall 1/2, class 0 recall 1; class 0 takes 2/3 of the predictions
    assert p1["min_class_recall"] == 0.5 and p1["max_pred_share"] == pytest.approx(2 / 3)
    assert full["min_class_recall"] == 1.0


def test_off_sample_table_leaves_the_attack_sample_out(tiny_pabee_dir, tiny_texts):
    from robustness.data import REGISTRY, Examples
    from robustness.models.evaluate import off_sample_table
    from robustness.models.settings import parse_setting

    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    info = REGISTRY["glue/sst2"]
    labels = [i % 2 for i in range(len(tiny_texts))]
    examples = Examples(info=info, split="validation", texts=list(tiny_texts), labels=labels,
                        indices=list(range(100, 100 + len(tiny_texts))))
    settings = [parse_setting(1), parse_setting("full")]
    table = off_sample_table(model, tokenizer, examples, [100, 101, 102], settings)
    assert list(table["setting"]) == ["patience:1", "full"] and set(table["n"]) == {len(tiny_texts) - 3}
    kept = list(tiny_texts)[3:]
    expected = accuracy_table(model, all_layer_logits(model, tokenizer, kept), labels[3:], settings)
    assert list(table["accuracy"]) == list(expected["accuracy"])
    with pytest.raises(ValueError, match="no example is left"):
        off_sample_table(model, tokenizer, examples, examples.indices, settings)


def test_baseline_has_only_full_row():
    table = accuracy_table(_FakeModel("full"), _logits([[1, 0]]), [1, 1])
    assert list(table["setting"]) == ["full"] and table["accuracy"].item() == 0.5


def test_all_layer_logits_keeps_text_order(tiny_pabee_dir, tiny_texts):
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    batched = all_layer_logits(model, tokenizer, tiny_texts, batch_size=3)
    for i, text in enumerate(tiny_texts):
        alone = model.all_layer_logits(**tokenizer([text], return_tensors="pt"))[:, 0]
        assert torch.allclose(batched[:, i], alone, atol=1e-5)


def test_evaluate_model_columns_and_speedups(tiny_pabee_dir, tiny_texts):
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    labels = [i % 2 for i in range(len(tiny_texts))]
    table = evaluate_model(model, tokenizer, tiny_texts, labels, batch_size=4, timing_repeats=1)
    assert list(table.columns) == EVAL_COLUMNS
    assert list(table["setting"]) == [f"patience:{p}" for p in range(1, model.num_layers)] + ["full"]
    assert table.loc[table["setting"] == "full", "wall_speedup"].item() == 1.0
    assert all(s > 0 and math.isfinite(s) for s in table["wall_speedup"])
    untimed = evaluate_model(model, tokenizer, tiny_texts, labels, timing_repeats=0)
    assert untimed["wall_speedup"].isna().all()
    with pytest.raises(ValueError, match="8 texts but 2 labels"):
        evaluate_model(model, tokenizer, tiny_texts, [0, 1])


def test_paired_speedup_cancels_linear_drift():
    """A machine that slows down by 10% per timed call: ABBA order still gives the true ratio 2."""
    now, calls = [0.0], [0]

    def work(cost: float):
        def run() -> None:
            now[0] += cost * (1 + 0.1 * calls[0])
            calls[0] += 1

        return run

    ratio = paired_speedup(work(2.0), work(1.0), repeats=3, clock=lambda: now[0])
    assert ratio == pytest.approx(2.0)
    assert calls[0] == 12
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        paired_speedup(work(1.0), work(1.0), repeats=0)
