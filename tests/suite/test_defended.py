"""Defended models in a suite (``[models.train] adversarial = ..., init = ...``): the init trains first whatever the
file's order, the fine-tuning inherits its options and step budget, and bad declarations are refused early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustness.cli import main
from robustness.suite.defended import training_order
from robustness.suite.suite_file import load_suite


@pytest.fixture(scope="module")
def data_dir(make_tiny_sst2) -> Path:
    return make_tiny_sst2(validation=8)


def _suite(tmp_path: Path, backbone: Path, defended: str = 'adversarial = "a2t"\ninit = "clean"\nadv_ratio = 0.5\n',
           head: str = "pabee") -> Path:
    path = tmp_path / "suite.toml"
    # the defended model comes first in the file: bench must still train its init first
    path.write_text('[suite]\nname = "t"\ndataset = "glue/sst2"\nn = 4\nrecipes = ["deepwordbug"]\n'
                    f'[[models]]\nid = "defended"\nhead = "{head}"\nsettings = [1]\n[models.train]\n{defended}'
                    f'[[models]]\nid = "clean"\nhead = "{head}"\nsettings = [1]\n[models.train]\n'
                    f'backbone = "{backbone}"\nepochs = 2\nbatch_size = 6\nseed = 3\n')
    return path


def test_bench_trains_the_init_first_then_fine_tunes_it(tmp_path, tiny_backbone_dir, data_dir, monkeypatch):
    from robustness.attack import adversarial_training

    attacked = []

    def attacker(resources=None, progress=True):
        def attack(session, options, todo, epoch):
            attacked.append((options.init, epoch, len(todo)))
            for index, text, _ in todo:
                yield {"result": "succeeded" if index % 2 else "skipped",
                       "adv_text": f"{text} fine" if index % 2 else None, "num_queries": 1, "attack_time_s": 0.0}
        return attack

    monkeypatch.setattr(adversarial_training, "textattack_attacker", attacker)
    suite = _suite(tmp_path, tiny_backbone_dir)
    assert [m.id for m in training_order(load_suite(suite).models)] == ["clean", "defended"]
    out = tmp_path / "out"
    assert main(["bench", str(suite), "--out", str(out), "--data-dir", str(data_dir), "--train-only"]) == 0
    clean = json.loads((out / "models/clean/train.json").read_text())
    record = json.loads((out / "models/defended/train.json").read_text())
    assert attacked == [(str(out / "models/clean"), 1, 12), (str(out / "models/clean"), 2, 12)]
    adv = record["adversarial"]
    assert (adv["recipe"], adv["ratio"], adv["init"]) == ("a2t", 0.5, str(out / "models/clean"))
    assert adv["budget"]["optimizer_steps"] == adv["budget"]["clean_optimizer_steps"] == 8  # 2 epochs x 24/6
    assert {k: record["config"][k] for k in ("epochs", "batch_size", "seed", "lr")} == {
        k: clean["config"][k] for k in ("epochs", "batch_size", "seed", "lr")}


@pytest.mark.parametrize(("defended", "head", "message"), [
    ('adversarial = "a2t"\n', "pabee", "needs both 'adversarial' (a recipe) and 'init'"),
    ('adversarial = "a2t"\ninit = "nosuch"\n', "pabee", "init 'nosuch' is not another model of the suite"),
    ('adversarial = "a2t"\ninit = "defended"\n', "pabee", "init 'defended' is not another model"),
    ('adversarial = "a2t"\ninit = "clean"\nepochz = 2\n', "pabee", "unknown train keys ['epochz']"),
    ('adversarial = "a2t"\ninit = "clean"\nbackbone = "x"\n', "pabee", "come from its init 'clean'"),
    ('adversarial = "nosuch"\ninit = "clean"\n', "pabee", "unknown recipe 'nosuch'"),
    ('adversarial = "a2t"\ninit = "clean"\nadv_ratio = 1.5\n', "pabee", "--adv-ratio must be a fraction in (0, 1]"),
    ('adversarial = "a2t"\ninit = "clean"\nadversarial_goal = "slowdown"\n', "full", "is a full-depth baseline"),
])
def test_bad_defended_models_are_refused_before_training(tmp_path, tiny_backbone_dir, data_dir, capsys, defended,
                                                         head, message):
    suite = _suite(tmp_path, tiny_backbone_dir, defended, head)
    assert main(["bench", str(suite), "--out", str(tmp_path / "out"), "--data-dir", str(data_dir),
                 "--train-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out" / "models").exists()


def test_a_cycle_of_inits_is_refused(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text('[suite]\nname = "t"\ndataset = "glue/sst2"\nrecipes = ["a2t"]\n'
                    '[[models]]\nid = "a"\n[models.train]\nadversarial = "a2t"\ninit = "b"\n'
                    '[[models]]\nid = "b"\n[models.train]\nadversarial = "a2t"\ninit = "a"\n')
    with pytest.raises(ValueError, match="models a -> b -> a are each other's init"):
        load_suite(path)


def test_bench_refuses_changed_adversarial_options_then_resumes(tmp_path, tiny_backbone_dir, data_dir, monkeypatch,
                                                               capsys):
    from robustness.attack import adversarial_training
    from robustness.models.pabee import PabeeModel

    def attacker(resources=None, progress=True):
        def attack(session, options, todo, epoch):
            for _, text, _ in todo:
                yield {"result": "succeeded", "adv_text": f"{text} fine", "num_queries": 1, "attack_time_s": 0.0}
        return attack

    monkeypatch.setattr(adversarial_training, "textattack_attacker", attacker)
    real, calls = PabeeModel.forward, []

    def forward(self, *args, **kwargs):
        if self.training:
            calls.append(1)
            if len(calls) == 8 + 6:  # the clean model's 8 steps, then step 6 of the fine-tuning (checkpoint: 4)
                raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PabeeModel, "forward", forward)
    out, common = tmp_path / "out", ["--data-dir", str(data_dir), "--train-only"]
    assert main(["bench", str(_suite(tmp_path, tiny_backbone_dir)), "--out", str(out), *common]) == 130
    changed = _suite(tmp_path, tiny_backbone_dir, 'adversarial = "a2t"\ninit = "clean"\nadv_ratio = 0.25\n')
    capsys.readouterr()
    assert main(["bench", str(changed), "--out", str(out), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert "adv_ratio = 0.5 (now 0.25)" in err and "delete .defended.checkpoint.safetensors" in err, err
    assert main(["bench", str(_suite(tmp_path, tiny_backbone_dir)), "--out", str(out), *common]) == 0
    assert "resuming at step 4" in capsys.readouterr().out
    assert [s["from_step"] for s in json.loads((out / "models/defended/train.json").read_text())["sessions"]] == [0, 4]
