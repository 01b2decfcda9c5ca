"""Where an attack's time goes: the share of model forward time in textfooler's attack time on the baseline
(goal >= 70%), and the start-up of a fresh attack process (goal <= 10 s).

* forward share: one task (textfooler, the model at full depth, ``--n`` examples, one torch thread) with the
  victim's all-layer pass and the sentence encoder's forward (TextFooler's USE constraint; offline USE-m3 by
  default, or all-MiniLM-L6-v2, a transformer as large as the victim, with ``--sentence-encoder minilm``) timed;
  shares = seconds / the records' summed ``attack_time_s``: the
  victim's alone, and victim + encoder (every neural forward; the rest is TextAttack's search, the other
  constraints and this package's wrapper, records and caches). Printed twice:
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
                    dataset="glue/sst2", setting="full", n=args.n, seed=seed, data_dir=str(bundle / "data"),
                    sentence_encoder=args.sentence_encoder)]


def forward_share(args, bundle: Path, warm: bool) -> tuple[float, float, float]:
    from robustness.attack.recipes import Resources
    from robustness.suite import work
    from robustness.suite.plan import plan_tasks

    resources = Resources.from_args(nltk_data=bundle / "nltk_data", lexicons_dir=bundle / "lexicons", offline=True)
    work.init_worker(resources)
    work._GROUP.clear()
    if warm:  # untimed: other examples (seed 1), so that the timed task finds no text of its own cached
        from robustness import resources as process_wide
        from robustness.resources.sentence_encoder import clear_caches

        process_wide._EMBEDDINGS.clear()  # forget the cold task's texts (embedding neighbours, encodings)
        clear_caches()
        (task,) = plan_tasks(_specs(args, bundle, seed=1), shard_size=args.n)
        work.run_task(task, resources)
        work._GROUP.clear()
    from robustness.resources.sentence_encoder import get_encoder

    model, _ = work._model(args.model, "cpu")  # the CPU, as the suite worker of a CPU task loads it
    (task,) = plan_tasks(_specs(args, bundle), shard_size=args.n)
    result, victim_s, encoder_s = timed_task(task, resources, model, get_encoder(args.sentence_encoder))
    attack_s = sum(r["attack_time_s"] for r in result["records"])
    return victim_s, encoder_s, attack_s


def timed_task(task, resources, model, encoder) -> tuple[dict, float, float]:
    """``work.run_task(task, resources)`` with the victim's ``all_layer_logits`` and the sentence encoder's
    ``_encode_batch`` timed (benchmark instrumentation of the two objects, taken off again after):
    ``(result, victim seconds, encoder seconds)``. ``scripts/bench_encoders.py`` measures with it too."""
    from robustness.suite import work

    seconds = {"victim": 0.0, "encoder": 0.0}

    def timed(method, key):  # benchmark instrumentation of one object's method
        def wrapped(*a, **k):
            start = time.perf_counter()
            try:
                return method(*a, **k)
            finally:
                seconds[key] += time.perf_counter() - start
        return wrapped

    model.all_layer_logits = timed(model.all_layer_logits, "victim")
    encoder._encode_batch = timed(encoder._encode_batch, "encoder")
    try:
        (result,) = work.run_task(task, resources)
    finally:
        del model.all_layer_logits, encoder._encode_batch  # back to the class's methods
    return result, seconds["victim"], seconds["encoder"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the full-depth baseline's directory")
    parser.add_argument("--resources", default=os.environ.get("ROBUSTNESS_RESOURCES"), required=False)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sentence-encoder", choices=["use-m3", "minilm"], default="use-m3",
                        help="textfooler's offline sentence encoder (the README's figures before USE-m3: minilm)")
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
    print(f"textfooler ({args.sentence_encoder}) on {Path(args.model).name}, {args.n} examples, 1 thread:")
    for label, warm in (("cold", False), ("warm", True)):
        victim_s, encoder_s, attack_s = forward_share(args, bundle, warm)
        print(f"  {label}: victim forward {victim_s:.1f}s + sentence-encoder forward {encoder_s:.1f}s of attack time "
              f"{attack_s:.1f}s: RATIO victim forward share = {victim_s / attack_s:.2f}  (goal >= 0.70); "
              f"all neural forward {(victim_s + encoder_s) / attack_s:.2f}")
    print(f"  attack process start-up (imports, model, textfooler build): median {statistics.median(startups):.1f}s "
          f"of {', '.join(f'{s:.1f}' for s in startups)}  (goal <= 10 s)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
