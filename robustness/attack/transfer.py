"""Transfer: replay the final texts of a finished attack run against another model or exit setting.

No search: for every example of the source run, the target model (at its setting) answers the original text
and, when the source attack produced one, its final text. One record per example in
``<transfer_dir>/records.jsonl`` (the attack record schema plus ``source_run_id``), resumable like ``attack``:

* accuracy goal -- ``succeeded``: the source attack succeeded and the target classifies the original text
  correctly but the adversarial text wrongly; ``failed``: the target still classifies the adversarial text
  correctly; ``skipped``: the source attack did not succeed, or the target already misclassifies the original.
* slowdown goal -- ``succeeded``: the adversarial (final) text exits at the target's last layer (its
  ``goal_target``, L); ``failed``: it exits earlier; ``skipped``: the source attack had no final text, or the
  original already exits at L on the target.

``spec.json`` carries ``kind: "transfer"``, the source run and the target; transfers live under
``<suite out>/transfers/`` so that they never mix with attack runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robustness.provenance import read_json_object, versions, write_json_atomic
from robustness.requests import check_spec_records
from robustness.schema.records import SCHEMA_VERSION, append_record, read_records, truncate_torn_tail
from robustness.schema.rundir import RECORDS_FILE, RUN_FILE, SPEC_FILE
from robustness.schema.settings import parse_setting
from robustness.schema.specs import TransferSpec

__all__ = ["TransferSpec", "run_transfer", "transfer_record"]


def _source(spec: TransferSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = Path(spec.source_run)
    info = read_json_object(run / RUN_FILE) if (run / RUN_FILE).is_file() else {}
    if info.get("status") != "complete":
        raise ValueError(f"{run} is not a complete attack run (run.json status {info.get('status')!r})")
    source = read_json_object(run / SPEC_FILE)
    if source.get("kind") == "transfer":
        raise ValueError(f"{run} is a transfer, not an attack run")
    if source.get("run_id", run.name) != spec.source_run_id:
        raise ValueError(f"{run} holds run {source.get('run_id')}, not {spec.source_run_id}")
    records = sorted(read_records(run / RECORDS_FILE), key=lambda r: r["example_id"])
    check_spec_records(run / SPEC_FILE, source, [r["example_id"] for r in records], complete=True)
    return source, records


def _key(text: str, pairs: bool) -> Any:
    return tuple(text.split("\n", 1)) if pairs else text


def transfer_record(wrapper: Any, record: dict[str, Any], source: dict[str, Any], pairs: bool) -> dict[str, Any]:
    """The target's answer to one source record (see the module docstring for the outcome)."""
    start = time.perf_counter()
    wrapper.start_example()
    before = wrapper.counters()
    goal = str(source.get("goal") or "accuracy")
    label = int(record["label"])
    orig_exit, orig_pred, orig_layers = wrapper.layer_info(_key(record["orig_text"], pairs))
    replay = record["adv_text"] is not None and (goal == "slowdown" or record["result"] == "succeeded")
    adv = dict.fromkeys(("adv_text", "adv_pred", "adv_exit_layer", "adv_layer_preds", "words_changed"))
    target = wrapper.num_layers if goal == "slowdown" else None
    if goal == "slowdown":
        result = "skipped" if not replay or orig_exit >= target else None
    else:
        result = "skipped" if not replay or orig_pred != label else None
    if result is None:
        adv_exit, adv_pred, adv_layers = wrapper.layer_info(_key(record["adv_text"], pairs))
        adv = {"adv_text": record["adv_text"], "adv_pred": adv_pred, "adv_exit_layer": adv_exit,
               "adv_layer_preds": adv_layers, "words_changed": record["words_changed"]}
        won = adv_exit >= target if goal == "slowdown" else adv_pred != label
        result = "succeeded" if won else "failed"
    after = wrapper.counters()
    passes = after["num_forward_passes"] - before["num_forward_passes"]
    deployed = after["layers_computed"] - before["layers_computed"]
    return {
        "schema_version": SCHEMA_VERSION, "example_id": record["example_id"], "dataset_index": record["dataset_index"],
        "label": label, "result": result, "orig_pred": orig_pred, "adv_pred": adv["adv_pred"],
        "orig_text": record["orig_text"], "adv_text": adv["adv_text"], "num_queries": passes,
        "num_forward_passes": passes, "layers_computed": deployed,
        "layers_encoded": after["layers_encoded"] - before["layers_encoded"],
        "query_mean_exit_layer": deployed / passes if passes else None, "orig_exit_layer": orig_exit,
        "adv_exit_layer": adv["adv_exit_layer"], "orig_layer_preds": orig_layers,
        "adv_layer_preds": adv["adv_layer_preds"], "words_changed": adv["words_changed"],
        "words_total": record["words_total"], "attack_time_s": time.perf_counter() - start, "goal": goal,
        "goal_target": target, "source_run_id": source["run_id"],
        # the score that guided the search of the replayed texts (the source run's; None for accuracy)
        "slowdown_score": record["slowdown_score"] if goal == "slowdown" else None,
    }


def run_transfer(spec: TransferSpec, out_dir: str | Path, *, model: Any = None, tokenizer: Any = None,
                 cache: Any = None, command: str | None = None) -> Path:
    """Replay ``spec.source_run`` into ``out_dir`` (resuming the records already there); returns it."""
    from robustness.attack.rundir import check_run_dir, exclusive
    from robustness.attack.wrapper import PabeeModelWrapper
    from robustness.data import dataset_info
    from robustness.devices import device_label, resolve_device
    from robustness.models.saved import saved_facts
    from robustness.requests import check_run_request

    out = Path(out_dir)
    check_run_dir(out, overwrite=False)  # the same ownership rule as attack: never write into a stranger's dir
    if (out / SPEC_FILE).is_file() and read_json_object(out / SPEC_FILE).get("run_id") != spec.run_id:
        raise ValueError(f"{out / SPEC_FILE} describes another run; refusing to mix records (choose another --out)")
    source, records = _source(spec)
    facts = saved_facts(spec.model_dir) if model is None else model
    check_run_request(spec.setting, num_layers=int(facts.num_layers), head=facts.head, where=spec.model_dir,
                      goal=str(source.get("goal") or "accuracy"))
    if len(facts.label_names) != len(source.get("label_names", facts.label_names)):
        raise ValueError(f"{spec.source_run} has {len(source['label_names'])} labels, the model "
                         f"{len(facts.label_names)}")
    device = resolve_device(spec.device)
    if model is None:
        from robustness.models.pabee import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(spec.model_dir)
    model = model.to(device)
    content = {**asdict(spec), "kind": "transfer", "run_id": spec.run_id, "recipe": source["recipe"],
               "dataset": source["dataset"], "split": source.get("split"), "n": source.get("n"),
               "seed": source.get("seed"), "goal": source.get("goal") or "accuracy",
               "source_model_id": source["model_id"], "source_setting": parse_setting(
                   source["setting"] if "setting" in source else source.get("patience")).label,
               "num_layers": int(model.num_layers), "head": model.head, "label_names": list(model.label_names)}
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        if (out / SPEC_FILE).is_file() and read_json_object(out / SPEC_FILE).get("run_id") != spec.run_id:
            raise ValueError(f"{out / SPEC_FILE} describes another run; refusing to mix records (choose another --out)")
        write_json_atomic(out / SPEC_FILE, content)
        path = out / RECORDS_FILE
        truncate_torn_tail(path)
        done = {r["example_id"] for r in read_records(path)}
        info = {"run_id": spec.run_id, "status": "running", "command": command, "versions": versions(),
                "num_examples": len(records), "resumed_records": len(done), "device": device_label(device)}
        write_json_atomic(out / RUN_FILE, info)
        wrapper = PabeeModelWrapper(model, tokenizer, spec.setting, batch_size=spec.batch_size,
                                    max_length=spec.max_length, cache=cache)
        pairs = len(dataset_info(source["dataset"]).text_columns) == 2
        try:
            for record in records:
                if record["example_id"] not in done:
                    append_record(path, transfer_record(wrapper, record, source, pairs))
        except BaseException as exc:
            write_json_atomic(out / RUN_FILE, {**info, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise
        write_json_atomic(out / RUN_FILE, {**info, "status": "complete", "num_records": len(records)})
    return out
