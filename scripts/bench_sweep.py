"""Sweep benchmark: one PABEE model at several exit settings on one recipe, as ONE task (the settings share the
layer cache and TextAttack's model-independent work, example by example), vs each setting alone (its own
task: its own caches). Same process, one torch thread, fresh caches and attacks for every measurement (the
model is loaded once and one untimed warm-up run goes first).

Prints, as medians over ``--reps`` (order alternating): the sweep's wall time, each run alone, the ratios
sweep / mean run alone (goal <= 2.0) and sweep / the deepest run alone, the texts, tokens and token-layers
encoded (the sweep's model work over a mean run alone's: the model forward's part of the ratio, which no
sharing of TextAttack's work can lower), and whether the sweep's records equal the runs alone.

    python scripts/bench_sweep.py --model out/v2/models/pabee-minilm-sst2 --resources ../shared \
        --recipe deepwordbug --n 100 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def _timed(task, resources) -> tuple[float, list[dict], tuple[int, int]]:
    """``(seconds, shard results, (tokens, token-layers) the task's wrappers encoded)``."""
    from robustness.resources import sentence_encoder
    from robustness.suite import work

    work._GROUP.clear()  # fresh attacks and caches: set-up is part of every measurement
    sentence_encoder.clear_caches()  # the encoder's embeddings are per process: without this, whatever ran first
    # would fill them for the runs after it (textfooler's runs alone would reuse the sweep's)
    start = time.perf_counter()
    results = work.run_task(task, resources)
    seconds = time.perf_counter() - start
    wrappers = [wrapper for wrapper, _ in work._GROUP["attacks"].values()]
    return seconds, results, (sum(w.tokens_encoded for w in wrappers), sum(w.token_layers_encoded for w in wrappers))


def _strip(results: list[dict]) -> dict[str, list[dict]]:
    return {r["run_id"]: [{k: v for k, v in rec.items() if k != "attack_time_s"} for rec in r["records"]]
            for r in results}


def bundle_resources(parser: argparse.ArgumentParser, path: str | None):
    """``(Resources, data dir)`` of the offline bundle at ``path`` (else $ROBUSTNESS_RESOURCES)."""
    from robustness.attack.recipes import Resources
    from robustness.resources.bundle import find_bundle

    bundle = find_bundle(path)
    if bundle is None:
        parser.error("needs --resources DIR (or ROBUSTNESS_RESOURCES)")
    resources = Resources.from_args(nltk_data=bundle.part("nltk_data"), lexicons_dir=bundle.part("lexicons"),
                                    offline=True)
    return resources, bundle.part("data_dir")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="saved PABEE model directory")
    parser.add_argument("--recipe", default="deepwordbug")
    parser.add_argument("--settings", nargs="+",
                        default=["patience:1", "patience:2", "patience:3", "patience:4", "patience:5", "full"])
    parser.add_argument("--dataset", default="glue/sst2")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-budget", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--resources", help="offline resource bundle (default: $ROBUSTNESS_RESOURCES)")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()

    from robustness.suite import work
    from robustness.suite.plan import plan_tasks
    from robustness.suite.specs import RunSpec

    resources, data_dir = bundle_resources(parser, args.resources)
    work.init_worker(resources)
    specs = [RunSpec(model_id=Path(args.model).name, model_dir=str(args.model), recipe=args.recipe,
                     dataset=args.dataset, setting=s, split=args.split, n=args.n, seed=args.seed,
                     query_budget=args.query_budget, batch_size=args.batch_size,
                     data_dir=data_dir) for s in args.settings]
    (sweep_task,) = plan_tasks(specs, shard_size=args.n)
    alone_tasks = {s.setting: plan_tasks([s], shard_size=args.n)[0] for s in specs}
    work._model(args.model, "cpu")  # load once, outside the timings (the CPU, as a CPU task loads it)
    _timed(next(iter(alone_tasks.values())), resources)  # warm-up (first builds, lazy imports), not timed

    sweep_s: list[float] = []
    alone_s: dict[str, list[float]] = {s: [] for s in alone_tasks}
    same, encoded, tokens = True, {}, {}
    for rep in range(args.reps):
        order = ["sweep", "alone"] if rep % 2 == 0 else ["alone", "sweep"]
        for mode in order:
            if mode == "sweep":
                seconds, results, tokens["sweep"] = _timed(sweep_task, resources)
                sweep_s.append(seconds)
                sweep_records = _strip(results)
                encoded["sweep"] = sum(r["num_encoded"] for r in results)
            else:
                alone_records, encoded["alone"], tokens["alone"] = {}, 0, (0, 0)
                for setting, task in alone_tasks.items():
                    seconds, results, task_tokens = _timed(task, resources)
                    alone_s[setting].append(seconds)
                    alone_records.update(_strip(results))
                    encoded["alone"] += sum(r["num_encoded"] for r in results)
                    tokens["alone"] = tuple(a + b for a, b in zip(tokens["alone"], task_tokens, strict=True))
                    tokens[setting] = task_tokens
        same = same and sweep_records == alone_records
    sweep = statistics.median(sweep_s)
    alone = {s: statistics.median(v) for s, v in alone_s.items()}
    mean_alone = statistics.mean(alone.values())
    deepest = max(alone, key=lambda s: tokens[s][1])  # the run alone with the most model work (full depth)
    summary = {"sweep_s": sweep, "alone_s": alone, "sweep_over_mean_alone": sweep / mean_alone,
               "sweep_over_each_alone": {s: sweep / v for s, v in alone.items()}, "texts_encoded": encoded,
               "tokens_encoded": {k: v[0] for k, v in tokens.items()},
               "token_layers_encoded": {k: v[1] for k, v in tokens.items()},
               # the model's work: the sweep's over a mean run alone's (tokens, and tokens x layers run)
               "tokens_sweep_over_mean_alone": tokens["sweep"][0] / (tokens["alone"][0] / len(alone)),
               "token_layers_sweep_over_mean_alone": tokens["sweep"][1] / (tokens["alone"][1] / len(alone)),
               "deepest_alone": deepest, "sweep_over_deepest_alone": sweep / alone[deepest],
               "identical_records": same, "reps": {"sweep_s": sweep_s, "alone_s": alone_s}}
    print(f"{args.recipe}, {len(specs)} settings x {args.n} examples, medians of {args.reps} reps:")
    print(f"  sweep (one task) {sweep:.1f}s; alone: {', '.join(f'{k} {v:.1f}s' for k, v in alone.items())}")
    print(f"  RATIO sweep / mean run alone = {summary['sweep_over_mean_alone']:.2f}  (goal <= 2.0); "
          f"sweep / the deepest run alone ({deepest}) = {summary['sweep_over_deepest_alone']:.2f}")
    print(f"  texts encoded: sweep {encoded['sweep']}, all runs alone {encoded['alone']}; tokens encoded: sweep "
          f"{tokens['sweep'][0]}, all runs alone {tokens['alone'][0]} -> sweep / mean run alone "
          f"{summary['tokens_sweep_over_mean_alone']:.2f}")
    print(f"  token-layers run (the model's work): sweep {tokens['sweep'][1]}, all runs alone {tokens['alone'][1]} "
          f"({', '.join(f'{s} {tokens[s][1]}' for s in alone)}) -> sweep / mean run alone "
          f"{summary['token_layers_sweep_over_mean_alone']:.2f}")
    print(f"  identical records: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": summary}, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
