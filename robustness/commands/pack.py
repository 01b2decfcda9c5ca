"""``robustness pack``: a bench output's records, gzipped, in a folder that ``aggregate`` and ``report`` read as
they read the output itself (:mod:`robustness.schema.packing`), e.g. to commit beside a study's report."""

from __future__ import annotations

import argparse

__all__ = ["add_pack_parser", "cmd_pack"]


def add_pack_parser(sub: argparse._SubParsersAction) -> None:
    """The ``pack`` subcommand's arguments."""
    p = sub.add_parser("pack", help="copy a bench output's finished runs, transfers, triggers and clean tables, "
                                    "records gzipped, into a folder aggregate and report read directly")
    p.add_argument("out", help="a bench output (the --out folder of robustness bench)")
    p.add_argument("--into", required=True, help="folder to create, e.g. reports/NAME/records")
    p.add_argument("--overwrite", action="store_true", help="replace --into (the whole folder) if it exists")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def cmd_pack(args: argparse.Namespace, command: str) -> int:
    from robustness import api
    from robustness.commands import job_options

    packed = api.pack(**job_options(args))
    counts = ", ".join(f"{part}: {len(names)}" for part, names in {**packed.runs, "clean tables": packed.clean}.items())
    print(f"packed {args.out} into {packed.into} ({counts}): {_size(packed.original_bytes)} as written, "
          f"{_size(packed.packed_bytes)} packed")
    return 0
