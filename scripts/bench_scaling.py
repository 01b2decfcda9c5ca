"""Executor benchmark: a suite's attacks with 1 local worker, 2 local workers and 2 Ray workers, each a fresh
``robustness bench SUITE --part 1/1`` process (every task of the suite, as a user runs it, without the
transfers, the quality stage and the report, which do not depend on the engine) into a fresh output directory
holding the trained models (``--models DIR``, hard-linked in).

Every measurement is a new process, so that each configuration pays its own start-up (imports, TextAttack,
WordNet, models; Ray's start) exactly once, as a user's ``robustness bench`` does. Two times per measurement:
*process* (the command from start to exit: the figure the goals use) and *attack phase* (from the command's
``[bench] N tasks`` line to its ``part 1/1 done`` line: the engine's work and the local workers' start; Ray and
its actors start before that line, while the driver prepares, so for Ray only the process time compares).

Configurations: ``local-1``, ``local-2``; ``ray-2`` starts a local Ray instance inside the measurement (and
stops it), ``ray-2-running`` submits to a local Ray instance started (``ray start --head``, 2 CPUs) before that
measurement and stopped after it, both untimed: the realistic cluster case where Ray is already up.

Prints, as medians over ``--reps`` (order rotating): seconds per configuration, the local scaling
``t(1 worker) / t(2 workers)`` (goal >= 1.7), the Ray overheads ``t(ray, 2) / t(local, 2)`` (goal <= 1.2) with and
without Ray's start, and whether records (timings aside) and summary tables are identical across all of them.

    python scripts/bench_scaling.py attacks/quickstart.toml --models out/quickstart/models --resources ../shared \
        --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {"local-1": ("local", 1), "local-2": ("local", 2), "ray-2": ("ray", 2), "ray-2-running": ("ray", 2)}


def _link_models(models: Path, out: Path) -> None:
    """``out/models/<id>``: hard links to the trained models (copies across file systems)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(models, out / "models", copy_function=link)


def _measure(args: argparse.Namespace, name: str, out: Path) -> tuple[float, float]:
    """``(process seconds, attack-phase seconds)`` of one configuration: ``robustness bench`` in a fresh process."""
    engine, workers = CONFIGS[name]
    _link_models(Path(args.models), out)
    command = [sys.executable, "-m", "robustness.cli", "bench", args.suite, "--out", str(out), "--part", "1/1",
               "--workers", str(workers), "--engine", engine, "--shard-size", str(args.shard_size)]
    command += ["--resources", args.resources] if args.resources else []
    command += ["--address", "auto"] if name == "ray-2-running" else []
    if name == "ray-2-running":
        _ray_cluster(start=True)  # not timed: the cluster is up before the suite is submitted
    try:
        marks: dict[str, float] = {}
        start = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
            for line in process.stdout:
                if line.startswith("[bench]") and " tasks (" in line:
                    marks["tasks"] = time.perf_counter()
                elif line.startswith("[bench] part 1/1 done"):
                    marks["done"] = time.perf_counter()
        process_s = time.perf_counter() - start
        if process.returncode != 0 or len(marks) != 2:
            raise SystemExit(f"{name}: `{' '.join(command)}` failed (exit code {process.returncode})")
    finally:
        if name == "ray-2-running":
            _ray_cluster(start=False)
    return process_s, marks["done"] - marks["tasks"]


def _outputs(out: Path) -> tuple[dict, str]:
    from robustness.analysis.aggregate import load_runs, summarize

    records = {}
    for run in sorted((out / "runs").iterdir()):
        lines = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        records[run.name] = [{k: v for k, v in r.items() if k != "attack_time_s"} for r in lines]
    table = summarize(load_runs([out / "runs"]))
    table = table[[c for c in table.columns if "time" not in c]]
    return records, table.to_csv(index=False)  # text: NaN cells compare equal


def _ray_cluster(start: bool) -> None:
    """Start (``ray start --head`` with 2 CPUs, this environment) or stop the local Ray instance."""
    command = ["ray", "start", "--head", "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]
    subprocess.run(command if start else ["ray", "stop"], check=True, capture_output=True, env=os.environ)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="suite TOML (e.g. attacks/quickstart.toml)")
    parser.add_argument("--models", required=True, help="directory holding a trained model per suite model id")
    parser.add_argument("--resources", help="offline resource bundle (default: $ROBUSTNESS_RESOURCES)")
    parser.add_argument("--shard-size", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()

    times: dict[str, dict[str, list[float]]] = {c: {"process": [], "phase": []} for c in args.configs}
    outputs = {}
    with tempfile.TemporaryDirectory() as root:
        for rep in range(args.reps):
            order = args.configs[rep % len(args.configs):] + args.configs[:rep % len(args.configs)]
            for name in order:
                out = Path(root) / f"{name}-{rep}"
                process_s, phase_s = _measure(args, name, out)
                times[name]["process"].append(process_s)
                times[name]["phase"].append(phase_s)
                outputs[name] = _outputs(out)
    median = {c: {k: statistics.median(v) for k, v in t.items()} for c, t in times.items()}
    first = next(iter(outputs.values()))
    identical = all(o == first for o in outputs.values())
    from robustness.suite.suite_file import load_suite

    suite = load_suite(args.suite)
    examples = suite.n * len(suite.run_specs({m.id: str(Path(args.models) / m.id) for m in suite.models}))
    print(f"{args.suite}: {examples} examples (runs x n), shard size {args.shard_size}, medians of {args.reps} reps, "
          "each in a fresh process:")
    for name, m in median.items():
        print(f"  {name}: process {m['process']:.1f}s (attack phase {m['phase']:.1f}s); "
              f"reps {', '.join(f'{s:.1f}' for s in times[name]['process'])}")
    summary: dict = {"seconds": median, "reps": times, "identical_records_and_tables": identical}
    ratios = {"scaling_local2_over_local1": ("local-1", "local-2", "local scaling t(1 worker) / t(2 workers)",
                                             ">= 1.7"),
              "ray2_over_local2": ("ray-2", "local-2", "Ray (started inside) t(ray, 2) / t(local, 2)", "<= 1.2"),
              "ray2_running_over_local2": ("ray-2-running", "local-2",
                                           "Ray (already running) t(ray, 2) / t(local, 2)", "<= 1.2")}
    for key, (a, b, what, goal) in ratios.items():
        if a in median and b in median:
            summary[key] = {k: median[a][k] / median[b][k] for k in ("process", "phase")}
            print(f"  RATIO {what} = {summary[key]['process']:.2f} by process time, "
                  f"{summary[key]['phase']:.2f} by attack phase  (goal {goal})")
    print(f"  identical records and tables: {identical}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": summary}, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
