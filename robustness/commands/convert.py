"""``robustness import``: a checkpoint trained with the papers' reference code (PABEE's ``bert-loses-patience``,
DeeBERT's ``deebert``) as a model directory every other command reads (:mod:`robustness.models.imported`)."""

from __future__ import annotations

import argparse

__all__ = ["add_import_parser", "cmd_import"]


def add_import_parser(sub: argparse._SubParsersAction) -> None:
    """The ``import`` subcommand's arguments."""
    from robustness.models.reference import FORMATS

    p = sub.add_parser("import", help="convert a PABEE or DeeBERT reference-code checkpoint into a model directory")
    p.add_argument("source", help="folder with config.json + model.safetensors or pytorch_model.bin, or a hub id")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="pabee-reference (bert-loses-patience: BERT, ALBERT) or deebert-reference (BERT, RoBERTa)")
    p.add_argument("--out", required=True, help="model directory to create")
    p.add_argument("--tokenizer", help="tokenizer folder or hub id (default: the source's own)")
    p.add_argument("--label-names", help="comma-separated class names (default: the source config's id2label)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out")


def cmd_import(args: argparse.Namespace, command: str) -> int:
    from robustness.models.fingerprint import model_fingerprint
    from robustness.models.imported import import_reference

    names = None
    if args.label_names is not None:
        names = [name.strip() for name in args.label_names.split(",")]
        if len(names) < 2 or not all(names):
            raise ValueError(f"--label-names {args.label_names!r}: give two or more comma-separated names")
    out = import_reference(args.source, args.format, args.out, tokenizer=args.tokenizer, label_names=names,
                           overwrite=args.overwrite, command=command)
    print(f"imported {args.format} checkpoint {args.source} to {out} (fingerprint {model_fingerprint(out)})")
    return 0
