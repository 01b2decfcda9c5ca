from __future__ import annotations

from pathlib import Path

import pytest

from robustness.suite.specs import RunSpec, Setting, VerdictOptions, parse_setting
from robustness.suite.suite_file import load_suite


@pytest.mark.parametrize(
    ("raw", "label", "slug"),
    [
        (None, "full", "pfull"), ("full", "full", "pfull"), ("patience:full", "full", "pfull"),
        (3, "patience:3", "p3"), ("3", "patience:3", "p3"), ("patience:2", "patience:2", "p2"),
        ("entropy:0.35", "entropy:0.35", "ent0.35"), ("entropy:1", "entropy:1.0", "ent1.0"),
        ("maxprob:0.9", "maxprob:0.9", "mp0.9"), (Setting("maxprob", 1), "maxprob:1.0", "mp1.0"),
    ],
)
def test_parse_setting_labels(raw, label, slug):
    setting = parse_setting(raw)
    assert setting.label == label and setting.slug == slug
    assert parse_setting(setting.label) == setting  # the label round-trips


@pytest.mark.parametrize(
    ("bad", "message"),
    [("0", "patience must be"), (0, "patience must be"), (-1, "patience must be"), ("x", "patience must be"),
     (1.5, "patience must be"), (True, "a setting must be"), ("2.0", "patience must be"),
     ("entropy:-0.1", "entropy threshold must be >= 0"), ("maxprob:1.5", r"maxprob threshold must be in \[0, 1\]"),
     ("maxprob:high", "maxprob threshold must be a number"), ("depth:3", "a setting must be"),
     ("entropy:", "a setting must be"), ("entropy:nan", "must be a number")],
)
def test_parse_setting_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_setting(bad)


def test_setting_patience_accessor():
    assert parse_setting(2).patience == 2 and parse_setting("full").patience is None
    with pytest.raises(ValueError, match="not a patience setting"):
        _ = parse_setting("entropy:0.2").patience


def spec(**overrides) -> RunSpec:
    values = dict(model_id="pabee-minilm", model_dir="/a", recipe="textfooler", dataset="glue/sst2", setting=3)
    return RunSpec(**{**values, **overrides})


def test_run_id_is_stable_and_ignores_locations():
    a, b, c = spec(), spec(model_dir="/b", data_dir="/data"), spec(setting=4)
    assert a.run_id == b.run_id
    assert a.run_id != c.run_id
    assert a.run_id.startswith("pabee-minilm-p3_textfooler_sst2_")
    assert a.setting == "patience:3" and spec(setting="patience:3") == a
    assert RunSpec.from_dict(a.to_dict()) == a


def test_run_ids_from_before_settings_are_unchanged():
    # the hashes of ids written when RunSpec had ``patience`` (int | None) instead of ``setting`` (and MiniLM
    # was the only sentence encoder)
    assert spec(sentence_encoder="minilm").run_id == "pabee-minilm-p3_textfooler_sst2_e44a1c"
    assert spec(setting="full", sentence_encoder="minilm").run_id == "pabee-minilm-pfull_textfooler_sst2_a9d173"


def test_specs_without_an_encoder_read_as_minilm_and_new_runs_default_to_use_m3():
    old = {k: v for k, v in spec(sentence_encoder="minilm").to_dict().items() if k != "sentence_encoder"}
    old_spec = RunSpec.from_dict({**old, "run_id": "pabee-minilm-p3_textfooler_sst2_e44a1c"})  # a spec.json of then
    assert old_spec.sentence_encoder == "minilm"
    assert old_spec.run_id == "pabee-minilm-p3_textfooler_sst2_e44a1c"  # the id it was written under
    new = spec()
    assert new.sentence_encoder == "use-m3" and new.run_id != old_spec.run_id
    assert new.run_id.startswith("pabee-minilm-p3_textfooler_sst2_")
    assert RunSpec.from_dict(new.to_dict()) == new  # written with the field, read back as USE-m3
    assert spec(sentence_encoder="use-m3") == new


@pytest.mark.parametrize(
    ("recipe", "stock", "requested", "stored"),
    [("textfooler", False, None, "use-m3"), ("textbugger", False, None, "use-m3"), ("bae", False, None, "use-m3"),
     ("bert-attack", False, None, "use-m3"), ("a2t", False, None, "minilm"), ("a2t", False, "use-m3", "use-m3"),
     ("textfooler", False, "minilm", "minilm"), ("pwws", False, "use-m3", None), ("deepwordbug", False, None, None),
     ("textfooler", True, "use-m3", None)],
)
def test_the_encoder_is_recorded_only_where_a_recipe_uses_one(recipe, stock, requested, stored):
    made = spec(recipe=recipe, stock=stock, sentence_encoder=requested)
    assert made.sentence_encoder == stored
    legacy = RunSpec.from_dict({k: v for k, v in made.to_dict().items() if k != "sentence_encoder"})
    # a run without an encoder, or one on MiniLM, keeps the id it had before the choice existed
    assert (legacy.run_id == made.run_id) == (stored in (None, "minilm"))


def test_unknown_sentence_encoder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sentence encoder must be one of use-m3, minilm, got 'use-v4'"):
        spec(sentence_encoder="use-v4")
    path = tmp_path / "s.toml"
    base = '[suite]\nname="s"\ndataset="sst2"\nrecipes=["textfooler","pwws"]\nsettings=["full"]\n'
    path.write_text(base + 'sentence_encoder="minilm"\n[[models]]\nid="p"\n')
    runs = load_suite(path).run_specs({"p": "/p"})
    assert [(r.recipe, r.sentence_encoder) for r in runs] == [("textfooler", "minilm"), ("pwws", None)]
    path.write_text(base + '[[models]]\nid="p"\n')
    assert [r.sentence_encoder for r in load_suite(path).run_specs({"p": "/p"})] == ["use-m3", None]
    path.write_text(base + 'sentence_encoder="use"\n[[models]]\nid="p"\n')
    with pytest.raises(ValueError, match="s.toml: sentence encoder must be one of use-m3, minilm, got 'use'"):
        load_suite(path)


def test_threshold_settings_get_their_own_run_ids():
    ent, mp = spec(setting="entropy:0.35"), spec(setting="maxprob:0.9")
    assert ent.run_id.startswith("pabee-minilm-ent0-35_textfooler_sst2_")
    assert mp.run_id.startswith("pabee-minilm-mp0-9_textfooler_sst2_")
    assert ent.content_hash() != spec(setting="entropy:0.36").content_hash()


def test_old_spec_json_with_patience_reads_as_a_patience_setting():
    old = {"model_id": "m", "model_dir": "/m", "recipe": "pwws", "dataset": "sst2", "patience": 2, "run_id": "x"}
    assert RunSpec.from_dict(old).setting == "patience:2"
    assert RunSpec.from_dict({**old, "patience": None}).setting == "full"


def test_suite_expansion(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[suite]\nname="s"\ndataset="glue/sst2"\nrecipes=["deepwordbug","pwws"]\npatience=[1,"full"]\nn=5\n'
        '[[models]]\nid="p"\nhead="pabee"\n[[models]]\nid="b"\nhead="full"\n'
    )
    suite = load_suite(path)
    runs = suite.run_specs({"p": "/m/p", "b": "/m/b"})
    assert [(r.model_id, r.setting, r.recipe) for r in runs] == [
        ("p", "patience:1", "deepwordbug"), ("p", "patience:1", "pwws"), ("p", "full", "deepwordbug"),
        ("p", "full", "pwws"), ("b", "full", "deepwordbug"), ("b", "full", "pwws"),
    ]
    assert all(r.n == 5 for r in runs)
    assert suite.verdict == VerdictOptions()  # defaults: 1-point margin, n >= 100, no pre-registered setting


def test_suite_verdict_section(tmp_path):
    path = tmp_path / "s.toml"
    base = '[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n[[models]]\nid="a"\n'
    path.write_text(base + '[verdict]\nsetting = "patience:3"\nmargin = 0.02\nmin_n = 50\n')
    assert load_suite(path).verdict == VerdictOptions(margin=0.02, min_n=50, setting="patience:3")
    assert load_suite(path).verdict.equivalence_margin == 0.05  # the default delta: 5 points
    path.write_text(base + '[verdict]\nequivalence_margin = 0.03\n')
    assert load_suite(path).verdict.equivalence_margin == 0.03
    assert VerdictOptions(setting=3).setting == "patience:3" and VerdictOptions(setting="full").setting == "full"
    for bad, message in (("setting = 0", "patience must be"), ("margin = 2", "margin"), ("bogus = 1", "unknown"),
                         ("equivalence_margin = 0", "equivalence_margin"),
                         ('equivalence_margin = "5"', "equivalence_margin")):
        path.write_text(base + f"[verdict]\n{bad}\n")
        with pytest.raises(ValueError, match=f"s.toml.*{message}"):
            load_suite(path)


def test_suite_settings_list_and_per_model_override(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\nsettings=["patience:2","entropy:0.35","full"]\n'
        '[[models]]\nid="p"\n[[models]]\nid="q"\npatience=[3]\n[[models]]\nid="b"\nhead="full"\n'
    )
    runs = load_suite(path).run_specs({"p": "/p", "q": "/q", "b": "/b"})
    assert [(r.model_id, r.setting) for r in runs] == [
        ("p", "patience:2"), ("p", "entropy:0.35"), ("p", "full"), ("q", "patience:3"), ("b", "full")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[suite]\nname="s"\ndataset="d"\n', "needs 'recipes'"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=[]\nbogus=1\n', "unknown \\[suite\\] keys"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n', "no \\[\\[models\\]\\]"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n[[models]]\nid="a"\nhead="x"\n', "head must be"),
        ('[suite\n', "invalid TOML"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\nsettings=["x:1"]\n[[models]]\nid="a"\n',
         "a setting must be"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\nsettings=[1]\npatience=[1]\n[[models]]\nid="a"\n',
         "either 'settings' or 'patience'"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n[[models]]\nid="a"\nsettings="full"\n', "must be a list"),
    ],
)
def test_suite_errors(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_suite(path)


def test_goal_fields_keep_accuracy_run_ids_and_name_slowdown_runs():
    assert spec(goal="accuracy").run_id == spec().run_id  # accuracy is the default and hashes as before
    slow = spec(goal="slowdown")
    assert "_textfooler-slowdown_sst2_" in slow.run_id and slow.run_id != spec().run_id
    assert spec(goal="slowdown", goal_target=5).run_id != slow.run_id
    assert spec(goal="slowdown", keep_prediction=True).run_id != slow.run_id
    assert RunSpec.from_dict(slow.to_dict()) == slow
    for bad, message in ((dict(goal="speed"), "goal must be one of"), (dict(goal_target=3), "only to the slowdown"),
                         (dict(goal="slowdown", goal_target=0), "goal_target must be")):
        with pytest.raises(ValueError, match=message):
            spec(**bad)


def test_suite_goals_make_slowdown_runs_for_early_exit_settings_only(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\nsettings=["patience:2","full"]\n'
        'goals=["accuracy","slowdown"]\ngoal_target=5\n[[models]]\nid="p"\n[[models]]\nid="b"\nhead="full"\n'
    )
    runs = load_suite(path).run_specs({"p": "/p", "b": "/b"})
    assert [(r.model_id, r.setting, r.goal, r.goal_target) for r in runs] == [
        ("p", "patience:2", "accuracy", None), ("p", "patience:2", "slowdown", 5), ("p", "full", "accuracy", None),
        ("b", "full", "accuracy", None)]
    path.write_text('[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\ngoals=["speed"]\n[[models]]\nid="p"\n')
    with pytest.raises(ValueError, match="s.toml: goal must be one of"):
        load_suite(path)


def test_slowdown_score_leaves_exit_run_ids_unchanged_and_names_other_scores():
    # run ids made before slowdown scores existed (pinned from that code; MiniLM, the only sentence encoder then):
    # an exit-guided run keeps its id
    old = RunSpec(model_id="pabee-minilm", model_dir="/m", recipe="textfooler", dataset="glue/sst2",
                  setting="patience:2", goal="slowdown", sentence_encoder="minilm")
    assert old.run_id == "pabee-minilm-p2_textfooler-slowdown_sst2_78586d"
    assert RunSpec(model_id="pabee-minilm", model_dir="/m", recipe="textfooler", dataset="glue/sst2",
                   setting="entropy:0.35", goal="slowdown", goal_target=5, keep_prediction=True,
                   slowdown_score="exit", sentence_encoder="minilm",
                   ).run_id == "pabee-minilm-ent0-35_textfooler-slowdown_sst2_1ff0e3"
    assert spec(sentence_encoder="minilm").run_id == "pabee-minilm-p3_textfooler_sst2_e44a1c"  # accuracy runs
    # a spec.json written before the field reads as exit
    written = {k: v for k, v in old.to_dict().items() if k != "slowdown_score"}
    assert RunSpec.from_dict(written) == old and RunSpec.from_dict(written).slowdown_score == "exit"
    waffle, oavg = spec(goal="slowdown", slowdown_score="waffle"), spec(goal="slowdown", slowdown_score="oavg")
    assert "_textfooler-slowdown-waffle_sst2_" in waffle.run_id and "_textfooler-slowdown-oavg_sst2_" in oavg.run_id
    assert RunSpec(model_id="pabee-minilm", model_dir="/m", recipe="textfooler", dataset="glue/sst2",  # the docstring's
                   setting="patience:2", goal="slowdown", slowdown_score="waffle",
                   sentence_encoder="minilm").run_id.endswith("waffle_sst2_5ce146")
    assert len({waffle.content_hash(), oavg.content_hash(), spec(goal="slowdown").content_hash()}) == 3
    assert RunSpec.from_dict(waffle.to_dict()) == waffle
    for bad, message in ((dict(slowdown_score="waffle"), "only to the slowdown goal"),
                         (dict(goal="slowdown", slowdown_score="uniform"), "slowdown score must be one of")):
        with pytest.raises(ValueError, match=message):
            spec(**bad)


def test_suite_slowdown_score_makes_one_slowdown_run_per_score(tmp_path):
    path = tmp_path / "s.toml"
    base = '[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\nsettings=["patience:2"]\n'
    path.write_text(base + 'goals=["accuracy","slowdown"]\nslowdown_score=["exit","waffle"]\n[[models]]\nid="p"\n')
    runs = load_suite(path).run_specs({"p": "/p"})
    assert [(r.goal, r.slowdown_score) for r in runs] == [("accuracy", "exit"), ("slowdown", "exit"),
                                                          ("slowdown", "waffle")]
    path.write_text(base + 'goals=["slowdown"]\nslowdown_score="oavg"\n[[models]]\nid="p"\n')
    assert [r.slowdown_score for r in load_suite(path).run_specs({"p": "/p"})] == ["oavg"]
    for bad, message in (('goals=["slowdown"]\nslowdown_score=["fast"]', "slowdown score must be one of"),
                         ('goals=["slowdown"]\nslowdown_score=3', "slowdown_score must be a score name"),
                         ('goals=["slowdown"]\nslowdown_score=[]', "slowdown_score must be a score name"),
                         ('slowdown_score="waffle"', "applies only to slowdown runs")):
        path.write_text(base + bad + '\n[[models]]\nid="p"\n')
        with pytest.raises(ValueError, match=f"s.toml: .*{message}"):
            load_suite(path)


def test_calibrated_settings_resolve_from_the_models_calibration(tmp_path):
    import json

    path = tmp_path / "s.toml"
    path.write_text('[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\nsettings=["patience:2"]\n'
                    '[[models]]\nid="p"\ncalibrated=["entropy@patience:2", "maxprob@1.5"]\n')
    suite = load_suite(path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(ValueError, match="has no entropy@patience:2; run robustness evaluate .* --match-patience"):
        suite.run_specs({"p": str(model_dir)})
    (model_dir / "calibration.json").write_text(json.dumps({
        "entropy@patience:2": {"setting": "entropy:0.3"}, "maxprob@1.5": {"setting": "maxprob:0.8"}}))
    runs = suite.run_specs({"p": str(model_dir)})
    assert [r.setting for r in runs] == ["patience:2", "entropy:0.3", "maxprob:0.8"]
    path.write_text('[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\n[[models]]\nid="p"\ncalibrated=["x@2"]\n')
    with pytest.raises(ValueError, match="entropy@patience:2 or maxprob@1.86"):
        load_suite(path)


def test_suite_transfers_expand_to_every_source_run_and_target_setting(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws","deepwordbug"]\nsettings=["patience:2","patience:5"]\n'
        'transfers=[["b@full","p@*"],["p@patience:2","p@patience:5"]]\n'
        '[[models]]\nid="p"\n[[models]]\nid="b"\nhead="full"\n')
    specs = load_suite(path).transfer_specs({"p": "/p", "b": "/b"}, tmp_path / "runs")
    pairs = [(Path(t.source_run).name.split("_")[0], t.model_id, t.setting) for t in specs]
    assert pairs == [("b-pfull", "p", "patience:2"), ("b-pfull", "p", "patience:5")] * 2 + [
        ("p-p2", "p", "patience:5")] * 2  # per recipe
    assert all(Path(t.source_run).parent == tmp_path / "runs" for t in specs)
    path.write_text('[suite]\nname="s"\ndataset="sst2"\nrecipes=["pwws"]\ntransfers=[["x@full","p@*"]]\n'
                    '[[models]]\nid="p"\n')
    with pytest.raises(ValueError, match="s.toml: transfer selector 'x@full' must be MODEL@SETTING"):
        load_suite(path)


def test_suite_resource_and_quality_keys(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[suite]\nname = "s"\ndataset = "glue/sst2"\nrecipes = ["pwws"]\nresources = "../shared"\n'
                    'lexicons = "lex"\nquality = true\nlm = "lm-dir"\n[[models]]\nid = "m"\npath = "m"\n')
    suite = load_suite(path)
    assert (suite.resources, suite.lexicons, suite.quality, suite.lm) == ("../shared", "lex", True, "lm-dir")
