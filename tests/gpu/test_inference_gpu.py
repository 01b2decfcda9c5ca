"""On a GPU (skipped without CUDA): true early exit gives the exits derived from the all-layer logits for every
policy, and the GPU agrees with the CPU on exits and predictions within the documented tolerance
(robustness.models.agreement) -- for the all-layer pass, true early exit, the attack's lazy layer cache and a
whole attack run. Models: the tiny BERT of the CPU tests and a random model of MiniLM's shape (6 x 384)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustness.models.agreement import compare_evaluations
from robustness.models.batching import encode
from robustness.models.exits import setting_exit

SETTINGS = ["patience:1", "patience:2", "entropy:0.3", "entropy:0.6", "maxprob:0.6", "maxprob:0.9", "full"]
GPU_FILES = Path(os.environ.get("ROBUSTNESS_GPU_FILES", Path(__file__).resolve().parents[2] / ".whl"))


TINY_TEXTS = ["a gripping, beautifully acted film", "dull and lifeless", "the plot is thin but the jokes land",
              "i have never been so bored in a cinema", "an instant classic",
              "it is not good , it is not bad , it is just long", "terrible",
              "warm , funny and surprisingly moving from start to finish"]


def _minilm_shaped():
    """A random PABEE model of all-MiniLM-L6-v2's shape, with input-dependent predictions (classifiers std 1)."""
    from transformers import BertConfig

    from robustness.models.pabee import PabeeModel

    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, initializer_range=0.05)
    torch.manual_seed(0)
    model = PabeeModel.from_backbone_config(config, "pabee", num_labels=2, label_names=["negative", "positive"])
    with torch.no_grad():
        for linear in model.classifiers:
            linear.weight.normal_(0.0, 1.0)
    return model.eval()


@pytest.fixture(scope="module", params=["tiny", "minilm-shaped"])
def models(request, tiny_pabee_dir, cuda):
    """(CPU model, the same weights on the GPU)."""
    from robustness.models.pabee import load_model_and_tokenizer

    cpu = load_model_and_tokenizer(tiny_pabee_dir)[0] if request.param == "tiny" else _minilm_shaped()
    return cpu, copy.deepcopy(cpu).to(cuda)


def _batch(tokenizer, device, texts=TINY_TEXTS):
    return {k: v.to(device) for k, v in encode(tokenizer, list(texts), 64).items()}


def test_early_exit_equals_the_all_layer_exits_on_gpu_for_every_policy(models, minilm_tokenizer, cuda):
    _, gpu = models
    batch = _batch(minilm_tokenizer, cuda)
    layer_logits = gpu.all_layer_logits(**batch)
    for setting in SETTINGS:
        out = gpu.early_exit(**batch, setting=setting)
        assert out.exit_layer.device.type == cuda.type
        derived_exit, derived_logits = setting_exit(layer_logits, setting)
        result = compare_evaluations(layer_logits, layer_logits, setting, b_exit=out.exit_layer,
                                     b_pred=out.logits.argmax(-1))
        assert result.same, (setting, result.disagreements)
        agree = out.exit_layer == derived_exit
        assert agree.float().mean() >= 0.99 or not result.unexplained
        torch.testing.assert_close(out.logits[agree], derived_logits[agree], rtol=1e-4, atol=1e-4)


def test_gpu_and_cpu_agree_within_the_tolerance(models, minilm_tokenizer, cuda):
    cpu, gpu = models
    cpu_logits = cpu.all_layer_logits(**_batch(minilm_tokenizer, "cpu"))
    gpu_logits = gpu.all_layer_logits(**_batch(minilm_tokenizer, cuda))
    for setting in SETTINGS:
        early = gpu.early_exit(**_batch(minilm_tokenizer, cuda), setting=setting)
        for exits in ({}, {"b_exit": early.exit_layer, "b_pred": early.logits.argmax(-1)}):
            result = compare_evaluations(cpu_logits, gpu_logits, setting, **exits)
            print(f"{setting}: max |logit cpu - gpu| = {result.max_logit_diff:.3g}, "
                  f"{len(result.disagreements)} disagreements ({len(result.unexplained)} unexplained)")
            assert result.same, (setting, result.max_logit_diff, result.disagreements)


def test_the_lazy_layer_cache_keeps_its_states_on_the_gpu_and_agrees_with_the_cpu(models, minilm_tokenizer, cuda):
    from robustness.attack.wrapper import PabeeModelWrapper

    cpu, gpu = models
    texts = [*TINY_TEXTS, *(t + " , really" for t in TINY_TEXTS)]
    for setting in ("patience:1", "entropy:0.6"):
        on_gpu = PabeeModelWrapper(gpu, minilm_tokenizer, setting, batch_size=4)
        on_cpu = PabeeModelWrapper(cpu, minilm_tokenizer, setting, batch_size=4)
        gpu_exit, gpu_probs = on_gpu.exits(texts)
        cpu_exit, cpu_probs = on_cpu.exits(texts)
        states = [on_gpu.cache.state(k) for k in texts if on_gpu.cache.state(k) is not None]
        assert all(s.device.type == cuda.type for s in states)  # none where every text needs all layers
        result = compare_evaluations(torch.from_numpy(on_cpu.layer_logits(texts, count=False)),
                                     torch.from_numpy(on_gpu.layer_logits(texts, count=False)), setting,
                                     a_exit=torch.from_numpy(cpu_exit), b_exit=torch.from_numpy(gpu_exit),
                                     a_pred=torch.from_numpy(cpu_probs.argmax(-1)),
                                     b_pred=torch.from_numpy(gpu_probs.argmax(-1)))
        assert result.same, (setting, result.disagreements)


def test_an_attack_run_on_gpu_agrees_with_the_cpu(tiny_pabee_dir, tmp_path, cuda):
    nltk = os.environ.get("NLTK_DATA") or os.fspath(GPU_FILES / "nltk_data")
    from robustness.attack.recipes import Resources
    from robustness.attack.records import read_records
    from robustness.attack.runner import run_attack
    from robustness.models.pabee import load_model_and_tokenizer
    from robustness.suite.specs import RunSpec

    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    pd.DataFrame({"sentence": TINY_TEXTS, "label": [1, 0, 1, 0, 1, 0, 0, 1], "idx": range(8)}).to_parquet(
        data / "validation.parquet")
    resources = Resources.from_args(nltk_data=nltk, offline=True)
    records = {}
    for device in ("cpu", cuda.type):
        spec = RunSpec(model_id="tiny", model_dir=str(tiny_pabee_dir), recipe="deepwordbug", dataset="sst2",
                       setting="patience:1", n=8, query_budget=30, batch_size=8, data_dir=str(tmp_path / "data"),
                       device=device)
        run = run_attack(spec, tmp_path / f"on-{device}", resources=resources, progress=False, overwrite=True)
        records[device] = [{k: v for k, v in r.items() if k != "attack_time_s"} for r in read_records(
            run / "records.jsonl")]
        info = json.loads((run / "run.json").read_text())
        assert info["device"].startswith("cuda:0 (") if device == "cuda" else info["device"] == "cpu"
    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    for a, b in zip(records["cpu"], records[cuda.type], strict=True):
        if a == b:
            continue
        # the two searches may part only at a near-tie of some text both asked about: the original's here
        texts = [a["orig_text"]]
        cpu_logits = model.all_layer_logits(**_batch(tokenizer, "cpu", texts))
        gpu_logits = copy.deepcopy(model).to(cuda).all_layer_logits(**_batch(tokenizer, cuda, texts))
        result = compare_evaluations(cpu_logits, gpu_logits, "patience:1")
        assert result.same, (a["example_id"], result)
