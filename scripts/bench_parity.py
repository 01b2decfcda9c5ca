"""Parity benchmark: our runner vs stock TextAttack on the same examples, recipe and seed.

Ours: :func:`robustness.attack.runner.run_attack` (PabeeModelWrapper, dynamic padding, per-example seeds).
Stock: ``textattack.Attacker`` + ``HuggingFaceModelWrapper`` (pads every query to the tokenizer's
``model_max_length``) over an HF-compatible view of the same model, with TextAttack's own recipe.
Reports, per recipe: examples with the same outcome, with the same perturbed text, the differences, and
the wall-time ratio ours/stock (median over ``--reps``; the two sides alternate within each rep).

    python scripts/bench_parity.py --model out/models/full-minilm --data-dir ../shared/data \
        --nltk-data ../shared/nltk_data --recipes deepwordbug pwws --n 50 --reps 3 --json parity.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

STOCK_RECIPES = {"deepwordbug": "DeepWordBugGao2018", "pwws": "PWWSRen2019", "pruthi": "Pruthi2019",
                 "textbugger": "TextBuggerLi2018"}


def hf_view(model, patience):
    """A ``transformers.PreTrainedModel`` whose forward returns ``.logits`` of the PABEE exit layer."""
    import transformers
    from transformers.modeling_outputs import SequenceClassifierOutput

    class PabeeHFView(transformers.PreTrainedModel):
        config_class = transformers.PretrainedConfig
        base_model_prefix = "pabee"

        def __init__(self, pabee, patience):
            super().__init__(transformers.PretrainedConfig(num_labels=pabee.num_labels))
            self.pabee, self.patience = pabee, patience

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
            layer_logits = self.pabee.all_layer_logits(input_ids, attention_mask, token_type_ids)
            return SequenceClassifierOutput(logits=self.pabee.exit_from_layer_logits(layer_logits, self.patience)[1])

    return PabeeHFView(model, patience).eval()


def run_stock(textattack, model, tokenizer, examples, args, recipe):
    """TextAttack's Attacker. ``--stock-seeding per-example`` gives every example its own Attacker seeded
    like our runner seeds that example (so random character edits are comparable); ``once`` seeds once."""
    from robustness.attack.runner import example_seed
    from robustness.resources.textattack_compat import is_offline, no_nltk_download

    wrapper = textattack.models.wrappers.HuggingFaceModelWrapper(hf_view(model, args.patience), tokenizer)
    with no_nltk_download() if is_offline() else contextlib.nullcontext():  # PWWS: nltk.download("omw-1.4")
        attack = getattr(textattack.attack_recipes, STOCK_RECIPES[recipe]).build(wrapper)
    columns = list(examples.info.text_columns)
    items = [(t if isinstance(t, tuple) else (t,), y) for t, y in zip(examples.texts, examples.labels, strict=True)]
    if args.stock_seeding == "once":
        jobs = [(items, args.seed)]
    else:
        jobs = [([item], example_seed(args.seed, i)) for i, item in enumerate(items)]
    results = []
    for job_items, seed in jobs:
        attack_args = textattack.AttackArgs(num_examples=len(job_items), random_seed=seed, silent=True,
                                            disable_stdout=True, query_budget=args.query_budget)
        dataset = textattack.datasets.Dataset(job_items, input_columns=columns)
        quiet = io.StringIO()
        with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):  # the Attacker's progress bar
            results += textattack.Attacker(attack, dataset, attack_args).attack_dataset()
    kinds = {"SuccessfulAttackResult": "succeeded", "FailedAttackResult": "failed", "SkippedAttackResult": "skipped"}
    rows = []
    for result in results:
        outcome = kinds[type(result).__name__]
        rows.append({"result": outcome, "num_queries": result.num_queries,
                     "adv_text": None if outcome == "skipped" else result.perturbed_result.attacked_text.text})
    return rows


def run_ours(model, tokenizer, args, recipe, resources, workdir):
    from robustness.attack.records import read_records
    from robustness.attack.runner import run_attack
    from robustness.suite.specs import RunSpec

    spec = RunSpec(model_id=Path(args.model).name, model_dir=str(args.model), recipe=recipe, dataset=args.dataset,
                   setting=args.patience, split=args.split, n=args.n, seed=args.seed, query_budget=args.query_budget,
                   batch_size=args.batch_size, stock=args.stock_recipe, data_dir=args.data_dir)
    out = Path(tempfile.mkdtemp(dir=workdir))
    run_attack(spec, out, resources=resources, progress=False, model=model, tokenizer=tokenizer)
    return read_records(out / "records.jsonl")


def compare(ours, stock):
    same_outcome = sum(o["result"] == s["result"] for o, s in zip(ours, stock, strict=True))
    same_text = sum(o["result"] == s["result"] and o["adv_text"] == s["adv_text"] for o, s in zip(ours, stock,
                                                                                                 strict=True))
    diffs = [{"example_id": o["example_id"], "ours": [o["result"], o["adv_text"], o["num_queries"]],
              "stock": [s["result"], s["adv_text"], s["num_queries"]]}
             for o, s in zip(ours, stock, strict=True) if (o["result"], o["adv_text"]) != (s["result"], s["adv_text"])]
    return same_outcome, same_text, diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="saved model directory (the full-depth baseline)")
    parser.add_argument("--patience", type=int, default=None, help="exit patience (default: full depth)")
    parser.add_argument("--recipes", nargs="+", default=["deepwordbug", "pwws"], choices=sorted(STOCK_RECIPES))
    parser.add_argument("--dataset", default="sst2")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-budget", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTNESS_DATA_DIR"))
    parser.add_argument("--nltk-data", default=os.environ.get("NLTK_DATA"))
    parser.add_argument("--stock-recipe", action="store_true", help="our runner also uses TextAttack's own recipe")
    parser.add_argument("--stock-seeding", choices=["per-example", "once"], default="per-example",
                        help="per-example: seed stock as our runner seeds each example; once: the Attacker's way")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", help="write the summary and differences here")
    args = parser.parse_args()
    if args.nltk_data:
        os.environ["NLTK_DATA"] = args.nltk_data
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from robustness.data import load_examples
    from robustness.models.pabee import load_model_and_tokenizer
    from robustness.resources.textattack_compat import import_textattack

    textattack = import_textattack(nltk_data=args.nltk_data)
    from robustness.attack.recipes import Resources

    resources = Resources.from_args(nltk_data=args.nltk_data)
    model, tokenizer = load_model_and_tokenizer(args.model)
    examples = load_examples(args.dataset, args.split, data_dir=args.data_dir, limit=args.n, seed=args.seed)
    summary = OrderedDict()
    with tempfile.TemporaryDirectory() as workdir:
        for recipe in args.recipes:
            times = {"ours": [], "stock": []}
            warm = argparse.Namespace(**{**vars(args), "n": 2})  # untimed warm-up of both sides
            run_ours(model, tokenizer, warm, recipe, resources, workdir)
            run_stock(textattack, model, tokenizer, load_examples(args.dataset, args.split, data_dir=args.data_dir,
                                                                  limit=2, seed=args.seed), warm, recipe)
            for rep in range(args.reps):
                for side in (("ours", "stock") if rep % 2 == 0 else ("stock", "ours")):
                    start = time.perf_counter()
                    if side == "ours":
                        ours = run_ours(model, tokenizer, args, recipe, resources, workdir)
                    else:
                        stock = run_stock(textattack, model, tokenizer, examples, args, recipe)
                    times[side].append(time.perf_counter() - start)
            same_outcome, same_text, diffs = compare(ours, stock)
            median = {side: statistics.median(values) for side, values in times.items()}
            summary[recipe] = {"n": len(ours), "same_outcome": same_outcome, "same_perturbed_text": same_text,
                               "ours_s": median["ours"], "stock_s": median["stock"],
                               "time_ratio_ours_over_stock": median["ours"] / median["stock"],
                               "times_s": times, "differences": diffs}
            ratio = summary[recipe]["time_ratio_ours_over_stock"]
            print(f"{recipe}: same outcome {same_outcome}/{len(ours)}, same perturbed text {same_text}/{len(ours)}, "
                  f"ours {median['ours']:.1f}s, stock {median['stock']:.1f}s, ratio ours/stock {ratio:.2f}")
            for diff in diffs:
                print(f"  example {diff['example_id']}: ours {diff['ours']} | stock {diff['stock']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
