"""The one validation path of impossible requests (robustness.requests), on hand-made inputs whose answer is
known: what a model with L layers and a head can run, counts of every subcommand, and spec.json checks."""

from __future__ import annotations

import argparse

import pytest

from robustness.requests import (
    check_calibration_target,
    check_flags,
    check_run_request,
    check_spec_records,
    check_verdict_setting,
    read_spec,
)
from robustness.suite.specs import RunSpec


@pytest.mark.parametrize(("setting", "goal", "target", "head", "error"), [
    ("patience:5", "accuracy", None, "pabee", None),
    ("patience:6", "accuracy", None, "pabee", "needs patience < the model's 6 layers"),
    ("patience:9", "accuracy", None, "pabee", "needs patience < the model's 6 layers"),
    ("entropy:0.3", "slowdown", 6, "pabee", None),
    ("patience:2", "slowdown", 2, "pabee", None),
    ("patience:2", "slowdown", 1, "pabee", "target 1 is outside 2..6"),
    ("patience:2", "slowdown", 7, "pabee", "target 7 is outside 2..6"),
    ("full", "slowdown", None, "pabee", "slowdown goal needs an early-exit setting"),
    ("full", "slowdown", None, "full", "slowdown goal needs an early-exit setting"),
    ("full", "accuracy", None, "full", None),
    ("patience:1", "accuracy", None, "full", "full-depth baseline"),
    ("sometimes", "accuracy", None, "pabee", "where: patience must be a positive integer"),
])
def test_run_requests_on_a_six_layer_model(setting, goal, target, head, error):
    def check():
        return check_run_request(setting, num_layers=6, head=head, where="where", goal=goal, goal_target=target)

    if error is None:
        assert check().label == setting
    else:
        with pytest.raises(ValueError, match=error):
            check()


@pytest.mark.parametrize(("target", "as_setting", "error"), [
    ("patience:5", None, None), ("patience:6", None, "needs patience < the model's 6 layers"), ("full", None, None),
    ("1", None, None), ("6", None, None), ("6.01", None, "speed-up 6.01 is impossible on 6 layers"),
    ("0.9", None, "impossible"), ("nan", None, "impossible"), ("inf", None, "impossible"),
    ("5", True, None), ("6", True, "needs patience < the model's 6 layers"), ("x", False, "is a number"),
])
def test_calibration_targets_on_a_six_layer_model(target, as_setting, error):
    def check():
        check_calibration_target(target, num_layers=6, head="pabee", where="w", setting=as_setting)

    if error is None:
        check()
    else:
        with pytest.raises(ValueError, match=error):
            check()
    with pytest.raises(ValueError, match="multi-exit"):
        check_calibration_target("2", num_layers=6, head="full", where="w")


def test_counts_of_every_subcommand_name_their_flag():
    check_flags(argparse.Namespace(batch_size=1, timing_repeats=0, workers=None, engine="local", address=None))
    for name, value, flag in [("batch_size", 0, "--batch-size must be >= 1"), ("timing_repeats", -1,
                              "--timing-repeats must be >= 0"), ("workers", 0, "--workers must be >= 1"),
                              ("shard_size", 0, "--shard-size must be >= 1"), ("n", True, "--n must be >= 1")]:
        with pytest.raises(ValueError, match=flag):
            check_flags(argparse.Namespace(**{name: value}))
    with pytest.raises(ValueError, match="--address names a Ray cluster"):
        check_flags(argparse.Namespace(engine="local", address="auto"))
    check_flags(argparse.Namespace(engine="ray", address="auto"))


def test_verdict_setting_must_be_run():
    check_verdict_setting(None, [], "x")
    check_verdict_setting("3", ["patience:3", "full"], "x")  # a plain integer is patience
    with pytest.raises(ValueError, match="x patience:4 is never run; choose one of patience:3, full"):
        check_verdict_setting("patience:4", ["full", "patience:3"], "x")


def test_spec_json_fields_must_still_give_its_run_id_and_agree_with_the_records():
    spec = RunSpec(model_id="m", model_dir="/m", recipe="pwws", dataset="sst2", setting="patience:2", n=3)
    data = {**spec.to_dict(), "run_id": spec.run_id}
    assert read_spec("s.json", data) == spec
    check_spec_records("s.json", data, [0, 1, 2], complete=True)
    check_spec_records("s.json", data, [0, 2], complete=False)
    with pytest.raises(ValueError, match="s.json says n = 3 but the run holds 2 records"):
        check_spec_records("s.json", data, [0, 2], complete=True)
    with pytest.raises(ValueError, match="s.json says n = 3 but the run holds example id 3"):
        check_spec_records("s.json", data, [0, 3], complete=False)
    for edit in ({"n": 4}, {"setting": "full"}, {"recipe": "textfooler"}):
        with pytest.raises(ValueError, match="s.json: edited after the run"):
            read_spec("s.json", {**data, **edit})
    with pytest.raises(ValueError, match=r"s.json: not a valid run spec \(field n is 'three'"):
        read_spec("s.json", {**data, "n": "three"})
    transfer = {"kind": "transfer", "run_id": "t", "n": 2}  # transfers are not attack specs: only n is checked
    check_spec_records("t.json", transfer, [0, 1], complete=True)
