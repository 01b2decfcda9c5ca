"""The stages of ``robustness bench`` around the attacks, each resumable: the suite's models (trained when
missing), the thresholds they reference (calibrated when missing), the record of the attack sample and the
selection set with the setting a ``[verdict] select`` rule pre-registers (:func:`preregister`), the transfers,
the clean accuracy on the selection set that the verdict reads, and the record of the verdict options the report
is judged by (:func:`record_verdict_options`). The command
(:func:`robustness.pipeline.bench`) runs them in order. The stages before the attacks import torch only when they
train, calibrate or apply a select rule, so a Ray driver or a ``--part`` prepares its runs without it otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def locate_models(suite, out: Path, train: bool = True, *, log: Callable[[str], Any] = print,
                  progress: bool = True, resources: Any = None) -> dict[str, str]:
    """Where each model of the suite lives, training the missing ones into ``<out>/models/<id>`` (with
    ``train`` False, a missing model is a ValueError: parts of a job array must not train concurrently). An
    interrupted training resumes from its checkpoint (``<out>/models/.<id>.checkpoint.safetensors``); one made
    with other options than the suite's now is refused for every model before any trains. Models are trained
    init models first: a defended model (:mod:`robustness.suite.defended`) is its init model adversarially
    fine-tuned, attacking with ``resources``. The suite was validated by
    :func:`~robustness.suite.validate.validate_suite`. ``log`` takes what the stages say (every stage here;
    default ``print``), ``progress`` shows the training bar."""
    from robustness.attack.adversarial_training import adversarial_path
    from robustness.models.checkpoint import checkpoint_path, remove_checkpoint
    from robustness.models.train import TrainConfig
    from robustness.models.trainer import check_checkpoint
    from robustness.suite.defended import split_train, training_order

    dirs, to_train = {}, []
    for model in training_order(suite.models):
        if model.path is not None:
            dirs[model.id] = model.path
            continue
        target = out / "models" / model.id
        dirs[model.id] = str(target)
        own, adv = split_train(model.train)
        if (target / "train.json").is_file():
            log(f"[bench] model {model.id}: already trained at {target}")
            remove_checkpoint(checkpoint_path(target))  # left by a kill between the save and its deletion
            adversarial_path(target).unlink(missing_ok=True)  # the same for an adversarial fine-tuning's examples
        elif not train:
            raise ValueError(f"model {model.id!r} is not trained yet; run `robustness bench SUITE --out {out} "
                             "--train-only` before the parts")
        else:
            hint = f"delete {checkpoint_path(target).name} in {target.parent} to start afresh"
            config, step = None, None
            if not adv:
                config = TrainConfig(out=str(target), head=model.head, dataset=suite.dataset, data_dir=suite.data_dir,
                                     **own)
                step = check_checkpoint(config, hint)
            elif (Path(dirs[adv["init"]]) / "config.json").is_file():  # its init exists: check its checkpoint now
                step = _check_defended_checkpoint(suite, model, dirs, hint)
            to_train.append((model, config, hint, step))
    for model, config, hint, step in to_train:
        resuming = "" if step is None else f" resuming at step {step}"
        if config is None:
            _train_defended(suite, model, dirs, hint, resuming, log=log, progress=progress, resources=resources)
            continue
        log(f"[bench] model {model.id}: training ({model.head}) into {config.out}{resuming}")
        _train_clean(config, hint, progress)
    return dirs


def _check_defended_checkpoint(suite, model, dirs: dict[str, str], hint: str) -> int | None:
    """The step a defended model's checkpoint would resume (None: none); ``ValueError`` when made with other options."""
    from robustness.attack.adversarial_options import adversarial_config
    from robustness.models.fingerprint import model_fingerprint
    from robustness.models.trainer import check_checkpoint
    from robustness.suite.defended import adversarial_options, split_train

    own, adv = split_train(model.train)
    options = adversarial_options(model, dirs[adv["init"]])
    config = adversarial_config(options.init, {"dataset": suite.dataset, **own}, out=dirs[model.id],
                                data_dir=suite.data_dir)
    return check_checkpoint(config, hint, options.identity(model_fingerprint(options.init)))


def _train_clean(config, hint: str, progress: bool) -> None:
    from robustness.models.train import train_model

    train_model(config, overwrite=True, restart=False, hint=hint, progress=progress)


def _train_defended(suite, model, dirs: dict[str, str], hint: str, resuming: str, *, log: Callable[[str], Any],
                    progress: bool, resources: Any) -> None:
    """Fine-tune ``model`` adversarially from its init (trained by now) into ``dirs[model.id]``."""
    from robustness.attack.adversarial_options import adversarial_config
    from robustness.attack.adversarial_training import train_adversarial
    from robustness.suite.defended import adversarial_options, split_train

    own, adv = split_train(model.train)
    init = dirs[adv["init"]]
    options = adversarial_options(model, init)
    config = adversarial_config(init, {"dataset": suite.dataset, **own}, out=dirs[model.id], data_dir=suite.data_dir)
    log(f"[bench] model {model.id}: adversarial fine-tuning ({options.recipe}, {options.goal}, R={options.ratio}) "
        f"of {adv['init']} into {config.out}{resuming}")
    train_adversarial(config, options, resources=resources, overwrite=True, restart=False, hint=hint,
                      progress=progress)


def clean_tables(suite, model_dirs: dict[str, str], fingerprints: dict[str, str], out: Path, *,
                 log: Callable[[str], Any] = print) -> pd.DataFrame | None:
    """Each model's clean accuracy at its suite settings on the selection set (the split's examples outside the
    attack sample, or those of the declared selection split: :func:`~robustness.suite.selection.draw_selection`),
    written to ``<out>/clean/<model_id>.csv`` with the model's fingerprint (``fingerprints``: model id -> the
    one the command computed before the attacks) and the selection set's key, and reused while both match (the
    verdict's eligibility and a ``[verdict] select`` rule read them); None when the selection set is empty."""
    import pandas as pd

    from robustness.devices import resolve_device
    from robustness.models.evaluate import off_sample_table
    from robustness.models.pabee import load_model_and_tokenizer
    from robustness.provenance import write_csv_atomic
    from robustness.suite.selection import draw_selection

    division, examples, _ = draw_selection(suite)
    if not division.selection_set:
        log("[bench] no example outside the attack sample: the verdict measures clean accuracy on the sample")
        return None
    excluded = division.attack_sample if division.selection_split == division.split else ()
    folder = out / "clean"
    folder.mkdir(parents=True, exist_ok=True)
    tables = []
    for model in suite.models:
        path = folder / f"{model.id}.csv"
        # reused only for the same weights, the same selection set and every setting of the suite
        key = {"model_fingerprint": fingerprints[model.id], "selection_set": division.key}
        try:
            cached = pd.read_csv(path, dtype={"model_fingerprint": str}) if path.is_file() else pd.DataFrame()
        except ValueError as exc:  # not CSV, not UTF-8
            raise ValueError(f"{path}: cannot read it ({' '.join(str(exc).split())[:80]}); delete it to evaluate "
                             "again") from None
        settings = model.clean_settings(model_dirs[model.id])  # calibrated thresholds and candidates included
        fresh = (all(c in cached and set(cached[c]) == {v} for c, v in key.items())
                 and {s.label for s in settings} <= set(cached.get("setting", [])))
        if not fresh:
            log(f"[bench] clean evaluation of {model.id} on the selection set")
            net, tokenizer = load_model_and_tokenizer(model_dirs[model.id])
            net = net.to(resolve_device(suite.device))
            cached = off_sample_table(net, tokenizer, examples, excluded, settings,
                                      batch_size=suite.batch_size, max_length=suite.max_length)
            cached.insert(0, "model_id", model.id)
            cached = cached.assign(**key)
            write_csv_atomic(path, cached)
        tables.append(cached)
    return pd.concat(tables, ignore_index=True)


def preregister(suite, model_dirs: dict[str, str], fingerprints: dict[str, str], out: Path, *,
                log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Before any attack: record the division of the suite's split into the attack sample and the selection set
    in ``<out>/selection.json`` and, with a ``[verdict] select`` rule, evaluate the clean tables on the selection
    set (:func:`clean_tables`, reused later) and record the setting the rule pre-registers for each early-exit
    model and baseline with the table it was chosen from. Returns what the file holds."""
    from robustness.models.saved import saved_facts
    from robustness.suite.selection import choose, draw_selection, write_selection

    division = draw_selection(suite)[0]
    choices = None
    if suite.verdict.select is not None:
        clean = clean_tables(suite, model_dirs, fingerprints, out, log=log)
        if clean is None:
            raise ValueError(f"[verdict] select = {suite.verdict.select!r} needs a selection set")
        facts = {m.id: saved_facts(model_dirs[m.id]) for m in suite.models}
        choices = choose(suite.verdict.select, clean, {k: (f.head, f.num_layers) for k, f in facts.items()},
                         suite.verdict.margin)
        for c in choices:
            said = c["setting"] or "none (no patience within the margin: no eligible setting)"
            log(f"[bench] pre-registered by {c['rule']} for {c['model']} vs {c['baseline']}: {said}")
    data = write_selection(out, suite, division, choices, log=log)
    log(f"[bench] attack sample {len(division.attack_sample)} and selection set {len(division.selection_set)} "
        f"examples recorded in {out / 'selection.json'}")
    return data


def record_verdict_options(suite, out: Path, *, log: Callable[[str], Any] = print) -> Path:
    """Before the report: record the suite's ``[verdict]`` options, which the report is judged by, in
    ``<out>/verdict.json`` (:mod:`robustness.schema.verdict_file`), atomically, rewriting it when a resumed
    bench's suite changed them; ``robustness report`` on the output (or its packed copy) reads them back."""
    from robustness.schema.verdict_file import VERDICT_FILE, write_verdict_options

    path = out / VERDICT_FILE
    existed = path.is_file()
    if write_verdict_options(out, suite.verdict):
        log(f"[bench] verdict options {'changed: rewritten in' if existed else 'recorded in'} {path}")
    return path


def calibrate_thresholds(suite, model_dirs: dict[str, str], *, log: Callable[[str], Any] = print) -> None:
    """Calibrate the thresholds the suite's models reference (``calibrated``) but their calibration.json lacks,
    on the selection set (:func:`~robustness.suite.selection.draw_selection`; the whole split if it is empty),
    and record them."""
    from robustness.schema.settings import calibrated_setting, read_calibration
    from robustness.suite.selection import draw_selection

    split = None  # the split and the attack sample, loaded for the first model that needs them
    for model in suite.models:
        known = read_calibration(model_dirs[model.id])
        targets = sorted({calibrated_setting(r)[1] for r in model.fixed_calibrated
                          if "@".join(calibrated_setting(r)) not in known})
        if not targets:
            continue
        # torch only when there is something to calibrate: a Ray driver or a part does not import it otherwise
        from robustness.devices import resolve_device
        from robustness.models.calibrate import write_calibration
        from robustness.models.evaluate import accuracy_table, all_layer_logits, calibrate
        from robustness.models.pabee import load_model_and_tokenizer

        log(f"[bench] calibrating {model.id} to {', '.join(targets)}")
        if split is None:
            split = draw_selection(suite)
        division, examples, keep = split
        keep = keep or list(range(len(examples)))  # no selection set: the whole split
        net, tokenizer = load_model_and_tokenizer(model_dirs[model.id])
        net = net.to(resolve_device(suite.device))
        logits = all_layer_logits(net, tokenizer, [examples.texts[i] for i in keep], batch_size=suite.batch_size,
                                  max_length=suite.max_length)
        matched = calibrate(net, logits, targets)
        table = accuracy_table(net, logits, [examples.labels[i] for i in keep], list(matched.values()))
        rows = dict(zip(table["setting"], table.to_dict(orient="records"), strict=False))
        where = {"dataset": suite.dataset, "split": examples.split, "n": len(keep),
                 "excludes_attack_sample": bool(division.selection_set), "selection_set": division.key}
        write_calibration(model_dirs[model.id], [{"reference": ref, **rows[s.label], **where}
                                                 for ref, s in matched.items()])


def run_transfers(suite, model_dirs: dict[str, str], out: Path, command: str | None, *,
                  log: Callable[[str], Any] = print) -> None:
    """Run the suite's transfers (each resumable) into ``<out>/transfers/<id>``, one model load and one layer
    cache per target model: the settings of a model replay the same texts, which are encoded once."""
    from robustness.attack.runner import run_is_complete
    from robustness.attack.transfer import run_transfer
    from robustness.attack.wrapper import LayerLogitsCache
    from robustness.models.pabee import load_model_and_tokenizer

    specs = [t for t in suite.transfer_specs(model_dirs, out / "runs")
             if not run_is_complete(out / "transfers" / t.run_id)]
    loaded: dict[str, tuple] = {}
    for i, spec in enumerate(specs, 1):
        if spec.model_dir not in loaded:
            loaded[spec.model_dir] = (*load_model_and_tokenizer(spec.model_dir), LayerLogitsCache())
        model, tokenizer, cache = loaded[spec.model_dir]
        log(f"[bench] transfer {i}/{len(specs)}: {spec.run_id}")
        run_transfer(spec, out / "transfers" / spec.run_id, model=model, tokenizer=tokenizer, cache=cache,
                     command=command)


def run_triggers(suite, model_dirs: dict[str, str], out: Path, command: str | None, *,
                 log: Callable[[str], Any] = print) -> None:
    """Search and evaluate the suite's universal triggers (each resumable) into ``<out>/triggers/<run_id>``, then
    replay each on its ``replay_on`` targets; one model load per model."""
    from robustness.attack.trigger import replay_trigger, run_trigger
    from robustness.models.pabee import load_model_and_tokenizer
    from robustness.suite.triggers import trigger_jobs

    jobs = trigger_jobs(suite, model_dirs)
    loaded: dict[str, tuple] = {}

    def load(model_dir: str) -> tuple:
        if model_dir not in loaded:
            loaded[model_dir] = load_model_and_tokenizer(model_dir)
        return loaded[model_dir]

    for i, (spec, own, replays) in enumerate(jobs, 1):
        log(f"[bench] trigger {i}/{len(jobs)}: {spec.run_id}")
        model, tokenizer = load(spec.model_dir)
        where = run_trigger(spec, out / "triggers" / spec.run_id, evaluate_on=own, model=model, tokenizer=tokenizer,
                            command=command, progress=False)
        for model_dir, settings in replays:
            target, target_tokenizer = load(model_dir)
            replay_trigger(where, model_dir, settings, model=target, tokenizer=target_tokenizer,
                           batch_size=spec.batch_size, max_length=spec.max_length)
