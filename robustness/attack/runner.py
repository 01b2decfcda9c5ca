"""One attack run: a :class:`~robustness.schema.specs.RunSpec` -> ``<run_dir>/{spec.json, run.json, records.jsonl}``.

* ``spec.json`` is written before any example is attacked and never overwritten: rerunning into a
  directory whose spec has a different content hash is a ``ValueError``.
* ``records.jsonl`` gets one line per example as soon as it is finished (flushed and fsynced). Resuming
  is the default: a torn last line is cut, finished example ids are skipped. Every example is attacked
  with its own seed ``sha256(f"{seed}:{example_id}")`` and with TextAttack's caches cleared, so a resumed
  run writes the same records as an uninterrupted one (up to ``attack_time_s``).
* ``run.json`` (status ``running`` -> ``complete`` | ``failed``, versions, timings, cache stats) is
  replaced atomically (tmp + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from robustness.attack.rundir import (
    RECORDS_FILE,
    RUN_FILE,
    SPEC_FILE,
    check_or_write_spec,
    check_run_dir,
    check_same_model,
    exclusive,
    spec_content,
)
from robustness.data import load_examples
from robustness.devices import device_label, use_device
from robustness.models.fingerprint import model_fingerprint
from robustness.models.saved import check_model_dir, saved_facts
from robustness.models.train import seed_everything
from robustness.provenance import utc_now, versions, write_json_atomic
from robustness.requests import check_run_request
from robustness.resources.textattack_compat import import_textattack
from robustness.schema.records import SCHEMA_VERSION, AttackRecord, append_record, read_records, truncate_torn_tail
from robustness.schema.specs import RunSpec
from robustness.signals import signal_name

if TYPE_CHECKING:  # robustness.attack.wrapper imports textattack, which needs NLTK data: imported in run_attack
    from robustness.attack.wrapper import LayerLogitsCache, PabeeModelWrapper


def example_seed(seed: int, example_id: int) -> int:
    """The seed of one example: the first 4 bytes of ``sha256(f"{seed}:{example_id}")``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{example_id}".encode()).digest()[:4], "big")


def _build_attack(spec: RunSpec, wrapper: PabeeModelWrapper, resources: Any, shared: Any = None) -> Any:
    from robustness.attack.recipes import build_attack

    return build_attack(spec.recipe, wrapper, resources=resources, stock=spec.stock,
                        query_budget=spec.query_budget, mlm=getattr(resources, "mlm", None), goal=spec.goal,
                        goal_target=spec.goal_target, keep_prediction=spec.keep_prediction,
                        shared=shared, slowdown_score=spec.slowdown_score,
                        sentence_encoder=spec.sentence_encoder)


def goal_target(spec: RunSpec, num_layers: int) -> int | None:
    """The exit layer a slowdown run must reach (its ``goal_target``, else L); None for the accuracy goal."""
    if spec.goal != "slowdown":
        return None
    return num_layers if spec.goal_target is None else spec.goal_target


def _words_changed(original: Any, perturbed: Any) -> int:
    """Words that differ: position-wise when the word count is kept (TextAttack's ``all_words_diff``, as
    its "perturbed word %" metric), else the word-level edit distance (insertions/deletions)."""
    if len(original.words) == len(perturbed.words):
        return len(original.all_words_diff(perturbed))
    return int(original.words_diff_num(perturbed))


def attack_example(attack: Any, wrapper: PabeeModelWrapper, columns: tuple[str, ...], text: Any, label: int,
                   ids: tuple[int, int], spec: RunSpec) -> AttackRecord:
    textattack = import_textattack()
    results = textattack.attack_results
    seed_everything(example_seed(spec.seed, ids[0]))
    attack.clear_cache()
    wrapper.start_example()
    before = wrapper.counters()
    start = time.perf_counter()
    values = text if isinstance(text, tuple) else (text,)
    attacked = textattack.shared.AttackedText(OrderedDict(zip(columns, values, strict=True)))
    result = attack.attack(attacked, int(label))
    if isinstance(result, results.SkippedAttackResult):
        outcome = "skipped"
    elif isinstance(result, results.SuccessfulAttackResult):
        outcome = "succeeded"
    elif isinstance(result, results.FailedAttackResult):
        outcome = "failed"
    else:
        raise ValueError(f"unsupported attack result {type(result).__name__} (maximizing goal functions are not used)")
    original = result.original_result.attacked_text
    orig_exit, orig_pred, orig_layers = wrapper.layer_info(original.tokenizer_input)
    adv: dict[str, Any] = dict.fromkeys(("adv_text", "adv_pred", "adv_exit_layer", "adv_layer_preds", "words_changed"))
    if outcome != "skipped":
        perturbed = result.perturbed_result.attacked_text
        adv_exit, adv_pred, adv_layers = wrapper.layer_info(perturbed.tokenizer_input)
        adv = {"adv_text": perturbed.text, "adv_pred": adv_pred, "adv_exit_layer": adv_exit,
               "adv_layer_preds": adv_layers, "words_changed": _words_changed(original, perturbed)}
    elapsed = time.perf_counter() - start
    after = wrapper.counters()
    passes = after["num_forward_passes"] - before["num_forward_passes"]
    deployed = after["layers_computed"] - before["layers_computed"]
    return AttackRecord(
        schema_version=SCHEMA_VERSION, example_id=ids[0], dataset_index=ids[1], label=int(label), result=outcome,
        orig_pred=orig_pred, adv_pred=adv["adv_pred"], orig_text=original.text, adv_text=adv["adv_text"],
        num_queries=int(result.num_queries),
        num_forward_passes=passes, layers_computed=deployed,
        layers_encoded=after["layers_encoded"] - before["layers_encoded"],
        query_mean_exit_layer=deployed / passes if passes else None,
        orig_exit_layer=orig_exit, adv_exit_layer=adv["adv_exit_layer"], orig_layer_preds=orig_layers,
        adv_layer_preds=adv["adv_layer_preds"], words_changed=adv["words_changed"], words_total=len(original.words),
        attack_time_s=elapsed, goal=spec.goal, goal_target=goal_target(spec, wrapper.num_layers),
        slowdown_score=spec.slowdown_score if spec.goal == "slowdown" else None,
    )


def _finished_ids(records: list[AttackRecord], indices: list[int], path: Path) -> set[int]:
    done: set[int] = set()
    for record in records:
        eid = record["example_id"]
        if eid in done or not 0 <= eid < len(indices) or record["dataset_index"] != indices[eid]:
            raise ValueError(f"{path} has a record (example_id {eid}) that does not belong to this run's sample")
        done.add(eid)
    return done


def run_attack(
    spec: RunSpec, out_dir: Path, *, resources: Any = None, progress: bool = True,
    cache: LayerLogitsCache | None = None, model: Any = None, tokenizer: Any = None, command: str | None = None,
    on_record: Callable[[AttackRecord], None] | None = None, overwrite: bool = False,
) -> Path:
    """Attack ``spec.n`` examples into the run directory ``out_dir`` (resuming what is there); returns it.

    ``model``/``tokenizer`` (both or neither) skip loading ``spec.model_dir``; ``cache`` (that model's)
    shares layer logits with other runs of the same model. ``on_record`` is called after each record
    is written. Records made by other weights (another model fingerprint) are never resumed or reused;
    ``overwrite`` starts afresh, replacing whatever run (or foreign run files) ``out_dir`` holds."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    out_dir = Path(out_dir)
    if (model is None) != (tokenizer is None):
        raise ValueError("pass both model and tokenizer, or neither")
    if cache is not None and model is None:
        raise ValueError("a shared cache needs the model object it belongs to (pass model and tokenizer)")
    check_run_dir(out_dir, overwrite)
    # the identity of the weights; an in-memory model passed without its saved directory (tests) has none
    fingerprint = None
    if model is None or Path(spec.model_dir).is_dir():
        fingerprint = model_fingerprint(check_model_dir(spec.model_dir))
        facts = saved_facts(spec.model_dir)  # an impossible request is refused before the imports and the load
        check_run_request(spec.setting, num_layers=facts.num_layers, head=facts.head, where=spec.model_dir,
                          goal=spec.goal, goal_target=spec.goal_target)
    if overwrite:
        _start_afresh(out_dir)
    if fingerprint is not None:
        check_same_model(out_dir, fingerprint, spec.model_dir)
    if run_is_complete(out_dir):  # nothing to do (but never for another run's directory)
        check_or_write_spec(out_dir, spec, None)
        return out_dir
    import_textattack(nltk_data=getattr(resources, "nltk_data", None), offline=getattr(resources, "offline", None))
    device = use_device(spec.device)  # the recipe's sentence encoder loads there too
    if model is None:
        from robustness.models.pabee import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(spec.model_dir)
    model = model.to(device)  # fp32 on every device: the attack never casts
    examples = load_run_examples(spec)
    wrapper, attack = prepare_attack(spec, model, tokenizer, resources, cache, examples)

    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(out_dir):
        check_or_write_spec(out_dir, spec, spec_content(spec, model, fingerprint))
        _attack_all(spec, out_dir, wrapper, attack, examples, command=command, progress=progress,
                    on_record=on_record, wall_start=wall_start, cpu_start=cpu_start)
    return out_dir


def load_run_examples(spec: RunSpec) -> Any:
    """The run's deterministic sample (``spec.n`` examples drawn with ``spec.seed``)."""
    return load_examples(spec.dataset, spec.split, data_dir=spec.data_dir, limit=spec.n, seed=spec.seed)


def prepare_attack(spec: RunSpec, model: Any, tokenizer: Any, resources: Any, cache: LayerLogitsCache | None,
                   examples: Any, shared: Any = None) -> tuple[PabeeModelWrapper, Any]:
    """Check ``spec`` against the model and its examples; the wrapper (sharing ``cache``) and the attack
    (sharing model-independent work through ``shared``, a ``SharedWork``, when given)."""
    from robustness.attack.wrapper import PabeeModelWrapper

    check_run_request(spec.setting, num_layers=int(model.num_layers), head=model.head, where=spec.model_dir,
                      goal=spec.goal, goal_target=spec.goal_target)
    if len(examples.label_names) != model.num_labels:
        raise ValueError(f"{spec.dataset} has {len(examples.label_names)} labels, the model {model.num_labels}")
    wrapper = PabeeModelWrapper(model, tokenizer, spec.setting, batch_size=spec.batch_size,
                                max_length=spec.max_length, cache=cache)
    attack = _build_attack(spec, wrapper, resources, shared)
    # the wrapper batches (spec.batch_size) and length-sorts whatever the goal function hands it at once
    attack.goal_function.batch_size = max(attack.goal_function.batch_size, 8 * spec.batch_size)
    return wrapper, attack


def _attack_all(spec: RunSpec, out_dir: Path, wrapper: PabeeModelWrapper, attack: Any, examples: Any, *,
                command: str | None, progress: bool, on_record: Callable[[AttackRecord], None] | None,
                wall_start: float, cpu_start: float) -> None:
    records_path = out_dir / RECORDS_FILE
    truncate_torn_tail(records_path)
    records = read_records(records_path)
    done = _finished_ids(records, examples.indices, records_path)
    run_info: dict[str, Any] = {
        "run_id": spec.run_id, "status": "running", "started_at": utc_now(), "finished_at": None, "seed": spec.seed,
        "versions": versions(), "command": command, "num_examples": len(examples), "resumed_records": len(done),
        "num_records": len(done), "error": None,
        "device": device_label(next(wrapper.model.parameters()).device),  # this session's; a resume may differ
    }
    write_json_atomic(out_dir / RUN_FILE, run_info)
    setup_s = time.perf_counter() - wall_start
    counts = {k: sum(r["result"] == k for r in records) for k in ("succeeded", "failed", "skipped")}
    columns = tuple(examples.info.text_columns)
    bar = tqdm(total=len(examples), initial=len(done), desc=spec.run_id, unit="ex", disable=not progress)
    try:
        for eid, (text, label, index) in enumerate(zip(examples.texts, examples.labels, examples.indices, strict=True)):
            if eid in done:
                continue
            record = attack_example(attack, wrapper, columns, text, label, (eid, index), spec)
            append_record(records_path, record)
            records.append(record)
            counts[record["result"]] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update(1)
            if on_record is not None:
                on_record(record)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM under the CLI (robustness.signals)
        run_info.update(status="interrupted", signal=signal_name(exc), error=None)
        raise
    except BaseException as exc:
        run_info.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        run_info["status"] = "complete"
    finally:
        bar.close()
        # the true count: a signal can land between a record's append and the list's (whole lines count)
        with contextlib.suppress(ValueError, OSError):
            records = read_records(records_path)
        counts = {k: sum(r["result"] == k for r in records) for k in ("succeeded", "failed", "skipped")}
        run_info.update(
            finished_at=utc_now(), num_records=len(records), counts=counts,
            timings={"wall_time_s": time.perf_counter() - wall_start, "setup_time_s": setup_s,
                     "attack_time_s": sum(r["attack_time_s"] for r in records),
                     "cpu_time_s": time.process_time() - cpu_start},  # this process, all threads
            cache={**wrapper.cache.stats(), "num_encoded": wrapper.num_encoded},
        )
        write_json_atomic(out_dir / RUN_FILE, run_info)


def _start_afresh(run_dir: Path) -> None:
    """Remove a run's own files (spec, run, records) so the run starts afresh; nothing else is touched."""
    for name in (SPEC_FILE, RUN_FILE, RECORDS_FILE):
        (run_dir / name).unlink(missing_ok=True)


def run_is_complete(run_dir: str | Path) -> bool:
    """Whether ``run_dir/run.json`` says the run finished."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") == "complete"
    except json.JSONDecodeError:
        return False
