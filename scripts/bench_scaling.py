"""Executor benchmark: a suite's attacks with 1 local worker, 2 local workers and 2 Ray workers (a local Ray
instance), each into a fresh output directory; only the attack phase (plan -> records) is timed, Ray's start
and stop included. Models must already be trained (``--models DIR`` holding the suite's model ids).

Prints, as medians over ``--reps`` (order rotating): seconds per configuration, the local scaling
``t(1 worker) / t(2 workers)`` (goal >= 1.7), the Ray overhead ``t(ray, 2) / t(local, 2)`` (goal <= 1.2), and
whether records (timings aside) and summary tables are identical across all of them.

    python scripts/bench_scaling.py attacks/quickstart.toml --models out/quickstart/models --resources ../shared \
        --reps 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

CONFIGS = {"local-1": ("local", 1), "local-2": ("local", 2), "ray-2": ("ray", 2)}


def _attack_phase(suite, model_dirs, resources, out: Path, engine: str, workers: int, shard_size: int) -> float:
    from robustness.suite import work
    from robustness.suite.executors import Driver, execute
    from robustness.suite.plan import plan_tasks
    from robustness.suite.shards import prepare_run

    work._MODELS.clear()  # 1 worker runs in this process: nothing loaded by an earlier measurement is reused
    work._GROUP.clear()
    runs = sorted(suite.run_specs(model_dirs), key=lambda s: suite.recipes.index(s.recipe))
    start = time.perf_counter()
    done = {s.run_id: prepare_run(s, out / "runs" / s.run_id, None) for s in runs}
    driver = Driver(runs, out / "runs", done, None)
    execute(plan_tasks(runs, done, shard_size=shard_size), driver, resources, workers=workers, engine=engine,
            progress=False)
    return time.perf_counter() - start


def _outputs(out: Path) -> tuple[dict, str]:
    from robustness.analysis.aggregate import load_runs, summarize

    records = {}
    for run in sorted((out / "runs").iterdir()):
        lines = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        records[run.name] = [{k: v for k, v in r.items() if k != "attack_time_s"} for r in lines]
    table = summarize(load_runs([out / "runs"]))
    table = table[[c for c in table.columns if "time" not in c]]
    return records, table.to_csv(index=False)  # text: NaN cells compare equal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="suite TOML (e.g. attacks/quickstart.toml)")
    parser.add_argument("--models", required=True, help="directory holding a trained model per suite model id")
    parser.add_argument("--resources", help="offline resource bundle (default: $ROBUSTNESS_RESOURCES)")
    parser.add_argument("--n", type=int, help="override the suite's n")
    parser.add_argument("--shard-size", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()

    from bench_sweep import bundle_resources  # scripts/ is on sys.path when a script runs

    from robustness.suite.specs import load_suite

    resources, data_dir = bundle_resources(parser, args.resources)
    suite = load_suite(args.suite)
    suite = dataclasses.replace(suite, data_dir=data_dir, n=args.n or suite.n)
    model_dirs = {m.id: str(Path(args.models) / m.id) for m in suite.models}
    times: dict[str, list[float]] = {c: [] for c in args.configs}
    outputs = {}
    with tempfile.TemporaryDirectory() as root:
        for rep in range(args.reps):
            order = args.configs[rep % len(args.configs):] + args.configs[:rep % len(args.configs)]
            for name in order:
                engine, workers = CONFIGS[name]
                out = Path(root) / f"{name}-{rep}"
                times[name].append(_attack_phase(suite, model_dirs, resources, out, engine, workers,
                                                 args.shard_size))
                outputs[name] = _outputs(out)
    median = {c: statistics.median(v) for c, v in times.items()}
    first = next(iter(outputs.values()))
    identical = all(o == first for o in outputs.values())
    examples = sum(s.n for s in suite.run_specs(model_dirs))
    print(f"{args.suite}: {examples} examples (runs x n), shard size {args.shard_size}, medians of {args.reps} reps:")
    for name, seconds in median.items():
        print(f"  {name}: {seconds:.1f}s ({examples / seconds:.2f} examples/s)")
    summary: dict = {"seconds": median, "reps": times, "identical_records_and_tables": identical}
    if "local-1" in median and "local-2" in median:
        summary["scaling_local2_over_local1"] = median["local-1"] / median["local-2"]
        print(f"  RATIO local scaling t(1 worker) / t(2 workers) = {summary['scaling_local2_over_local1']:.2f}"
              "  (goal >= 1.7)")
    if "ray-2" in median and "local-2" in median:
        summary["ray2_over_local2"] = median["ray-2"] / median["local-2"]
        print(f"  RATIO Ray overhead t(ray, 2) / t(local, 2) = {summary['ray2_over_local2']:.2f}  (goal <= 1.2)")
    print(f"  identical records and tables: {identical}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": summary}, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
