"""The commands are thin calls of the façade (:mod:`robustness.commands` -> :mod:`robustness.api`): every flag
of a job's command is a keyword of its façade call with the same default, the command passes what it parsed
through unchanged, and the command and the call write the same things."""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path

import pytest

import robustness as rb
from robustness import api
from robustness.cli import _parser, main
from robustness.commands import job_options

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
needs_shared = pytest.mark.skipif(not (SHARED / "nltk_data").is_dir(), reason="shared resources absent")
SENTENCES = ["a gripping , beautifully acted film", "dull and lifeless", "an instant classic",
             "i have never been so bored", "warm and funny", "a tedious mess"]

#: the smallest command line of each job; its flags given here are required, so have no default to compare
MINIMAL = {
    "train": ["--out", "o"],
    "evaluate": ["--model", "m", "--out", "o"],
    "attack": ["--model", "m", "--recipe", "r", "--out", "o"],
    "transfer": ["run", "--model", "m", "--out", "o"],
    "trigger": ["--model", "m"],
    "quality": ["r"],
    "revalidate": ["r"],
    "aggregate": ["r", "--out", "o"],
    "report": ["r", "--out", "o"],
    "bench": ["s.toml", "--out", "o"],
    "pack": ["o", "--into", "d"],
}
REQUIRED = {"out", "model", "recipe", "run", "runs", "suite", "into"}


class Stop(Exception):
    """Raised by a stand-in for the work a job hands on, once it has seen what it was given."""


@pytest.mark.parametrize("job", sorted(MINIMAL))
def test_every_flag_is_a_keyword_of_the_facade_call_with_the_same_default(job: str) -> None:
    assert set(MINIMAL) == set(rb.JOBS)
    parameters = inspect.signature(getattr(api, job)).parameters
    parsed = job_options(_parser().parse_args([job, *MINIMAL[job]]))
    missing = sorted(set(parsed) - set(parameters))
    assert not missing, f"robustness {job} has flags its façade call lacks: {missing}"
    for name, value in parsed.items():
        if name in REQUIRED:
            continue
        default = parameters[name].default
        assert default is not inspect.Parameter.empty, f"{job}({name}) has no default; its flag does"
        assert value == default or (value is None and default == ()), (job, name, value, default)


def test_the_commands_hold_no_implementation_of_a_job() -> None:
    """One implementation per job: the duplicates of the façade's helpers are gone from the command line."""
    import robustness.commands as commands

    for gone in ("robustness.commands.common", "robustness.commands.bench", "robustness.commands.trigger"):
        with pytest.raises(ModuleNotFoundError):
            __import__(gone)
    for job in rb.JOBS:
        source = inspect.getsource(getattr(commands, f"cmd_{job}"))
        assert f"api.{job}(**job_options(args)" in source and len(source.splitlines()) <= 20, job


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, write_sst2) -> Path:
    root = tmp_path_factory.mktemp("commands")
    write_sst2(root, SENTENCES)
    return root


def test_evaluate_command_prints_and_writes_what_the_call_returns(tmp_path, tiny_pabee_dir, data_root,
                                                                  capsys) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_pabee_dir, model)
    options = ["--batch-size", "4", "--device", "cpu", "--timing-repeats", "0", "--limit", "5", "--seed", "3",
               "--match-speedup", "1.5"]
    assert main(["evaluate", "--model", str(model), "--data-dir", str(data_root / "data"),
                 "--out", str(tmp_path / "cli.csv"), *options]) == 0
    printed = capsys.readouterr().out
    calibration = (model / "calibration.json").read_text()
    table = rb.evaluate(model, data_dir=data_root / "data", out=tmp_path / "api.csv", batch_size=4, device="cpu",
                        timing_repeats=0, limit=5, seed=3, match_speedup=[1.5])
    assert (tmp_path / "cli.csv").read_text() == (tmp_path / "api.csv").read_text() == table.to_csv(index=False)
    assert printed == (f"{table.to_string(index=False)}\nwrote {tmp_path / 'cli.csv'}\n"
                       f"wrote {model / 'calibration.json'}\n")
    assert (model / "calibration.json").read_text() == calibration  # the same entries, rewritten
    assert {(e["n"], e["seed"]) for e in json.loads(calibration).values()} == {(5, 3)}


def test_train_passes_device_amp_and_resume_options_through(tmp_path, tiny_pabee_dir, data_root,
                                                            monkeypatch, capsys) -> None:
    import robustness.models.train as train

    calls = []

    def fake_train_model(config, **kwargs):
        calls.append((config, kwargs))
        return tiny_pabee_dir

    monkeypatch.setattr(train, "train_model", fake_train_model)
    assert main(["train", "--out", str(tmp_path / "m"), "--data-dir", str(data_root / "data"), "--device", "cpu",
                 "--checkpoint-every", "7", "--overwrite", "--epochs", "2", "--seed", "5"]) == 0
    assert capsys.readouterr().out == f"saved pabee model to {tiny_pabee_dir}\n"
    assert rb.train(tmp_path / "m", data_dir=data_root / "data", device="cpu", checkpoint_every=7, overwrite=True,
                    epochs=2, seed=5, progress=True) == tiny_pabee_dir
    (cli_config, cli_kwargs), (api_config, api_kwargs) = calls
    assert cli_config == api_config and cli_kwargs == api_kwargs
    assert (api_config.device, api_config.amp, api_config.epochs, api_config.seed) == ("cpu", None, 2, 5)
    assert api_config.lr == 5e-5 and api_config.data_dir == str(data_root / "data")  # left out: the default
    assert api_kwargs == {"progress": True, "overwrite": True, "checkpoint_every": 7}
    rb.train(tmp_path / "m", amp="bf16")
    assert calls[-1][0].amp == "bf16" and calls[-1][1] == {"progress": False, "overwrite": False,
                                                          "checkpoint_every": None}
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N|device must be"):
        rb.train(tmp_path / "m", device="gpu")
    with pytest.raises(ValueError, match="--epochs must be >= 1"):
        rb.train(tmp_path / "m", epochs=0)


@needs_shared
def test_adversarial_training_options_pass_through(tmp_path, tiny_pabee_dir, data_root, monkeypatch) -> None:
    import robustness.attack.adversarial_training as adversarial_training

    calls = []

    def fake_train_adversarial(config, options, **kwargs):
        calls.append((config, options, sorted(kwargs)))
        raise Stop

    monkeypatch.setattr(adversarial_training, "train_adversarial", fake_train_adversarial)
    flags = {"--adversarial": "deepwordbug", "--adversarial-goal": "slowdown", "--adv-ratio": "0.5",
             "--adv-setting": "patience:1", "--adv-query-budget": "9", "--init": str(tiny_pabee_dir),
             "--checkpoint-every": "3", "--device": "cpu"}
    with pytest.raises(Stop):
        main(["train", "--out", str(tmp_path / "adv"), "--data-dir", str(data_root / "data"),
              "--nltk-data", str(SHARED / "nltk_data"), *(x for item in flags.items() for x in item)])
    with pytest.raises(Stop):
        rb.train(tmp_path / "adv", data_dir=data_root / "data", nltk_data=SHARED / "nltk_data",
                 adversarial="deepwordbug", adversarial_goal="slowdown", adv_ratio=0.5, adv_setting="patience:1",
                 adv_query_budget=9, init=tiny_pabee_dir, checkpoint_every=3, device="cpu")
    (cli_config, cli_options, _), (api_config, api_options, keywords) = calls
    assert cli_config == api_config and cli_options == api_options
    assert (api_options.recipe, api_options.goal, api_options.ratio, api_options.setting,
            api_options.query_budget, api_options.init) == ("deepwordbug", "slowdown", 0.5, "patience:1", 9,
                                                            str(tiny_pabee_dir))
    assert api_config.device == "cpu" and api_config.head == "pabee"
    assert keywords == ["checkpoint_every", "overwrite", "progress", "resources"]
    with pytest.raises(ValueError, match="--init starts an adversarial fine-tuning"):
        rb.train(tmp_path / "adv", init=tiny_pabee_dir)


@needs_shared
def test_attack_passes_device_and_goal_options_into_its_spec(tmp_path, tiny_pabee_dir, data_root,
                                                             monkeypatch) -> None:
    import robustness.attack.runner as runner

    specs = []

    def fake_run_attack(spec, out_dir, **kwargs):
        specs.append((spec, out_dir, kwargs))
        raise Stop

    monkeypatch.setattr(runner, "run_attack", fake_run_attack)
    with pytest.raises(Stop):
        main(["attack", "--model", str(tiny_pabee_dir), "--recipe", "textfooler", "--patience", "1", "--n", "3",
              "--goal", "slowdown", "--slowdown-score", "waffle", "--sentence-encoder", "minilm", "--device", "cpu",
              "--data-dir", str(data_root / "data"), "--nltk-data", str(SHARED / "nltk_data"), "--out",
              str(tmp_path / "run"), "--overwrite"])
    with pytest.raises(Stop):
        rb.attack(tiny_pabee_dir, "textfooler", patience=1, n=3, goal="slowdown", slowdown_score="waffle",
                  sentence_encoder="minilm", device="cpu", data_dir=data_root / "data",
                  nltk_data=SHARED / "nltk_data", out=tmp_path / "run", overwrite=True, progress=True,
                  command=specs[0][2]["command"])
    (cli, cli_out, cli_kwargs), (call, call_out, call_kwargs) = specs
    assert cli == call and cli_out == call_out and cli_kwargs == call_kwargs
    assert (call.setting, call.goal, call.slowdown_score, call.sentence_encoder, call.device) == \
        ("patience:1", "slowdown", "waffle", "minilm", "cpu")
    assert call_kwargs["overwrite"] is True and call_kwargs["progress"] is True
    with pytest.raises(ValueError, match="give --setting or --patience, not both"):
        rb.attack(tiny_pabee_dir, "deepwordbug", setting="full", patience=1, out=tmp_path / "x")
    with pytest.raises(ValueError, match="--slowdown-score waffle needs --goal slowdown"):
        rb.attack(tiny_pabee_dir, "deepwordbug", slowdown_score="waffle", out=tmp_path / "x")


def test_bench_checks_the_command_line_options(tmp_path, tiny_pabee_dir) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nname = "s"\ndataset = "glue/sst2"\nn = 4\nrecipes = ["deepwordbug"]\npatience = [1]\n'
                     f'[[models]]\nid = "m"\nhead = "pabee"\npath = "{tiny_pabee_dir}"\n')
    with pytest.raises(ValueError, match="--gpus-per-task is for --engine ray"):
        rb.bench(suite, out=tmp_path / "o", gpus_per_task=1)
    with pytest.raises(ValueError, match="--address names a Ray cluster"):
        rb.bench(suite, out=tmp_path / "o", address="auto")
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        rb.bench(suite, out=tmp_path / "o", workers=0)
    with pytest.raises(ValueError, match="--device must be"):
        rb.bench(suite, out=tmp_path / "o", device="tpu")
    with pytest.raises(ValueError, match=f"--slowdown-score needs a suite with slowdown runs.*{suite}"):
        rb.bench(suite, out=tmp_path / "o", slowdown_score=["waffle"])
