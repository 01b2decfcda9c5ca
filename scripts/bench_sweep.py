"""Sweep benchmark: one recipe at patience 1..5 + full on one PABEE model, with one shared
LayerLogitsCache (each text encoded once for all settings) vs separate runs (a private cache each).

Reports wall time of both sweeps (median over ``--reps``, order alternating), the ratio shared/separate,
the texts really encoded (cache misses), and whether both sweeps wrote the same records.

    python scripts/bench_sweep.py --model out/models/pabee-minilm --data-dir ../shared/data \
        --nltk-data ../shared/nltk_data --recipe deepwordbug --n 50 --json sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def sweep(model, tokenizer, args, patiences, resources, root: Path, shared: bool):
    """Run every patience into ``root``; returns (seconds, texts encoded, records per patience label)."""
    from robustness.attack.records import read_records
    from robustness.attack.runner import run_attack
    from robustness.attack.wrapper import LayerLogitsCache
    from robustness.suite.specs import RunSpec

    cache = LayerLogitsCache() if shared else None
    encoded, records, per_run = 0, {}, {}
    start = time.perf_counter()
    for patience in patiences:
        run_start = time.perf_counter()
        spec = RunSpec(model_id=Path(args.model).name, model_dir=str(args.model), recipe=args.recipe,
                       dataset=args.dataset, setting=patience, split=args.split, n=args.n, seed=args.seed,
                       query_budget=args.query_budget, batch_size=args.batch_size, data_dir=args.data_dir)
        out = root / patience.label
        run_attack(spec, out, resources=resources, progress=False, model=model, tokenizer=tokenizer, cache=cache)
        per_run[patience.label] = time.perf_counter() - run_start
        if not shared:
            encoded += json.loads((out / "run.json").read_text())["cache"]["misses"]
        records[patience.label] = [{k: v for k, v in r.items() if k != "attack_time_s"}
                                   for r in read_records(out / "records.jsonl")]
    elapsed = time.perf_counter() - start
    return elapsed, cache.misses if shared else encoded, records, per_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="saved PABEE model directory")
    parser.add_argument("--recipe", default="deepwordbug")
    parser.add_argument("--patience", nargs="+", default=["1", "2", "3", "4", "5", "full"])
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-budget", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTNESS_DATA_DIR"))
    parser.add_argument("--nltk-data", default=os.environ.get("NLTK_DATA"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args()
    if args.nltk_data:
        os.environ["NLTK_DATA"] = args.nltk_data
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from robustness.models.pabee import load_model_and_tokenizer
    from robustness.suite.specs import parse_setting

    patiences = [parse_setting(p) for p in args.patience]
    from robustness.attack.recipes import Resources

    resources = Resources.from_args(nltk_data=args.nltk_data)
    model, tokenizer = load_model_and_tokenizer(args.model)
    times: dict[str, list[float]] = {"shared": [], "separate": []}
    one_run: dict[str, list[float]] = {}  # separate mode: seconds of each setting's own run
    with tempfile.TemporaryDirectory() as workdir:
        for rep in range(args.reps):
            for mode in (("shared", "separate") if rep % 2 == 0 else ("separate", "shared")):
                root = Path(workdir) / f"{mode}-{rep}"
                seconds, encoded, records, per_run = sweep(model, tokenizer, args, patiences, resources, root,
                                                           mode == "shared")
                times[mode].append(seconds)
                if mode == "separate":
                    for label, value in per_run.items():
                        one_run.setdefault(label, []).append(value)
                if mode == "shared":
                    shared_encoded, shared_records = encoded, records
                else:
                    separate_encoded, separate_records = encoded, records
    median = {mode: statistics.median(values) for mode, values in times.items()}
    same = {label: shared_records[label] == separate_records[label] for label in shared_records}
    single = {label: statistics.median(values) for label, values in one_run.items()}
    mean_single = statistics.mean(single.values())
    summary = {"shared_s": median["shared"], "separate_s": median["separate"],
               "time_ratio_shared_over_separate": median["shared"] / median["separate"],
               "one_run_s": single, "shared_over_mean_one_run": median["shared"] / mean_single,
               "encoded_shared": shared_encoded, "encoded_separate": separate_encoded, "same_records": same,
               "times_s": times}
    print(f"{args.recipe} on {len(patiences)} settings x {args.n} examples: shared {median['shared']:.1f}s, "
          f"separate {median['separate']:.1f}s, ratio shared/separate {summary['time_ratio_shared_over_separate']:.2f}")
    print(f"one separate run: {', '.join(f'{k} {v:.1f}s' for k, v in single.items())}; whole shared sweep / mean "
          f"one run = {summary['shared_over_mean_one_run']:.2f}")
    print(f"texts encoded: shared {shared_encoded}, separate {separate_encoded}; identical records: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
