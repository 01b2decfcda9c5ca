"""Where an attack's time goes: the share of model forward time in textfooler's attack time on the baseline
(goal >= 70%), and the start-up of a fresh attack process (goal <= 10 s).

* forward share: one task (textfooler, the model at full depth, ``--n`` examples, one torch thread) with the
  model's all-layer pass timed; share = forward seconds / the records' summed ``attack_time_s``. Printed twice:
  cold (the first task of the process: its first example also loads the POS tagger and the like) and warm (a
  task on other examples, seed 1, ran before it untimed), the per-query share of a long run.
* start-up: wall time of a new ``python`` process that imports the package and TextAttack, loads the model
  and builds the textfooler attack (counter-fitted embedding from its cache, sentence encoder loaded), as a
  worker does before its first example; median over ``--reps``.

    python scripts/bench_profile.py --model out/quickstart/models/full-minilm-qs --resources ../shared --n 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STARTUP = """
import sys
from pathlib import Path
from robustness.attack.recipes import Resources
from robustness.suite import work
from robustness.suite.plan import plan_tasks
from robustness.suite.specs import RunSpec
bundle = Path(sys.argv[2])
resources = Resources.from_args(nltk_data=bundle / "nltk_data", lexicons_dir=bundle / "lexicons", offline=True)
work.init_worker(resources)
spec = RunSpec(model_id="m", model_dir=sys.argv[1], recipe="textfooler", dataset="glue/sst2", n=1,
               data_dir=str(bundle / "data"))
work._prepared(plan_tasks([spec])[0], resources, True)
"""


def _specs(args, bundle: Path, seed: int = 0):
    from robustness.suite.specs import RunSpec

    return [RunSpec(model_id=Path(args.model).name, model_dir=str(args.model), recipe="textfooler",
                    dataset="glue/sst2", setting="full", n=args.n, seed=seed, data_dir=str(bundle / "data"))]


def forward_share(args, bundle: Path, warm: bool) -> tuple[float, float]:
    from robustness.attack.recipes import Resources
    from robustness.suite import work
    from robustness.suite.plan import plan_tasks

    resources = Resources.from_args(nltk_data=bundle / "nltk_data", lexicons_dir=bundle / "lexicons", offline=True)
    work.init_worker(resources)
    work._GROUP.clear()
    if warm:  # untimed: other examples (seed 1), so that the timed task finds no text of its own cached
        from robustness import resources as process_wide
        from robustness.resources.sentence_encoder import minilm

        process_wide._EMBEDDINGS.clear()  # forget the cold task's texts (embedding neighbours, encodings)
        minilm()._cache.clear()
        (task,) = plan_tasks(_specs(args, bundle, seed=1), shard_size=args.n)
        work.run_task(task, resources)
        work._GROUP.clear()
    model, _ = work._model(args.model)
    forward = {"s": 0.0}
    all_layer_logits = model.all_layer_logits

    def timed(*a, **k):  # benchmark instrumentation of this one model object
        start = time.perf_counter()
        try:
            return all_layer_logits(*a, **k)
        finally:
            forward["s"] += time.perf_counter() - start

    model.all_layer_logits = timed
    try:
        (task,) = plan_tasks(_specs(args, bundle), shard_size=args.n)
        (result,) = work.run_task(task, resources)
    finally:
        model.all_layer_logits = all_layer_logits
    attack_s = sum(r["attack_time_s"] for r in result["records"])
    return forward["s"], attack_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the full-depth baseline's directory")
    parser.add_argument("--resources", default=os.environ.get("ROBUSTNESS_RESOURCES"), required=False)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if not args.resources:
        parser.error("--resources (or ROBUSTNESS_RESOURCES) is required")
    bundle = Path(args.resources)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    startups = []
    for _ in range(args.reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP, str(args.model), str(bundle)], env=env, check=True,
                       capture_output=True)
        startups.append(time.perf_counter() - start)
    print(f"textfooler on {Path(args.model).name}, {args.n} examples, 1 thread:")
    for label, warm in (("cold", False), ("warm", True)):
        forward_s, attack_s = forward_share(args, bundle, warm)
        print(f"  {label}: model forward {forward_s:.1f}s of attack time {attack_s:.1f}s: "
              f"RATIO forward share = {forward_s / attack_s:.2f}  (goal >= 0.70)")
    print(f"  attack process start-up (imports, model, textfooler build): median {statistics.median(startups):.1f}s "
          f"of {', '.join(f'{s:.1f}' for s in startups)}  (goal <= 10 s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
