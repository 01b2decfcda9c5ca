"""Threshold calibration on hand-made logits whose exits are worked out by hand, and through evaluate."""

from __future__ import annotations

import math

import pytest
import torch

from robustness.models.calibrate import calibrated_setting, match_threshold, read_calibration, write_calibration
from robustness.models.exits import setting_exit


class _Model:
    head, num_layers = "pabee", 3

    def exit_from_layer_logits(self, layer_logits, setting):
        return setting_exit(layer_logits, setting)


def _from_probs(probs: list[list[float]]) -> torch.Tensor:
    """[L, N, 2] logits whose class-0 probability at layer l, example i is ``probs[l][i]``."""
    p = torch.tensor(probs)
    return torch.stack([p.log(), (1 - p).log()], dim=-1)


# 3 layers x 4 examples; max probabilities per layer: ex0 .95 .95 .95, ex1 .7 .9 .95, ex2 .6 .7 .9, ex3 .55 .6 .65
LOGITS = _from_probs([[0.95, 0.7, 0.6, 0.55], [0.95, 0.9, 0.7, 0.6], [0.95, 0.95, 0.9, 0.65]])


@pytest.mark.parametrize(
    ("target", "exits"),
    [
        (12 / 4, [1, 1, 1, 1]),  # T <= .55: every example is confident at layer 1; speed-up 3
        (12 / 5, [1, 1, 1, 2]),  # T in (.55, .6]: ex3 exits at layer 2; mean 5/4
        (12 / 7, [1, 1, 2, 3]),  # T in (.6, .7]: ex2 at 2, ex3 never confident (L = 3); mean 7/4
        (12 / 9, [1, 2, 3, 3]),  # T in (.7, .9]: mean 9/4
        (12 / 10, [1, 3, 3, 3]),  # T in (.9, .95]
        (1.0, [3, 3, 3, 3]),  # T above .95: nobody exits early
    ],
)
def test_maxprob_threshold_reaches_each_achievable_speedup(target, exits):
    setting = match_threshold(_Model(), LOGITS, "maxprob", target)
    assert setting.policy == "maxprob"
    assert setting_exit(LOGITS, setting)[0].tolist() == exits
    assert len(str(setting.value)) <= 4  # the shortest decimal inside the gap (e.g. 0.8)


def test_entropy_threshold_and_closest_speedup():
    # entropy is monotone in the max probability for 2 classes: the same exits as max probability
    setting = match_threshold(_Model(), LOGITS, "entropy", 12 / 9)
    assert setting_exit(LOGITS, setting)[0].tolist() == [1, 2, 3, 3]
    # 1.5 is not achievable: the closest speed-ups are 4/3 (distance 0.17) and 12/7 (distance 0.21) -> 4/3
    assert setting_exit(LOGITS, match_threshold(_Model(), LOGITS, "entropy", 1.5))[0].tolist() == [1, 2, 3, 3]


def test_calibration_errors_and_references(tmp_path):
    with pytest.raises(ValueError, match="policy must be"):
        match_threshold(_Model(), LOGITS, "patience", 2.0)
    with pytest.raises(ValueError, match="speed-up is >= 1"):
        match_threshold(_Model(), LOGITS, "entropy", 0.5)
    assert calibrated_setting("entropy@patience:2") == ("entropy", "patience:2")
    assert calibrated_setting("maxprob@1.86") == ("maxprob", "1.86")
    assert calibrated_setting("maxprob@2") == ("maxprob", "2.0")  # a number is a speed-up
    with pytest.raises(ValueError, match="entropy@patience:2"):
        calibrated_setting("patience@2")
    write_calibration(tmp_path, [{"reference": "entropy@patience:2", "setting": "entropy:0.3"}])
    write_calibration(tmp_path, [{"reference": "maxprob@patience:2", "setting": "maxprob:0.8"}])
    assert set(read_calibration(tmp_path)) == {"entropy@patience:2", "maxprob@patience:2"}


def test_evaluate_adds_matched_threshold_rows(tiny_pabee_dir, tiny_texts):
    from robustness.models.evaluate import evaluate_model
    from robustness.models.pabee import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny_pabee_dir)
    labels = [i % 2 for i in range(len(tiny_texts))]
    table = evaluate_model(model, tokenizer, tiny_texts, labels, timing_repeats=0, match=["patience:1"])
    rows = table[table["calibration"] != ""]
    assert sorted(rows["calibration"].str.split("@").str[0]) == ["entropy", "maxprob"]
    assert all(r.startswith(("entropy:", "maxprob:")) for r in rows["setting"])
    target = table.loc[table["setting"] == "patience:1", "layer_speedup"].item()
    for speedup in rows["layer_speedup"]:  # L = 2 and 8 texts: mean exits move in steps of 1/8
        assert math.isclose(speedup, target, rel_tol=0.25)


def test_bench_calibrates_what_a_suite_references(tiny_pabee_dir, tiny_texts, tmp_path):
    import shutil

    import pandas as pd

    from robustness.suite.stages import calibrate_thresholds
    from robustness.suite.suite_file import load_suite

    (tmp_path / "data" / "sst2").mkdir(parents=True)
    pd.DataFrame({"sentence": tiny_texts, "label": [i % 2 for i in range(len(tiny_texts))],
                  "idx": range(len(tiny_texts))}).to_parquet(tmp_path / "data" / "sst2" / "validation.parquet")
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_pabee_dir, model_dir)
    path = tmp_path / "s.toml"
    path.write_text(f'[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\nn=3\nsettings=["patience:1"]\n'
                    f'data_dir="{tmp_path / "data"}"\n[[models]]\nid="p"\npath="{model_dir}"\n'
                    'calibrated=["entropy@patience:1", "maxprob@patience:1"]\n')
    suite = load_suite(path)
    calibrate_thresholds(suite, {"p": str(model_dir)})
    calibration = read_calibration(model_dir)
    assert set(calibration) == {"entropy@patience:1", "maxprob@patience:1"}
    assert all(e["n"] == len(tiny_texts) - 3 and e["excludes_attack_sample"] for e in calibration.values())
    settings = [r.setting for r in suite.run_specs({"p": str(model_dir)})]
    assert settings[0] == "patience:1" and [s.split(":")[0] for s in settings[1:]] == ["entropy", "maxprob"]
    # the clean evaluation off the attack sample (the verdict's eligibility) covers the calibrated settings too
    from robustness.models.fingerprint import model_fingerprint
    from robustness.suite.stages import clean_tables

    clean = clean_tables(suite, {"p": str(model_dir)}, {"p": model_fingerprint(model_dir)}, tmp_path / "out")
    assert list(clean["setting"]) == settings and set(clean["n"]) == {len(tiny_texts) - 3}
