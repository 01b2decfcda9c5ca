"""Benchmark (not a test): wall-clock speed-up of true early exit vs its layer speed-up, per patience.

For one PABEE model on a dataset split, at one batch size: one all-layer pass gives every patience's
layer speed-up (L / mean exit layer); then true early exit (the batch shrinks as examples exit) and full
depth are timed in ABBA order (full, early, early, full; :func:`robustness.models.evaluate.paired_speedup`),
``--repeats`` times, and the median ratio full/early is the wall speed-up.
The script also evaluates the reference code's per-batch rule (one counter for the whole batch,
``torch.all``): its accuracy, layer speed-up and measured wall speed-up at the same batch size.

    python scripts/bench_early_exit.py --model out/sst2-minilm/models/pabee-minilm \
        --data-dir ../shared/data --batch-size 32 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics

import torch

from robustness.data import load_examples
from robustness.models.batching import encode, token_lengths
from robustness.models.evaluate import all_layer_logits, paired_speedup
from robustness.models.exits import reference_batch_patience_exit
from robustness.models.pabee import load_model_and_tokenizer


def _run(fn, batches) -> None:
    for batch in batches:
        fn(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", default="glue/sst2")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--data-dir")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    examples = load_examples(args.dataset, args.split, data_dir=args.data_dir)
    model, tokenizer = load_model_and_tokenizer(args.model)
    if model.head != "pabee":
        raise SystemExit("bench_early_exit.py: the model must have a PABEE head")
    L = model.num_layers
    # Batches in dataset order (as a user would stream them); padding per batch only.
    order = list(range(len(examples)))
    index_batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    batches = [encode(tokenizer, [examples.texts[i] for i in idx], args.max_length) for idx in index_batches]
    logits = all_layer_logits(model, tokenizer, examples.texts, batch_size=64, max_length=args.max_length)
    gold = torch.tensor(examples.labels)
    print(f"model={args.model} L={L} n={len(examples)} batch={args.batch_size} threads={torch.get_num_threads()} "
          f"mean_tokens={statistics.mean(token_lengths(tokenizer, examples.texts, args.max_length)):.1f}")

    def full() -> None:
        _run(lambda b: model.early_exit(**b, setting=None), batches)

    settings = list(range(1, L))
    _run(lambda b: model.early_exit(**b, setting=None), batches[:3])  # warm-up
    wall: dict[str, float] = {}
    for p in settings:
        wall[f"pabee{p}"] = paired_speedup(
            full, lambda p=p: _run(lambda b: model.early_exit(**b, setting=p), batches), repeats=args.repeats)
        wall[f"reference{p}"] = paired_speedup(
            full, lambda p=p: _run(lambda b: model.reference_batch_early_exit(**b, patience=p), batches),
            repeats=args.repeats)

    print("rule       patience  accuracy  mean_exit  layer_speedup  wall_speedup  wall/layer")
    for p in settings:
        exit_layer, out = model.exit_from_layer_logits(logits, p)
        ref_exits, ref_out = [], []
        for idx in index_batches:
            e, o = reference_batch_patience_exit(logits[:, idx], p)
            ref_exits.append(e)
            ref_out.append(o)
        for rule, exits, chosen in (("pabee", exit_layer, out),
                                    ("reference", torch.cat(ref_exits), torch.cat(ref_out))):
            acc = (chosen.argmax(-1) == gold).float().mean().item()
            mean_exit = exits.float().mean().item()
            layer_speedup = L / mean_exit
            wall_speedup = wall[f"{rule}{p}"]
            print(f"{rule:10s} {p:8d}  {acc:8.4f}  {mean_exit:9.3f}  {layer_speedup:13.3f}  {wall_speedup:12.3f}"
                  f"  {wall_speedup / layer_speedup:10.3f}")
    full_acc = (logits[-1].argmax(-1) == gold).float().mean().item()
    print(f"full depth accuracy {full_acc:.4f}")


if __name__ == "__main__":
    main()
