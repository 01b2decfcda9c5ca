"""Clean evaluation: accuracy and exit depth for every exit setting from one all-layer pass, plus measured
wall-clock speed-ups of true early exit against full depth at the same batch size."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from robustness.data import Examples, Text
from robustness.models.batching import encode, sorted_batches, token_lengths
from robustness.schema.settings import Setting, parse_setting

EVAL_COLUMNS = ["setting", "accuracy", "min_class_recall", "max_pred_share", "mean_exit_layer", "layer_speedup",
                "wall_speedup", "calibration"]


def _batches(tokenizer, texts: Sequence[Text], batch_size: int, max_length: int, device: torch.device | None = None
             ) -> list[tuple[list[int], dict]]:
    """Length-sorted batches, each moved to ``device`` (default: stays on the CPU) once."""
    lengths = token_lengths(tokenizer, texts, max_length)
    batches = sorted_batches(lengths, batch_size)
    return [(idx, {k: v.to(device) for k, v in encode(tokenizer, [texts[i] for i in idx], max_length).items()})
            for idx in batches]


def model_device(model) -> torch.device:
    """Where the model's weights are (its inputs go there)."""
    return next(model.parameters()).device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously: a wall-clock time must include it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def all_layer_logits(
    model, tokenizer, texts: Sequence[Text], *, batch_size: int = 64, max_length: int = 128,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Logits of every internal classifier for every text, ``[H, N, C]`` in the order of ``texts``, on the CPU
    (each batch runs on the model's device and comes back once)."""
    out: torch.Tensor | None = None
    for idx, batch in _batches(tokenizer, texts, batch_size, max_length, model_device(model)):
        logits = model.all_layer_logits(**batch)
        if out is None:
            out = torch.empty(logits.shape[0], len(texts), logits.shape[2])
        out[:, idx] = logits.float().cpu()
        if progress is not None:
            progress(len(idx))
    if out is None:
        raise ValueError("no texts to evaluate")
    return out


def patience_settings(model) -> list[Setting]:
    """Patience 1..L-1 then full depth for a PABEE model; only full depth for a baseline."""
    return [parse_setting(p) for p in ([*range(1, model.num_layers), None] if model.head == "pabee" else [None])]


def timed_repetitions(model, repeats: int, matched: int = 0) -> int:
    """How many timed repetitions :func:`evaluate_model` makes (full depth itself is not timed), with
    ``matched`` speed-up targets (two threshold settings each)."""
    return (sum(s.policy != "full" for s in patience_settings(model)) + 2 * matched) * max(repeats, 0)


def calibrate(model, layer_logits: torch.Tensor, targets: Sequence[str]) -> dict[str, Setting]:
    """For each target (a setting label such as ``patience:2``, or a layer speed-up such as ``1.86``), the
    entropy and max-probability settings matching its clean layer speed-up on ``layer_logits``:
    ``{"entropy@patience:2": Setting, "maxprob@patience:2": Setting, ...}``."""
    from robustness.models.calibrate import THRESHOLD_POLICIES, calibrated_setting, match_threshold

    out = {}
    for target in targets:
        for policy in THRESHOLD_POLICIES:
            policy, label = calibrated_setting(f"{policy}@{target}")
            try:
                speedup = float(label)
            except ValueError:
                exit_layer, _ = model.exit_from_layer_logits(layer_logits, label)
                speedup = model.num_layers / exit_layer.float().mean().item()
            out[f"{policy}@{label}"] = match_threshold(model, layer_logits, policy, speedup)
    return out


def accuracy_table(model, layer_logits: torch.Tensor, labels: Sequence[int],
                   settings: Sequence[Setting] | None = None) -> pd.DataFrame:
    """One row per setting (default :func:`patience_settings`): accuracy, the lowest per-class recall (over the
    classes among ``labels``), the largest share of predictions one class takes (what the verdict's degeneracy
    rule reads), mean exit layer, layer speed-up = L / mean exit layer."""
    gold = torch.tensor(list(labels))
    rows = []
    for setting in settings if settings is not None else patience_settings(model):
        exit_layer, logits = model.exit_from_layer_logits(layer_logits, setting)
        preds = logits.argmax(-1)
        mean_exit = exit_layer.float().mean().item()
        rows.append(
            {
                "setting": setting.label,
                "accuracy": (preds == gold).float().mean().item(),
                "min_class_recall": min((preds[gold == c] == c).float().mean().item() for c in gold.unique()),
                "max_pred_share": torch.bincount(preds).max().item() / len(preds),
                "mean_exit_layer": mean_exit,
                "layer_speedup": model.num_layers / mean_exit,
            }
        )
    return pd.DataFrame(rows)


def off_sample_positions(examples: Examples, exclude: Sequence[int]) -> list[int]:
    """Positions in ``examples`` of the examples whose dataset index is not in ``exclude`` (an attack sample)."""
    excluded = set(exclude)
    return [i for i, index in enumerate(examples.indices) if index not in excluded]


def off_sample_table(model, tokenizer, examples: Examples, exclude: Sequence[int], settings: Sequence[Setting], *,
                     batch_size: int = 64, max_length: int = 128) -> pd.DataFrame:
    """:func:`accuracy_table` at ``settings`` on the examples whose dataset index is not in ``exclude`` (an attack
    sample), with their count in column ``n``: the clean evaluation the verdict's eligibility rule prefers."""
    keep = off_sample_positions(examples, exclude)
    if not keep:
        raise ValueError(f"{examples.info.name}/{examples.split}: no example is left outside the attack sample")
    logits = all_layer_logits(model, tokenizer, [examples.texts[i] for i in keep], batch_size=batch_size,
                              max_length=max_length)
    table = accuracy_table(model, logits, [examples.labels[i] for i in keep], settings)
    table.insert(1, "n", len(keep))
    return table


def time_early_exit(model, batches: list[dict], setting: Setting | None) -> float:
    """Seconds for true early exit over all batches (already on the model's device), its queued work included."""
    device = model_device(model)
    synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        model.early_exit(**batch, setting=setting)
    synchronize(device)
    return time.perf_counter() - start


def paired_speedup(
    baseline: Callable[[], object], candidate: Callable[[], object], *, repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter, progress: Callable[[int], None] | None = None,
) -> float:
    """Median over ``repeats`` of t(baseline) / t(candidate), each repetition timed in ABBA order (baseline,
    candidate, candidate, baseline) so that a linear drift of the machine's speed cancels out."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    def timed(fn: Callable[[], object]) -> float:
        start = clock()
        fn()
        return clock() - start

    ratios = []
    for _ in range(repeats):
        t_base = timed(baseline)
        t_cand = timed(candidate) + timed(candidate)
        t_base += timed(baseline)
        ratios.append(t_base / t_cand)
        if progress is not None:
            progress(1)
    return statistics.median(ratios)


def wall_speedups(
    model, tokenizer, texts: Sequence[Text], *, batch_size: int = 32, max_length: int = 128, repeats: int = 3,
    progress: Callable[[int], None] | None = None, settings: Sequence[Setting] | None = None,
) -> dict[str, float]:
    """Per setting, :func:`paired_speedup` of full depth against true early exit (same batches, length-sorted);
    1.0 for full depth itself. ``progress(1)`` after each timed repetition ((len(settings) − 1) × repeats)."""
    batches = [b for _, b in _batches(tokenizer, texts, batch_size, max_length, model_device(model))]
    time_early_exit(model, batches[:2], None)  # warm-up
    out = {}
    for setting in patience_settings(model) if settings is None else settings:
        out[setting.label] = 1.0 if setting.policy == "full" else paired_speedup(
            lambda: time_early_exit(model, batches, None),
            lambda s=setting: time_early_exit(model, batches, s), repeats=repeats, progress=progress)
    return out


def evaluate_model(
    model, tokenizer, texts: Sequence[Text], labels: Sequence[int], *, batch_size: int = 32, max_length: int = 128,
    timing_repeats: int = 3, progress: Callable[[int], None] | None = None,
    timing_progress: Callable[[int], None] | None = None, match: Sequence[str] = (),
) -> pd.DataFrame:
    """The evaluation table (columns :data:`EVAL_COLUMNS`): every patience and full depth, plus for each target
    of ``match`` (see :func:`calibrate`) an entropy and a max-probability row at the threshold matching its
    clean speed-up (column ``calibration``, e.g. ``entropy@patience:2``). ``timing_repeats=0`` leaves
    wall_speedup NaN. ``progress`` counts texts of the all-layer pass, ``timing_progress`` timed repetitions."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    logits = all_layer_logits(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                              progress=progress)
    matched = calibrate(model, logits, match)
    settings = list(dict.fromkeys([*patience_settings(model), *matched.values()]))
    table = accuracy_table(model, logits, labels, settings)
    references: dict[str, list[str]] = {}
    for reference, setting in matched.items():
        references.setdefault(setting.label, []).append(reference)
    table["calibration"] = [" ".join(references.get(label, [])) for label in table["setting"]]
    if timing_repeats > 0:
        speedups = wall_speedups(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                                 repeats=timing_repeats, progress=timing_progress, settings=settings)
        table["wall_speedup"] = table["setting"].map(speedups)
    else:
        table["wall_speedup"] = float("nan")
    return table[EVAL_COLUMNS]
