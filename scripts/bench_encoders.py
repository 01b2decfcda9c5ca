"""USE-m3 next to all-MiniLM-L6-v2 as TextAttack's offline sentence encoder (issue 24 §4).

* attack: textfooler at full depth on the same ``--n`` SST-2 validation examples (seed 0, one torch thread)
  once per encoder, as a suite worker runs a task (:func:`robustness.suite.work.run_task`); per encoder the
  attack success rate (succeeded / attacked, skipped left out), the mean ``num_queries`` of the attacked
  examples, and the victim's share of attack time: seconds in the victim's all-layer pass / the records'
  summed ``attack_time_s``, as ``scripts/bench_profile.py`` measures it (its "warm" variant: a task on
  ``--warmup`` other examples, seed 1, runs untimed first, then the encoder's embedding cache is cleared).
  The encoder's own forward share is printed next to it.
* agreement: Spearman rank correlation (scipy) of the two encoders' whole-text cosine similarities on
  (original, adversarial) pairs of succeeded SST-2 attacks: the attack stage's own pairs plus those of any
  ``--records`` (run dirs or records.jsonl files), at most ``--pairs`` of them (a seeded sample).
* speed: milliseconds per sentence of each encoder (``--speed`` SST-2 sentences, batches of 32, empty cache).
* calibration (``--calibration``): the fraction of single-word counter-fitted swaps each encoder rejects at
  each recipe's stock threshold, and each encoder's similarity quantiles
  (:mod:`robustness.resources.encoder_calibration`, whose tables this prints).

    python scripts/bench_encoders.py --model out/quickstart/models/full-minilm-qs --resources ../shared --n 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

ENCODERS = ("minilm", "use-m3")


def _spec(args: argparse.Namespace, bundle: Path, encoder: str, n: int, seed: int) -> Any:
    from robustness.suite.specs import RunSpec

    return RunSpec(model_id=Path(args.model).name, model_dir=str(args.model), recipe="textfooler",
                   dataset="glue/sst2", setting="full", n=n, seed=seed, data_dir=str(bundle / "data"),
                   sentence_encoder=encoder)


def attack_with(args: argparse.Namespace, bundle: Path, resources: Any, encoder: str) -> dict[str, Any]:
    """One timed textfooler task with ``encoder``; its records and where its time went."""
    from bench_profile import timed_task  # scripts/ is on sys.path when a script runs

    from robustness.analysis.metrics import attack_success_rate
    from robustness.resources import sentence_encoder
    from robustness.suite import work
    from robustness.suite.plan import plan_tasks

    work._GROUP.clear()
    if args.warmup:
        (task,) = plan_tasks([_spec(args, bundle, encoder, args.warmup, seed=1)], shard_size=args.warmup)
        work.run_task(task, resources)
        work._GROUP.clear()
    sentence_encoder.clear_caches()
    model, _ = work._model(args.model, "cpu")  # the CPU, as the suite worker of a CPU task loads it
    (task,) = plan_tasks([_spec(args, bundle, encoder, args.n, seed=0)], shard_size=args.n)
    result, victim_s, encoder_s = timed_task(task, resources, model, sentence_encoder.get_encoder(encoder))
    records = result["records"]
    attacked = [r for r in records if r["result"] != "skipped"]
    attack_s = sum(r["attack_time_s"] for r in records)
    return {
        "encoder": encoder, "n": len(records), "attacked": len(attacked),
        "success_rate": attack_success_rate([r["result"] for r in records]),
        "mean_queries": sum(r["num_queries"] for r in attacked) / len(attacked) if attacked else float("nan"),
        "victim_s": victim_s, "encoder_s": encoder_s, "attack_s": attack_s,
        "victim_share": victim_s / attack_s if attack_s else float("nan"),
        "encoder_share": encoder_s / attack_s if attack_s else float("nan"),
        "pairs": [(r["orig_text"], r["adv_text"]) for r in records if r["result"] == "succeeded"],
    }


def read_pairs(paths: list[str]) -> list[tuple[str, str]]:
    """(original, adversarial) texts of the succeeded records in run dirs or records.jsonl files."""
    from robustness.schema.records import read_records

    pairs = []
    for raw in paths:
        path = Path(raw)
        path = path / "records.jsonl" if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"--records {raw}: no records.jsonl there")
        pairs += [(r["orig_text"], r["adv_text"]) for r in read_records(path) if r["result"] == "succeeded"]
    return pairs


def agreement(pairs: list[tuple[str, str]], limit: int) -> dict[str, Any]:
    """Spearman correlation of the encoders' cosine similarities on up to ``limit`` unique pairs."""
    from scipy.stats import spearmanr

    from robustness.resources.sentence_encoder import get_encoder

    pairs = list(dict.fromkeys(pairs))
    if len(pairs) > limit:
        pairs = random.Random(0).sample(pairs, limit)
    if len(pairs) < 3:
        return {"pairs": len(pairs), "spearman": float("nan"), "p": float("nan")}
    sims = {}
    for name in ENCODERS:
        encoder = get_encoder(name)
        sims[name] = (encoder.encode([a for a, _ in pairs]) * encoder.encode([b for _, b in pairs])).sum(dim=1)
    rho, p = spearmanr(sims["minilm"].numpy(), sims["use-m3"].numpy())
    out = {"pairs": len(pairs), "spearman": float(rho), "p": float(p)}
    out.update({f"mean_cosine_{name}": float(sims[name].mean()) for name in ENCODERS})
    return out


def speed(bundle: Path, count: int, batch: int = 32, reps: int = 3) -> dict[str, float]:
    """Milliseconds per sentence of each encoder on the first ``count`` SST-2 validation sentences, in batches of
    ``batch`` with an empty cache (best of ``reps``), on this process's threads."""
    import pandas as pd

    from robustness.resources.sentence_encoder import clear_caches, get_encoder

    sentences = pd.read_parquet(bundle / "data" / "sst2" / "validation.parquet")["sentence"].tolist()[:count]
    out = {}
    for name in ENCODERS:
        encoder = get_encoder(name)
        encoder.encode(["warm up"])
        best = float("inf")
        for _ in range(reps):
            clear_caches()
            start = time.perf_counter()
            for i in range(0, len(sentences), batch):
                encoder.encode(sentences[i : i + batch])
            best = min(best, time.perf_counter() - start)
        out[name] = 1000 * best / len(sentences)
    return out


def calibration(bundle: Path, encoders: list[str]) -> None:
    """Rejection rates at the stock thresholds and similarity quantiles, per encoder."""
    import numpy as np
    import pandas as pd

    from robustness import resources as res
    from robustness.resources import encoder_calibration as cal
    from robustness.resources.sentence_encoder import get_encoder

    sentences = pd.read_parquet(bundle / "data" / "sst2" / "validation.parquet")["sentence"].tolist()
    embedding = res.counter_fitted_embedding(bundle / "lexicons")
    pairs = {window: cal.swap_pairs(sentences, embedding, window_size=window) for window in (15, None)}
    cos = {(name, window): cal.pair_similarities(*pairs[window], get_encoder(name)).astype(np.float64)
           for name in encoders for window in pairs}
    print("calibration: fraction of single-word swaps rejected at the stock threshold", flush=True)
    for recipe, c in cal.CALIBRATION.items():
        rejected = []
        for name in encoders:
            sims = cos[(name, c.window_size)]
            sims = 1.0 - np.arccos(np.clip(sims, -1, 1)) / np.pi if c.metric == "angular" else sims
            rejected.append(f"{name} {float((sims < c.stock_threshold).mean()):.4f}")
        print(f"  {recipe:12s} {c.metric:8s} window {c.window_size!s:4s} threshold {c.stock_threshold:.9g} "
              f"n {len(pairs[c.window_size][0])}: " + ", ".join(rejected))
    for name in encoders:
        for window in pairs:
            q = np.quantile(cos[(name, window)], cal.QUANTILES)
            print(f"  {name} cosine quantiles {cal.QUANTILES}, window {window}: ({', '.join(f'{v:.4f}' for v in q)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained model's directory (attacked at full depth)")
    parser.add_argument("--resources", default=os.environ.get("ROBUSTNESS_RESOURCES"))
    parser.add_argument("--n", type=int, default=20, help="examples attacked per encoder (0: none)")
    parser.add_argument("--warmup", type=int, default=2, help="examples of the untimed warm-up task (0: none)")
    parser.add_argument("--pairs", type=int, default=1000, help="at most this many pairs for the agreement")
    parser.add_argument("--records", nargs="*", default=[], help="more pairs: run dirs or records.jsonl files")
    parser.add_argument("--calibration", nargs="*", choices=ENCODERS, metavar="ENCODER",
                        help="also the swap rejection rates of these encoders (default both; minutes)")
    parser.add_argument("--speed", type=int, default=256, help="sentences of the encoding-speed measurement")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    if not args.resources:
        parser.error("--resources (or ROBUSTNESS_RESOURCES) is required")
    bundle = Path(args.resources)
    from robustness.attack.recipes import Resources
    from robustness.suite import work

    resources = Resources.from_args(nltk_data=bundle / "nltk_data", lexicons_dir=bundle / "lexicons", offline=True)
    work.init_worker(resources)  # one torch thread; USE-m3's BLAS threads follow it
    if args.calibration is not None:
        calibration(bundle, args.calibration or list(ENCODERS))
    if args.n < 1 and not args.records:
        return 0
    per_text, results = {}, {}
    if args.n >= 1:  # with --n 0 and --records: the agreement on the records' pairs only
        per_text, results = attack_stage(args, bundle, resources)
    pairs = [p for r in results.values() for p in r.pop("pairs")] + read_pairs(args.records)
    agree = agreement(pairs, args.pairs)
    print(f"agreement: Spearman {agree['spearman']:.3f} (p {agree['p']:.2g}) of whole-text cosine, MiniLM vs "
          f"USE-m3, on {agree['pairs']} (original, adversarial) pairs")
    if args.json:
        Path(args.json).write_text(json.dumps({"ms_per_sentence": per_text, "attack": results, "agreement": agree},
                                              indent=2) + "\n")
    return 0


def attack_stage(args: argparse.Namespace, bundle: Path, resources: Any) -> tuple[dict, dict]:
    """Encoding speed, then textfooler with each encoder (printed); returns both."""
    per_text = speed(bundle, args.speed)
    print(f"encoding {args.speed} SST-2 validation sentences in batches of 32, 1 thread: "
          + ", ".join(f"{name} {ms:.2f} ms" for name, ms in per_text.items())
          + f" per sentence: MiniLM / USE-m3 = {per_text['minilm'] / per_text['use-m3']:.1f}x", flush=True)
    results = {name: attack_with(args, bundle, resources, name) for name in ENCODERS}
    print(f"textfooler on {Path(args.model).name}, full depth, {args.n} SST-2 validation examples, 1 thread:")
    for name, r in results.items():
        print(f"  {name:7s}: success {r['success_rate']:.3f} of {r['attacked']} attacked, mean queries "
              f"{r['mean_queries']:.1f}; victim forward {r['victim_s']:.1f}s + encoder {r['encoder_s']:.1f}s of "
              f"attack time {r['attack_s']:.1f}s: RATIO victim share {r['victim_share']:.3f} (goal >= 0.85), "
              f"encoder share {r['encoder_share']:.3f}")
    return per_text, results


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
