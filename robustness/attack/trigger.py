"""Universal slowdown triggers, the run: search one K-word prefix on training data (:mod:`.trigger_search`), then
evaluate it on the attack sample, at the source setting and, replayed, at other settings and on other models.

A trigger directory (its files and rows: :mod:`robustness.schema.triggers`) holds ``spec.json``, ``run.json``,
``search_state.json`` (the search, rewritten atomically after every step: a rerun continues from it),
``trigger.json`` (once the search is done: the prefix, the search trace, the cost in forward passes, the spec
and the fingerprint) and ``evaluation.jsonl`` (one row per evaluated model and setting, appended; a rerun skips
the rows already there) with ``evaluation.csv`` beside it. Ownership as for attack runs: a directory that is
not a trigger run is refused without ``overwrite``; one made by other weights or another spec is never
continued.

**Evaluation** on the attack sample (``n`` examples of ``split`` drawn with ``seed``, exactly as an attack run
with the same dataset, split, n and seed samples them), every text with and without the prefix: mean exit
layer of each and their difference (``exit_shift``), accuracy at the exit of each, the share of triggered
texts exiting at the last layer, the share whose exit prediction the prefix changed, and the efficiency gain
left, (L / mean triggered exit − 1) / (L / mean clean exit − 1), the definition of
:func:`robustness.schema.speedup.efficiency_gain_left` (every example counts: a trigger has no skipped ones).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robustness.provenance import read_json_object, versions, write_csv_atomic, write_json_atomic
from robustness.schema.records import truncate_torn_tail
from robustness.schema.settings import Setting, check_setting_reachable, parse_setting, resolve_calibrated
from robustness.schema.speedup import efficiency_gain_left
from robustness.schema.triggers import EVALUATION_FILE, STATE_FILE, TRIGGER_FILE, TriggerSpec, read_rows

__all__ = ["EVALUATION_FILE", "TRIGGER_FILE", "TriggerSpec", "evaluate_prefix", "exit_numbers", "prefix_logits",
           "read_rows", "replay_trigger", "resolve_setting", "run_trigger"]

#: The files of a trigger directory (removed, and only they, to start afresh).
_OWN_FILES = ("spec.json", "run.json", STATE_FILE, TRIGGER_FILE, EVALUATION_FILE, "evaluation.csv")


def resolve_setting(text: str, model_dir: str | Path) -> Setting:
    """A setting label, or a calibration reference (``entropy@patience:2``) resolved in ``model_dir``."""
    return resolve_calibrated(text, model_dir) if "@" in str(text) else parse_setting(text)


def prefix_logits(model: Any, tokenizer: Any, texts: Sequence[Any], words: Sequence[str], *, batch_size: int = 32,
                  max_length: int = 128) -> tuple[Any, Any]:
    """All-layer logits ``[H, N, C]`` of the texts without and with the prefix (one pass each)."""
    from robustness.attack.trigger_search import with_prefix
    from robustness.models.evaluate import all_layer_logits

    return tuple(all_layer_logits(model, tokenizer, batch, batch_size=batch_size, max_length=max_length)
                 for batch in (list(texts), [with_prefix(t, words) for t in texts]))


def exit_numbers(model: Any, logits: tuple[Any, Any], labels: Sequence[int], setting: Setting) -> dict[str, Any]:
    """The evaluation numbers of the module docstring at ``setting`` from :func:`prefix_logits`' output."""
    num_layers = int(model.num_layers)
    out: dict[str, Any] = {"num_layers": num_layers, "n": len(labels)}
    preds = {}
    for side, layer_logits in zip(("clean", "trigger"), logits, strict=True):
        exits, exit_logits = model.exit_from_layer_logits(layer_logits, setting)
        preds[side] = exit_logits.argmax(-1).tolist()
        out[f"{side}_mean_exit"] = float(exits.float().mean())
        out[f"{side}_accuracy"] = sum(p == y for p, y in zip(preds[side], labels, strict=True)) / len(labels)
        out[f"{side}_at_last_layer"] = float((exits == num_layers).float().mean())
    out["exit_shift"] = out["trigger_mean_exit"] - out["clean_mean_exit"]
    out["prediction_changed"] = sum(a != b for a, b in zip(preds["clean"], preds["trigger"], strict=True)) / len(labels)
    out["efficiency_gain_left"] = efficiency_gain_left(num_layers, out["clean_mean_exit"], out["trigger_mean_exit"])
    return out


def evaluate_prefix(model: Any, tokenizer: Any, texts: Sequence[Any], labels: Sequence[int], words: Sequence[str],
                    setting: Setting, *, batch_size: int = 32, max_length: int = 128) -> dict[str, Any]:
    """The evaluation numbers of the module docstring for one model at one setting."""
    logits = prefix_logits(model, tokenizer, texts, words, batch_size=batch_size, max_length=max_length)
    return exit_numbers(model, logits, labels, setting)


def _write_rows(out: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    path = out / EVALUATION_FILE
    truncate_torn_tail(path)
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    write_csv_atomic(out / "evaluation.csv", pd.DataFrame(read_rows(out)))


def _evaluate_settings(out: Path, trigger: dict[str, Any], model: Any, tokenizer: Any, model_dir: str,
                       fingerprint: str | None, settings: Sequence[str], examples: Any, batch_size: int,
                       max_length: int) -> list[dict[str, Any]]:
    """Append a row for each of ``settings`` not yet evaluated on this model; returns the new rows."""
    done = {(r["model_fingerprint"] or r["model_id"], r["setting"]) for r in read_rows(out)}
    model_id = Path(model_dir).name
    spec = trigger["spec"]
    new, logits = [], None
    for text in dict.fromkeys(settings):
        setting = resolve_setting(text, model_dir)
        check_setting_reachable(setting, model.num_layers, model_dir)
        if model.head == "full" and setting.policy != "full":
            raise ValueError(f"model {model_id} is a full-depth baseline; its setting must be 'full'")
        if ((fingerprint or model_id), setting.label) in done:
            continue
        if logits is None:  # once for all settings of this model
            logits = prefix_logits(model, tokenizer, examples.texts, trigger["prefix"], batch_size=batch_size,
                                   max_length=max_length)
        numbers = exit_numbers(model, logits, examples.labels, setting)
        replayed = fingerprint != trigger["model_fingerprint"] or setting.label != spec["setting"]
        row = {"trigger_id": trigger["run_id"], "prefix": " ".join(trigger["prefix"]), "length": spec["length"],
               "source_model_id": spec["model_id"], "source_setting": spec["setting"], "model_id": model_id,
               "model_fingerprint": fingerprint, "setting": setting.label, "setting_reference": str(text),
               "replayed": replayed, "dataset": spec["dataset"], "split": spec["split"], "seed": spec["seed"],
               "search_score": trigger["score"], **numbers}
        _write_rows(out, [row])
        done.add(((fingerprint or model_id), setting.label))
        new.append(row)
    return new


def _examples(spec: dict[str, Any], train: bool, num_labels: int) -> Any:
    from robustness.data import load_examples

    split, n = (spec["train_split"], spec["train_n"]) if train else (spec["split"], spec["n"])
    examples = load_examples(spec["dataset"], split, data_dir=spec.get("data_dir"), limit=n, seed=spec["seed"])
    if len(examples.label_names) != num_labels:
        raise ValueError(f"{spec['dataset']} has {len(examples.label_names)} labels, the model {num_labels}")
    return examples


def run_trigger(spec: TriggerSpec, out_dir: str | Path, *, evaluate_on: Sequence[str] = (), model: Any = None,
                tokenizer: Any = None, command: str | None = None, overwrite: bool = False,
                progress: bool = True) -> Path:
    """Search ``spec``'s trigger into ``out_dir`` (continuing a search there) and evaluate it at ``spec.setting``
    and each of ``evaluate_on`` (settings or calibration references of the same model); returns ``out_dir``."""
    from robustness.attack.rundir import check_run_dir, check_same_model, exclusive
    from robustness.attack.trigger_search import (
        PrefixScorer,
        candidate_words,
        read_vocabulary,
        search_cost,
        search_trigger,
        tokenizer_words,
        trigger_score,
    )
    from robustness.models.fingerprint import model_fingerprint
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer

    out = Path(out_dir)
    check_run_dir(out, overwrite)
    score = trigger_score(spec.score)
    fingerprint = None
    if model is None or Path(spec.model_dir).is_dir():
        fingerprint = model_fingerprint(check_model_dir(spec.model_dir))
    if overwrite and out.is_dir():
        for name in _OWN_FILES:
            (out / name).unlink(missing_ok=True)
    if fingerprint is not None:
        check_same_model(out, fingerprint, spec.model_dir)
    if (out / "spec.json").is_file() and read_json_object(out / "spec.json").get("run_id") != spec.run_id:
        raise ValueError(f"{out / 'spec.json'} describes another run; refusing to mix (another --out, or --overwrite)")
    if model is None:
        model, tokenizer = load_model_and_tokenizer(spec.model_dir)
    setting = parse_setting(spec.setting)
    check_setting_reachable(setting, model.num_layers, spec.model_dir)
    if model.head != "pabee":
        raise ValueError(f"model {spec.model_id} is a full-depth baseline: a slowdown trigger needs early exits")
    vocabulary = tokenizer_words(tokenizer) if spec.vocabulary == "tokenizer" else read_vocabulary(spec.vocabulary)
    candidates = candidate_words(vocabulary, spec.candidates, spec.seed)
    content = {**asdict(spec), "kind": "trigger", "run_id": spec.run_id, "num_layers": int(model.num_layers),
               "head": model.head, "label_names": list(model.label_names), "model_fingerprint": fingerprint}
    train = _examples(content, True, model.num_labels)
    attack_sample = _examples(content, False, model.num_labels)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        write_json_atomic(out / "spec.json", content)
        info = {"run_id": spec.run_id, "status": "running", "command": command, "versions": versions()}
        write_json_atomic(out / "run.json", info)
        try:
            if not (out / TRIGGER_FILE).is_file():
                state = read_json_object(out / STATE_FILE) if (out / STATE_FILE).is_file() else None
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    total = search_cost(len(train), spec.length, len(candidates), spec.iterations, spec.beam)
                    bar = tqdm(total=total, initial=(state or {}).get("forward_passes", 0), unit="text",
                               desc=f"trigger search {spec.run_id}")
                scorer = PrefixScorer(model, tokenizer, train.texts, train.labels, setting, score,
                                      spec.batch_size, spec.max_length, progress=bar.update if bar else None)
                state = search_trigger(scorer, candidates, spec.length, iterations=spec.iterations, beam=spec.beam,
                                       state=state, on_step=lambda s: write_json_atomic(out / STATE_FILE, s))
                if bar is not None:
                    bar.close()
                best = state["beam"][0]
                write_json_atomic(out / TRIGGER_FILE, {
                    "run_id": spec.run_id, "prefix": best["words"], "score": best["score"],
                    "train_mean_exit": best["mean_exit"], "forward_passes": state["forward_passes"],
                    "candidates": candidates, "trace": state["trace"], "spec": asdict(spec),
                    "model_fingerprint": fingerprint, "search": "beam coordinate ascent over positions, see "
                    "robustness/attack/trigger_search.py"})
            trigger = read_json_object(out / TRIGGER_FILE)
            _evaluate_settings(out, trigger, model, tokenizer, spec.model_dir, fingerprint,
                               [spec.setting, *evaluate_on], attack_sample, spec.batch_size, spec.max_length)
        except BaseException as exc:
            write_json_atomic(out / "run.json", {**info, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise
        write_json_atomic(out / "run.json", {**info, "status": "complete"})
    return out


def replay_trigger(trigger_dir: str | Path, model_dir: str | Path, settings: Sequence[str], *, model: Any = None,
                   tokenizer: Any = None, batch_size: int = 32, max_length: int = 128,
                   data_dir: str | None = None) -> list[dict[str, Any]]:
    """Evaluate a finished trigger on ``model_dir`` at ``settings`` (on the trigger's attack sample), appending
    rows to the trigger directory's ``evaluation.jsonl``; returns the new rows (none for rows already there).
    ``data_dir`` replaces the recorded dataset location."""
    from robustness.attack.rundir import exclusive
    from robustness.models.fingerprint import model_fingerprint
    from robustness.models.pabee import check_model_dir, load_model_and_tokenizer

    out = Path(trigger_dir)
    if not (out / TRIGGER_FILE).is_file():
        raise ValueError(f"{out} holds no finished trigger ({TRIGGER_FILE} missing); run robustness trigger first")
    trigger = read_json_object(out / TRIGGER_FILE)
    fingerprint = model_fingerprint(check_model_dir(str(model_dir)))
    if model is None:
        model, tokenizer = load_model_and_tokenizer(model_dir)
    spec = {**trigger["spec"], **({"data_dir": data_dir} if data_dir else {})}
    examples = _examples(spec, False, model.num_labels)
    with exclusive(out):
        return _evaluate_settings(out, trigger, model, tokenizer, str(model_dir), fingerprint, settings, examples,
                                  batch_size, max_length)
