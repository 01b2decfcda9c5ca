"""Exit policies on hand-made logits with known answers, plus a property test against a plain loop."""

from __future__ import annotations

import math

import pytest
import torch

from robustness.models.exits import (
    entropy_exit,
    exit_step,
    gather_exit_logits,
    max_prob_exit,
    patience_counters,
    patience_exit,
    prefix_exit,
    reference_batch_patience_exit,
    setting_exit,
)
from robustness.models.settings import Setting, parse_setting


def logits_from_preds(preds: list[list[int]], num_classes: int = 2) -> torch.Tensor:
    """``preds[b][l]`` (example b, layer l+1) -> logits ``[L, B, C]``: 1 on the predicted class, plus a
    layer-specific offset 0.01·l on every class so that each layer's logits are distinguishable."""
    num_layers, batch = len(preds[0]), len(preds)
    logits = torch.zeros(num_layers, batch, num_classes)
    for b, row in enumerate(preds):
        for layer, pred in enumerate(row):
            logits[layer, b] = 0.01 * layer
            logits[layer, b, pred] += 1.0
    return logits


def exits(preds: list[list[int]], patience: int | None) -> list[int]:
    exit_layer, logits = patience_exit(logits_from_preds(preds), patience)
    return exit_layer.tolist()


STEP = [0, 0, 0, 1, 1, 1]  # counters 0,1,2,0,1,2


@pytest.mark.parametrize(
    ("patience", "expected"),
    [(1, 2), (2, 3), (3, 6), (4, 6), (5, 6), (6, 6), (7, 6), (None, 6)],
)
def test_patience_exit_known_sequence(patience: int | None, expected: int) -> None:
    assert exits([STEP], patience) == [expected]


def test_patience_counters_known_sequence() -> None:
    preds = torch.tensor([STEP, [0, 1, 1, 0, 0, 0]]).T  # [L, B]
    assert patience_counters(preds).T.tolist() == [[0, 1, 2, 0, 1, 2], [0, 0, 1, 0, 1, 2]]


def test_flip_flop_never_exits_early() -> None:
    flip = [0, 1, 0, 1, 0, 1]
    assert exits([flip], 1) == [6]
    assert exits([[0, 1, 1, 0, 0, 0]], 1) == [3]
    assert exits([[0, 1, 1, 0, 0, 0]], 2) == [6]
    assert exits([[1, 0, 0, 0, 1, 1]], 2) == [4]


def test_batch_mixes_exits_and_returns_exit_layer_logits() -> None:
    preds = [STEP, [0, 1, 0, 1, 0, 1], [1, 1, 1, 1, 1, 1], [2, 0, 0, 0, 0, 0]]
    logits = logits_from_preds(preds, num_classes=3)
    exit_layer, out = patience_exit(logits, 2)
    assert exit_layer.tolist() == [3, 6, 3, 4]
    assert exit_layer.dtype == torch.long
    for b, layer in enumerate(exit_layer.tolist()):
        assert torch.equal(out[b], logits[layer - 1, b])
    assert out[0].tolist() == pytest.approx([1.02, 0.02, 0.02])  # layer 3 of STEP: class 0, offset 0.02


def test_single_layer_model_exits_at_layer_one() -> None:
    assert exits([[1]], 1) == [1]
    assert exits([[1]], None) == [1]


def test_gather_exit_logits() -> None:
    logits = torch.arange(3 * 2 * 2, dtype=torch.float).view(3, 2, 2)
    out = gather_exit_logits(logits, torch.tensor([3, 1]))
    assert out.tolist() == [[8.0, 9.0], [2.0, 3.0]]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_invalid_patience_raises(bad) -> None:
    logits = logits_from_preds([STEP])
    with pytest.raises(ValueError, match="patience"):
        patience_exit(logits, bad)
    with pytest.raises(ValueError, match="patience"):
        reference_batch_patience_exit(logits, bad)


def test_bad_logits_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"\[L, B, C\]"):
        patience_exit(torch.zeros(3, 2), 1)


def test_entropy_exit_thresholds() -> None:
    # layer 1 uniform (entropy ln 2 = 0.693), layer 2 confident (entropy ~0.0005), layer 3 uniform
    logits = torch.tensor([[[0.0, 0.0]], [[10.0, 0.0]], [[0.0, 0.0]]])
    assert entropy_exit(logits, 0.1)[0].tolist() == [2]
    assert entropy_exit(logits, 1.0)[0].tolist() == [1]
    assert entropy_exit(logits, math.log(2) - 1e-3)[0].tolist() == [2]
    assert entropy_exit(logits, 0.0)[0].tolist() == [3]  # nothing is below 0: full depth
    assert torch.equal(entropy_exit(logits, 0.1)[1], logits[1])
    with pytest.raises(ValueError):
        entropy_exit(logits, -0.1)


def test_max_prob_exit_thresholds() -> None:
    # layer 1: p = 0.5; layer 2: p = 0.9 (logits ln 9, 0); layer 3: p = 0.5
    logits = torch.tensor([[[0.0, 0.0]], [[math.log(9.0), 0.0]], [[0.0, 0.0]]])
    assert max_prob_exit(logits, 0.89)[0].tolist() == [2]
    assert max_prob_exit(logits, 0.95)[0].tolist() == [3]
    assert max_prob_exit(logits, 0.5)[0].tolist() == [1]
    assert max_prob_exit(logits, 0.0)[0].tolist() == [1]
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            max_prob_exit(logits, bad)


def test_reference_batch_rule_couples_neighbours() -> None:
    steady, flip = [0, 0, 0, 0], [0, 1, 0, 1]
    alone, _ = reference_batch_patience_exit(logits_from_preds([steady]), 1)
    paired, _ = reference_batch_patience_exit(logits_from_preds([steady, flip]), 1)
    assert alone.tolist() == [2]
    assert paired.tolist() == [4, 4]  # the steady example's exit moved from 2 to 4 because of its neighbour
    # the per-example rule does not depend on the neighbour
    assert exits([steady], 1) == [2]
    assert exits([steady, flip], 1) == [2, 4]
    # and the reference rule equals the per-example rule when all examples agree step by step
    both, _ = reference_batch_patience_exit(logits_from_preds([steady, [1, 1, 1, 1]]), 2)
    assert both.tolist() == [3, 3]


def loop_patience_exit(preds: list[int], patience: int | None) -> int:
    """DESIGN.md's rule, written as plainly as possible for one example (layers 1..L)."""
    num_layers = len(preds)
    if patience is None:
        return num_layers
    counter = 0
    for i in range(2, num_layers + 1):
        counter = counter + 1 if preds[i - 1] == preds[i - 2] else 0
        if counter == patience:
            return i
    return num_layers


def test_patience_exit_matches_plain_loop_on_random_logits() -> None:
    gen = torch.Generator().manual_seed(1234)
    checked = 0
    for _ in range(60):
        num_layers = int(torch.randint(1, 9, (1,), generator=gen))
        batch = int(torch.randint(1, 12, (1,), generator=gen))
        num_classes = int(torch.randint(2, 4, (1,), generator=gen))
        logits = torch.randn(num_layers, batch, num_classes, generator=gen)
        preds = logits.argmax(dim=-1).T.tolist()  # [B][L]
        for patience in [*range(1, num_layers + 2), None]:
            exit_layer, out = patience_exit(logits, patience)
            expected = [loop_patience_exit(row, patience) for row in preds]
            assert exit_layer.tolist() == expected
            for b, layer in enumerate(expected):
                assert torch.equal(out[b], logits[layer - 1, b])
            checked += batch
    assert checked > 1000


def test_prefix_exit_on_hand_made_predictions() -> None:
    logits = logits_from_preds([STEP])  # counters 0,1,2,0,1,2: patience 1 fires at 2, patience 2 at 3
    for depth, (p1, p2, p3, full) in {1: (0, 0, 0, 0), 2: (2, 0, 0, 0), 3: (2, 3, 0, 0), 5: (2, 3, 0, 0),
                                      6: (2, 3, 6, 6)}.items():
        got = [int(prefix_exit(logits, torch.tensor([depth]), s)[0]) for s in (1, 2, 3, "full")]
        assert got == [p1, p2, p3, full], depth
    garbage = logits.clone()
    garbage[3:] = torch.randn(3, 1, 2) * 100  # rows beyond the known depth are ignored
    assert int(prefix_exit(garbage, torch.tensor([3]), 2)[0]) == 3
    assert int(prefix_exit(garbage, torch.tensor([3]), 3)[0]) == 0


def test_prefix_exit_decides_exactly_when_the_known_layers_do_on_random_logits() -> None:
    """For every setting and depth: either the exit of the complete logits (then it is <= depth, or depth is L)
    with its logits, or 0 when the complete exit lies deeper than the known layers."""
    gen = torch.Generator().manual_seed(99)
    decided = undecided = 0
    for _ in range(40):
        num_layers = int(torch.randint(1, 8, (1,), generator=gen))
        batch = int(torch.randint(1, 10, (1,), generator=gen))
        logits = torch.randn(num_layers, batch, 3, generator=gen) * 2
        settings = [*range(1, num_layers + 2), None, Setting("entropy", 0.6), Setting("maxprob", 0.7)]
        for setting in settings:
            full_exit, full_logits = setting_exit(logits, setting)
            for depth in range(1, num_layers + 1):
                known = logits.clone()
                known[depth:] = torch.randn(num_layers - depth, batch, 3, generator=gen)
                got, got_logits = prefix_exit(known, torch.full((batch,), depth), setting)
                for b in range(batch):
                    if int(got[b]) == 0:
                        assert int(full_exit[b]) > depth
                        undecided += 1
                    else:
                        assert int(got[b]) == int(full_exit[b]) <= depth or depth == num_layers
                        assert int(got[b]) == int(full_exit[b])
                        assert torch.equal(got_logits[b], full_logits[b])
                        decided += 1
    assert decided > 500 and undecided > 500


def test_exit_step_layer_by_layer_equals_the_all_layer_rule_on_random_logits() -> None:
    gen = torch.Generator().manual_seed(7)
    for _ in range(40):
        num_layers = int(torch.randint(1, 8, (1,), generator=gen))
        batch = int(torch.randint(1, 10, (1,), generator=gen))
        logits = torch.randn(num_layers, batch, 3, generator=gen) * 2
        for setting in [*range(1, num_layers + 2), None, Setting("entropy", 0.6), Setting("maxprob", 0.7)]:
            parsed = parse_setting(setting)
            want, _ = setting_exit(logits, parsed)
            got = torch.zeros(batch, dtype=torch.long)
            prev, counter = torch.full((batch,), -1), torch.zeros(batch, dtype=torch.long)
            for layer in range(1, num_layers + 1):
                fired, prev, counter = exit_step(parsed, layer, num_layers, logits[layer - 1], prev, counter)
                got = torch.where((got == 0) & fired, torch.full_like(got, layer), got)
            assert torch.equal(got, want)
