"""Adversarial fine-tuning in the style of A2T (Yoo & Qi 2021, arXiv:2109.00544): ``robustness train --adversarial``.

Semantics (what each epoch ``e`` of :func:`train_adversarial` does):

* It starts from the clean model ``--init`` (weights and tokenizer) with a fresh AdamW and a fresh linear
  warmup/decay schedule: the init model's optimizer state is not saved with it, and A2T too fine-tunes with a
  new optimizer. The training options (data, epochs, lr, batch size, ...) are the init model's own
  (:func:`~robustness.attack.adversarial_options.adversarial_config`).
* Before the epoch's first step it attacks :func:`attacked_subset` -- ``round(R * N)`` training examples
  (half up), drawn without replacement by ``(seed, epoch)`` -- against the *current* model (the weights at the
  end of epoch ``e - 1``) at the attack setting, each with its own seed and TextAttack's caches cleared, as an
  attack run does. The global RNGs are saved and restored around the attacks: they do not change the training's.
* Every succeeded attack gives one adversarial example: its final text with the example's *original* label.
  Failed and skipped attacks give none (as in A2T, only successful adversarial examples are added).
* Same optimizer-step budget as the clean model: the epoch has exactly the clean training's batches
  (:func:`~robustness.models.trainer.clean_batches`, the same order for the same seed), so the fine-tuning runs
  ``epochs x ceil(N / batch size)`` steps, the clean training's count (checked against the init model's
  ``train.json``). The adversarial examples are *added*: shuffled by ``(seed, epoch)`` and dealt round-robin
  over the epoch's steps, so step ``j`` trains on its clean batch plus adversarial examples ``j, j + S, ...``.
  The loss is the model's own (PABEE: ``Σ_i i·CE_i / Σ_i i`` over all layers; a baseline: CE of the last layer)
  on that mixed batch, for both goals -- for slowdown texts it teaches the early classifiers to be confident
  (and right) on the texts that delayed them.
* Resumable like clean training: each attacked example is appended (fsynced) to ``.<name>.adversarial.jsonl``
  beside the checkpoint, whose first line is the fine-tuning's identity; a resumed epoch reads its examples
  from there (attacking only the ones still missing), so it replays the same batches, bit for bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustness.attack.adversarial_options import AdversarialOptions, check_adversarial, clean_budget, init_record
from robustness.models.trainer import Batch, EpochBatches, TrainSession, clean_batches, finish, fit, open_session

__all__ = ["Attacker", "adversarial_path", "attacked_subset", "mix_batches", "train_adversarial"]

#: ``attacker(session, options, todo, epoch)``: for each ``(index, text, label)`` of ``todo``, in order, one
#: entry ``{"result", "adv_text", "num_queries", "attack_time_s"}`` against ``session.model`` as it is now.
Attacker = Callable[[TrainSession, AdversarialOptions, list[tuple[int, Any, int]], int], Iterator[dict[str, Any]]]


def attacked_subset(n: int, ratio: float, seed: int, epoch: int) -> list[int]:
    """The training indices attacked in ``epoch``: ``round(ratio * n)`` (half up) of ``range(n)`` without
    replacement, in drawing order, determined by ``(seed, epoch)`` alone."""
    k = min(n, int(np.floor(ratio * n + 0.5)))
    rng = np.random.default_rng([seed, epoch, 0xA27])
    return [int(i) for i in rng.permutation(n)[:k]]


def mix_batches(clean: Sequence[Batch], adversarial: Sequence[tuple[Any, int]], seed: int, epoch: int) -> list[Batch]:
    """The clean batches, each extended by its share of ``adversarial`` ``(text, label)`` pairs: shuffled by
    ``(seed, epoch)``, then dealt round-robin (step ``j`` gets pairs ``j, j + S, ...`` of S steps)."""
    order = np.random.default_rng([seed, epoch, 0xA28]).permutation(len(adversarial))
    shuffled = [adversarial[i] for i in order]
    steps = len(clean)
    mixed = []
    for j, (texts, labels) in enumerate(clean):
        extra = shuffled[j::steps]
        mixed.append(([*texts, *(t for t, _ in extra)], [*labels, *(y for _, y in extra)]))
    return mixed


def adversarial_path(out: str | Path) -> Path:
    """Where the adversarial examples of the fine-tuning into ``out`` are kept until it is saved."""
    out = Path(out)
    return out.parent / f".{out.name}.adversarial.jsonl"


def _example_seed(seed: int, epoch: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()[:4], "big")


@contextlib.contextmanager
def _isolated_rng() -> Iterator[None]:
    """The python, numpy and torch RNG states (CUDA's too) are what they were before the block."""
    import torch

    py, npy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def textattack_attacker(resources: Any = None, progress: bool = True) -> Attacker:
    """The recipe's attack against the current model (a fresh wrapper and layer cache per epoch: the weights
    changed), one example at a time as :func:`robustness.attack.runner.attack_example` attacks it."""

    def attack(session: TrainSession, options: AdversarialOptions, todo: list[tuple[int, Any, int]],
               epoch: int) -> Iterator[dict[str, Any]]:
        from collections import OrderedDict

        from tqdm.auto import tqdm

        from robustness.attack.recipes import build_attack
        from robustness.attack.wrapper import PabeeModelWrapper
        from robustness.models.train import seed_everything
        from robustness.resources.textattack_compat import import_textattack

        textattack = import_textattack(getattr(resources, "nltk_data", None),
                                       offline=getattr(resources, "offline", None))
        results = textattack.attack_results
        config = session.config
        wrapper = PabeeModelWrapper(session.model, session.tokenizer, options.attack_setting,
                                    batch_size=config.batch_size, max_length=config.max_length)
        attack = build_attack(options.recipe, wrapper, resources=resources, query_budget=options.query_budget,
                              goal=options.goal)
        columns = tuple(session.train.info.text_columns)
        for index, text, label in tqdm(todo, desc=f"attack epoch {epoch} ({options.recipe})", unit="ex",
                                       disable=not progress):
            seed_everything(_example_seed(config.seed, epoch, index))
            attack.clear_cache()
            wrapper.start_example()
            start = time.perf_counter()
            values = text if isinstance(text, tuple | list) else (text,)
            attacked = textattack.shared.AttackedText(OrderedDict(zip(columns, values, strict=True)))
            result = attack.attack(attacked, int(label))
            adv = None
            if isinstance(result, results.SuccessfulAttackResult):
                outcome, adv = "succeeded", result.perturbed_result.attacked_text.tokenizer_input
            elif isinstance(result, results.FailedAttackResult):
                outcome = "failed"
            else:
                outcome = "skipped"
            yield {"result": outcome, "adv_text": adv, "num_queries": int(result.num_queries),
                   "attack_time_s": time.perf_counter() - start}

    return attack


class _Store:
    """``.<name>.adversarial.jsonl``: the identity line, then one line per attacked example (epoch, position in
    the epoch's subset, index, label, result, adversarial text), appended and fsynced."""

    def __init__(self, path: Path, identity: dict[str, Any], keep_epochs: int) -> None:
        self.path, self.entries = path, {}
        header = {"identity": identity}
        lines = path.read_bytes().split(b"\n") if path.is_file() else []
        complete = lines[:-1]  # the part after the last newline is a torn write (or empty)
        try:
            same = bool(complete) and json.loads(complete[0]) == json.loads(json.dumps(header))
            rows = [json.loads(line) for line in complete[1:]] if same else []
        except (json.JSONDecodeError, UnicodeDecodeError):
            same, rows = False, []
        rows = [r for r in rows if r["epoch"] <= keep_epochs]  # later epochs' attacks saw other weights
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for row in [header, *rows]:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        for row in rows:
            self.entries[(row["epoch"], row["position"])] = row

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.entries[(row["epoch"], row["position"])] = row

    def epoch(self, epoch: int) -> list[dict[str, Any]]:
        return [row for (e, _), row in sorted(self.entries.items()) if e == epoch]


def _text(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _epoch_summary(epoch: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """An epoch's line of ``train.json``: examples attacked, adversarial examples found (= succeeded), outcomes,
    attack time and queries."""
    counts = {k: sum(r["result"] == k for r in rows) for k in ("succeeded", "failed", "skipped")}
    return {"epoch": epoch, "attacked": len(rows), "adversarial_examples": counts["succeeded"], **counts,
            "attack_time_s": float(sum(r["attack_time_s"] for r in rows)),
            "num_queries": int(sum(r["num_queries"] for r in rows))}


def adversarial_batches(session: TrainSession, options: AdversarialOptions, store: _Store, attacker: Attacker,
                        summary: dict[int, dict[str, Any]]) -> EpochBatches:
    """The :data:`EpochBatches` of the module docstring; ``summary`` gets each epoch's counts and attack time."""
    clean = clean_batches(session)
    config, train = session.config, session.train

    def batches(epoch: int) -> list[Batch]:
        subset = attacked_subset(len(train), options.ratio, config.seed, epoch)
        done = {row["position"] for row in store.epoch(epoch)}
        todo = [(p, i) for p, i in enumerate(subset) if p not in done]
        if todo:
            with _isolated_rng():
                entries = attacker(session, options, [(i, train.texts[i], train.labels[i]) for _, i in todo], epoch)
                for (position, index), entry in zip(todo, entries, strict=True):
                    store.append({"epoch": epoch, "position": position, "index": index, "label": train.labels[index],
                                  **entry})
        rows = store.epoch(epoch)
        if [r["index"] for r in rows] != subset:
            raise ValueError(f"{store.path}: epoch {epoch}'s examples are not its attacked subset; delete the file")
        found = [(_text(r["adv_text"]), int(r["label"])) for r in rows if r["result"] == "succeeded"]
        summary[epoch] = _epoch_summary(epoch, rows)
        return mix_batches(clean(epoch), found, config.seed, epoch)

    return batches


def train_adversarial(config: Any, options: AdversarialOptions, *, resources: Any = None, progress: bool = True,
                      overwrite: bool = False, restart: bool | None = None, checkpoint_every: int | None = None,
                      hint: str = "pass --overwrite to start afresh", attacker: Attacker | None = None) -> Path:
    """Fine-tune ``options.init`` adversarially into ``config.out`` (module docstring); returns it. Its
    ``train.json`` records the usual training record plus ``adversarial``: the options, the init model's
    fingerprint, the step budget and, per epoch, the examples attacked, found and the attack time."""
    from robustness.models.fingerprint import model_fingerprint

    check_adversarial(options, mlm=getattr(resources, "mlm", None))
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1 optimizer step, got {checkpoint_every}")
    fingerprint = model_fingerprint(options.init)
    session = open_session(config, overwrite=overwrite, restart=overwrite if restart is None else restart,
                           hint=hint, extra_identity=options.identity(fingerprint), init=options.init)
    clean_steps = clean_budget(init_record(options.init))
    if clean_steps is not None and clean_steps != session.total_steps:
        raise ValueError(f"--init {options.init} was trained for {clean_steps} optimizer steps, this fine-tuning "
                         f"would take {session.total_steps} ({config.epochs} epochs x {session.steps_per_epoch}); "
                         "keep its --epochs, --batch-size and --limit (the same step budget)")
    store = _Store(adversarial_path(config.out), session.identity, keep_epochs=session.epoch)
    summary: dict[int, dict[str, Any]] = {}
    batches = adversarial_batches(session, options, store, attacker or textattack_attacker(resources, progress),
                                  summary)
    fit(session, batches, checkpoint_every=checkpoint_every, progress=progress)
    for epoch in range(1, config.epochs + 1):  # epochs trained in an earlier session: counted from the file
        if epoch not in summary:
            summary[epoch] = _epoch_summary(epoch, store.epoch(epoch))
    record = {"recipe": options.recipe, "goal": options.goal, "ratio": options.ratio,
              "setting": options.attack_setting, "query_budget": options.query_budget, "init": str(options.init),
              "init_fingerprint": fingerprint,
              "budget": {"optimizer_steps": session.total_steps, "clean_optimizer_steps": clean_steps,
                         "epochs": config.epochs, "steps_per_epoch": session.steps_per_epoch,
                         "rule": "the clean training's batches and step count; adversarial examples added"},
              "optimizer": "fresh AdamW and linear warmup/decay schedule from the init weights",
              "epochs": [summary[e] for e in sorted(summary)],
              "attack_time_s": float(sum(s["attack_time_s"] for s in summary.values()))}
    out = finish(session, {"checkpoint_every": checkpoint_every, "adversarial": record})
    with contextlib.suppress(FileNotFoundError):
        store.path.unlink()
    return out
