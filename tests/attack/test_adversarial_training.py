"""Adversarial fine-tuning (``train --adversarial``): the attacked subset, the mixed batches, the texts and labels
trained on (spied), the step budget, the all-layer PABEE loss for slowdown, resume after SIGKILL (bit-identical)
and the refusals. The attack is a stand-in whose output depends on the current model (a real recipe on a random
tiny model finds almost nothing); the recipe's own path is the one ``robustness attack`` runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustness.attack import adversarial_training as at
from robustness.attack.adversarial_options import AdversarialOptions, adversarial_config
from robustness.cli import main
from robustness.models import trainer
from robustness.models.checkpoint import checkpoint_path, read_checkpoint_state
from robustness.models.fingerprint import model_fingerprint

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# A stand-in attack: every third example fails, the others "succeed" with a text that depends on the current
# model's prediction (so an attack replayed against other weights would differ).
FAKE = '''
def fake_attacker(resources=None, progress=True):
    def attack(session, options, todo, epoch):
        from robustness.models.batching import encode
        for index, text, label in todo:
            hit()
            batch = encode(session.tokenizer, [text], session.config.max_length)
            pred = int(session.model.all_layer_logits(**batch)[-1, 0].argmax())
            if index % 3 == 0:
                yield {"result": "failed", "adv_text": None, "num_queries": 3, "attack_time_s": 0.01}
            else:
                word = "awful" if label == 1 else "great"
                yield {"result": "succeeded", "adv_text": f"{text} {word} {pred} {epoch}", "num_queries": 5,
                       "attack_time_s": 0.01}
    return attack
'''

# The CLI with the stand-in attack, after arranging a SIGKILL of this process at the N-th attacked example
# ("attack N"), in the forward pass of training step N ("forward N"), or never ("none 0").
DRIVER = """
import os, signal, sys
mode, n = sys.argv[1], int(sys.argv[2])
calls = [0]
def hit(kind="attack"):
    if kind == mode:
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
""" + FAKE + """
from robustness.attack import adversarial_training
adversarial_training.textattack_attacker = fake_attacker
from robustness.models.pabee import PabeeModel
real = PabeeModel.forward
def forward(self, *a, **k):
    if self.training:
        hit("forward")
    return real(self, *a, **k)
PabeeModel.forward = forward
from robustness.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _fake_attacker():
    scope: dict = {"hit": lambda: None}
    exec(FAKE, scope)
    return scope["fake_attacker"]()


@pytest.fixture(scope="module")
def data_dir(make_tiny_sst2) -> Path:
    return make_tiny_sst2(validation=8, repeats=5, varied_lengths=True)


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory, tiny_backbone_dir, data_dir) -> Path:
    """The clean PABEE model (30 examples, batch 4: 8 steps per epoch, 2 epochs)."""
    from robustness.models.train import TrainConfig, train_model

    out = tmp_path_factory.mktemp("clean") / "pabee"
    config = TrainConfig(out=str(out), backbone=str(tiny_backbone_dir), data_dir=str(data_dir), epochs=2,
                         batch_size=4, seed=5, device="cpu")
    return train_model(config, progress=False)


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory, tiny_backbone_dir, data_dir) -> Path:
    from robustness.models.train import TrainConfig, train_model

    out = tmp_path_factory.mktemp("clean") / "full"
    config = TrainConfig(out=str(out), head="full", backbone=str(tiny_backbone_dir), data_dir=str(data_dir),
                         epochs=1, batch_size=8, seed=5, device="cpu", limit=8)
    return train_model(config, progress=False)


@pytest.mark.parametrize(("n", "ratio"), [(30, 0.5), (30, 0.25), (7, 0.5), (10, 1.0), (3, 0.1), (101, 0.333)])
def test_attacked_subset_is_deterministic_and_of_size_round_rn(n, ratio):
    subset = at.attacked_subset(n, ratio, seed=5, epoch=2)
    assert len(subset) == int(ratio * n + 0.5)  # half up: 7 x 0.5 = 3.5 -> 4, 3 x 0.1 -> 0
    assert len(set(subset)) == len(subset) and all(0 <= i < n for i in subset)
    assert subset == at.attacked_subset(n, ratio, seed=5, epoch=2)
    if 2 <= len(subset) < n:
        assert {tuple(at.attacked_subset(n, ratio, seed=5, epoch=e)) for e in (1, 2, 3)} != {tuple(subset)}


def test_mix_batches_adds_every_adversarial_example_once_and_keeps_the_clean_batches():
    clean = [(["a", "b"], [0, 1]), (["c", "d"], [1, 1]), (["e"], [0])]
    adv = [(f"x{i}", i % 2) for i in range(7)]
    mixed = at.mix_batches(clean, adv, seed=1, epoch=1)
    assert len(mixed) == len(clean)
    for (texts, labels), (ctexts, clabels) in zip(mixed, clean, strict=True):
        assert texts[: len(ctexts)] == ctexts and labels[: len(clabels)] == clabels
    extra = sorted(p for (texts, labels), (ctexts, _) in zip(mixed, clean, strict=True)
                   for p in zip(texts[len(ctexts):], labels[len(ctexts):], strict=True))
    assert extra == sorted(adv)
    assert [len(t) for t, _ in mixed] == [2 + 3, 2 + 2, 1 + 2]  # dealt round-robin over the steps


def _spied_training(tmp_path, clean_dir, data_dir, monkeypatch, **options):
    """Fine-tune with the stand-in attack, recording the attacker's calls and every optimizer step's batch."""
    steps, calls = [], []
    real_step, fake = trainer.train_step, _fake_attacker()

    def step(session, texts, labels):
        steps.append((list(texts), list(labels)))
        return real_step(session, texts, labels)

    def attacker(session, opts, todo, epoch):
        weights = torch.cat([p.detach().flatten() for p in session.model.parameters()]).clone()
        calls.append((epoch, todo, weights))
        entries = list(fake(session, opts, todo, epoch))
        calls[-1] += (entries, opts)
        yield from entries

    monkeypatch.setattr(trainer, "train_step", step)
    opts = AdversarialOptions(recipe="a2t", init=str(clean_dir), **options)
    config = adversarial_config(clean_dir, {}, out=str(tmp_path / "adv"), data_dir=str(data_dir), device="cpu")
    out = at.train_adversarial(config, opts, attacker=attacker, progress=False)
    return out, steps, calls


def test_trains_on_the_attack_outputs_with_original_labels_at_the_clean_step_budget(tmp_path, clean_dir, data_dir,
                                                                                   monkeypatch):
    from robustness.data import load_examples
    from robustness.models.pabee import PabeeModel

    out, steps, calls = _spied_training(tmp_path, clean_dir, data_dir, monkeypatch, ratio=0.5)
    train = load_examples("glue/sst2", "train", data_dir=str(data_dir), seed=5)
    clean_record = json.loads((clean_dir / "train.json").read_text())
    record = json.loads((out / "train.json").read_text())
    # the budget: the clean training's steps, exactly (2 epochs x 8 steps)
    assert len(steps) == sum(e["steps"] for e in clean_record["history"]) == 16
    assert record["adversarial"]["budget"]["optimizer_steps"] == 16
    assert record["adversarial"]["budget"]["clean_optimizer_steps"] == 16
    init_weights = torch.cat([p.detach().flatten() for p in PabeeModel.from_pretrained(clean_dir).parameters()])
    assert [c[0] for c in calls] == [1, 2]
    assert calls[0][2].equal(init_weights) and not calls[1][2].equal(init_weights)  # the current model
    for epoch, todo, _, entries, _ in calls:
        assert [i for i, _, _ in todo] == at.attacked_subset(30, 0.5, 5, epoch) and len(todo) == 15
        assert all(text == train.texts[i] and label == train.labels[i] for i, text, label in todo)
        epoch_steps = steps[8 * (epoch - 1): 8 * epoch]
        trained = sorted(p for texts, labels in epoch_steps for p in zip(texts, labels, strict=True))
        adversarial = sorted((e["adv_text"], label) for (_, _, label), e in zip(todo, entries, strict=True)
                             if e["result"] == "succeeded")
        assert len(adversarial) == sum(i % 3 != 0 for i, _, _ in todo) > 0
        assert trained == sorted([*zip(train.texts, train.labels, strict=True), *adversarial])
        line = record["adversarial"]["epochs"][epoch - 1]
        assert (line["attacked"], line["adversarial_examples"], line["failed"]) == (15, len(adversarial),
                                                                                   15 - len(adversarial))
    assert record["adversarial"]["init_fingerprint"] == model_fingerprint(clean_dir)
    assert (record["adversarial"]["recipe"], record["adversarial"]["goal"], record["adversarial"]["ratio"]) == (
        "a2t", "accuracy", 0.5)
    assert not at.adversarial_path(out).exists() and not checkpoint_path(out).exists()


def test_a_different_step_budget_is_refused(tmp_path, clean_dir, data_dir):
    opts = AdversarialOptions(recipe="a2t", init=str(clean_dir))
    config = adversarial_config(clean_dir, {"epochs": 3}, out=str(tmp_path / "adv"), data_dir=str(data_dir),
                                device="cpu")
    with pytest.raises(ValueError, match="trained for 16 optimizer steps.*would take 24"):
        at.train_adversarial(config, opts, attacker=_fake_attacker(), progress=False)


def test_slowdown_goal_trains_with_the_all_layer_pabee_loss(tmp_path, clean_dir, data_dir, monkeypatch):
    from robustness.models.pabee import PabeeModel

    losses = []
    real = PabeeModel.forward

    def forward(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if self.training:
            labels = kwargs["labels"]
            ce = torch.stack([torch.nn.functional.cross_entropy(z, labels) for z in out.layer_logits])
            assert len(ce) == self.num_layers == 2  # every internal classifier
            losses.append((out.loss.item(), ((1 * ce[0] + 2 * ce[1]) / 3).item()))
        return out

    monkeypatch.setattr(PabeeModel, "forward", forward)
    out, steps, calls = _spied_training(tmp_path, clean_dir, data_dir, monkeypatch, goal="slowdown", ratio=0.25,
                                         setting="patience:1")
    assert len(losses) == 16 and all(a == pytest.approx(b, abs=1e-6) for a, b in losses)
    assert sum(len(t) for t, _ in steps) > 2 * 30  # adversarial examples were in the batches
    record = json.loads((out / "train.json").read_text())["adversarial"]
    assert (record["goal"], record["setting"]) == ("slowdown", "patience:1")
    assert [(c[4].goal, c[4].attack_setting) for c in calls] == [("slowdown", "patience:1")] * 2


def _run(argv: list[str], mode: str = "none", n: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, mode, str(n), *argv], env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_sigkill_in_an_adversarial_epoch_resumes_to_identical_weights(tmp_path, clean_dir, data_dir):
    argv = ["train", "--adversarial", "a2t", "--init", str(clean_dir), "--data-dir", str(data_dir), "--adv-ratio",
            "0.5", "--device", "cpu"]
    reference = _run([*argv, "--out", str(tmp_path / "reference")])
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "resumed"
    argv = [*argv, "--out", str(out), "--checkpoint-every", "3"]
    # 1: killed while attacking example 5 of epoch 2 (15 per epoch); the checkpoint is epoch 1's end (step 8)
    assert _run(argv, "attack", 20).returncode == -signal.SIGKILL
    assert read_checkpoint_state(checkpoint_path(out))["step"] == 8
    lines = at.adversarial_path(out).read_text().splitlines()
    assert len(lines) == 1 + 15 + 4
    # 2: resumed (10 examples left to attack), killed in the forward pass of its 4th step (step 12; checkpoint 9)
    assert _run(argv, "forward", 4).returncode == -signal.SIGKILL
    assert read_checkpoint_state(checkpoint_path(out))["step"] == 9
    # 3: resumed mid-epoch: the epoch's adversarial examples come from the file, none is attacked again
    done = _run(argv, "attack", 1)
    assert done.returncode == 0, done.stderr[-2000:]
    ours, theirs = load_file(out / "model.safetensors"), load_file(tmp_path / "reference" / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours)
    record, ref = (json.loads((d / "train.json").read_text()) for d in (out, tmp_path / "reference"))
    assert record["history"] == ref["history"]
    strip = [{k: v for k, v in e.items() if k != "attack_time_s"} for e in record["adversarial"]["epochs"]]
    assert strip == [{k: v for k, v in e.items() if k != "attack_time_s"} for e in ref["adversarial"]["epochs"]]
    assert [s["from_step"] for s in record["sessions"]] == [0, 8, 9]


def test_changed_adversarial_options_are_refused_on_resume(tmp_path, clean_dir, data_dir):
    argv = ["train", "--adversarial", "a2t", "--init", str(clean_dir), "--data-dir", str(data_dir), "--device",
            "cpu", "--out", str(tmp_path / "m"), "--checkpoint-every", "1"]
    assert _run([*argv, "--adv-ratio", "0.5"], "forward", 3).returncode == -signal.SIGKILL
    changed = _run([*argv, "--adv-ratio", "0.25"])
    assert changed.returncode == 2 and "adv_ratio = 0.5 (now 0.25)" in changed.stderr


@pytest.mark.parametrize(("extra", "message"), [
    (["--adversarial", "a2t"], "--adversarial fine-tunes a trained model: pass --init"),
    (["--init", "{clean}"], "--init starts an adversarial fine-tuning: add --adversarial"),
    (["--adversarial", "nosuch", "--init", "{clean}"], "--adversarial: unknown recipe 'nosuch'"),
    (["--adversarial", "a2t", "--init", "{clean}", "--adv-ratio", "0"], "--adv-ratio must be a fraction in (0, 1]"),
    (["--adversarial", "a2t", "--init", "{clean}", "--adv-ratio", "1.5"], "--adv-ratio must be a fraction in (0, 1]"),
    (["--adversarial", "a2t", "--init", "{full}", "--adversarial-goal", "slowdown"], "is a full-depth baseline"),
    (["--adversarial", "a2t", "--init", "{clean}", "--adversarial-goal", "slowdown", "--adv-setting", "full"],
     "the slowdown goal needs an early-exit setting"),
    (["--adversarial", "a2t", "--init", "{clean}", "--head", "full"], "--head comes from --init"),
    (["--adversarial", "a2t", "--init", "{missing}"], "missing"),
])
def test_bad_adversarial_requests_are_one_line_and_exit_2(tmp_path, capsys, clean_dir, baseline_dir, extra, message):
    paths = {"clean": clean_dir, "full": baseline_dir, "missing": tmp_path / "missing"}
    argv = ["train", "--out", str(tmp_path / "out"), *(a.format(**paths) for a in extra)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()
