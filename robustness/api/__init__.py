"""One call per job: ``import robustness as rb``, then ``rb.train``, ``rb.evaluate``, ``rb.attack``,
``rb.transfer``, ``rb.trigger``, ``rb.quality``, ``rb.revalidate``, ``rb.aggregate``, ``rb.report`` and
``rb.bench``.

Each function is the one implementation of the ``robustness`` subcommand of the same name (the command parses its
flags, calls it and prints what it returns): it takes every flag of the command as a keyword argument of the same
name (``--batch-size`` -> ``batch_size``) with the same default, validates it the same way
(:mod:`robustness.requests`) and returns what the command writes: a model directory, the evaluation table, the
loaded run (:class:`Run`: spec, run.json, records as a DataFrame), the tables, the report's paths, or the bench's
outputs. Nothing is printed: progress bars appear only with ``progress=True`` and the lines a command prints
while it works go to ``log`` (a callable taking one line, e.g. ``print``; default: nowhere). ``resources``
names a resource bundle (default ``$ROBUSTNESS_RESOURCES``) whose parts fill the paths not given (``data_dir``,
``nltk_data``, ``lexicons``, ``mlm``, ``lm``), and with a bundle nothing is downloaded. ``device``: ``auto`` (the
first CUDA device if torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; recorded, never part of a
run's identity. Bad input raises a one-line ``ValueError``. Heavy libraries are imported by each call, not by
``import robustness``.

The jobs live in modules named for what they do: :mod:`~robustness.api.model_jobs` (``train``, ``evaluate``),
:mod:`~robustness.api.attack_jobs` (``attack``, ``transfer``, ``trigger``), :mod:`~robustness.api.analysis_jobs`
(``quality``, ``revalidate``, ``aggregate``, ``report``, ``pack``) and :mod:`robustness.pipeline` (``bench``).
"""

from __future__ import annotations

from robustness.api.analysis_jobs import Tables, aggregate, pack, quality, report, revalidate
from robustness.api.attack_jobs import attack, transfer, trigger
from robustness.api.model_jobs import evaluate, train
from robustness.pipeline import BenchResult, bench

__all__ = ["BenchResult", "Tables", "aggregate", "attack", "bench", "evaluate", "pack", "quality", "report",
           "revalidate", "train", "transfer", "trigger"]
