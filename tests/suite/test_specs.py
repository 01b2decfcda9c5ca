from __future__ import annotations

import pytest

from robustness.suite.specs import RunSpec, VerdictOptions, load_suite, parse_patience


def test_parse_patience():
    assert parse_patience("full") is None and parse_patience(None) is None
    assert parse_patience("3") == 3 and parse_patience(2) == 2
    for bad in ("0", 0, -1, "x", 1.5, True, "2.0"):
        with pytest.raises(ValueError, match="patience must be"):
            parse_patience(bad)


def test_run_id_is_stable_and_ignores_locations():
    a = RunSpec(model_id="pabee-minilm", model_dir="/a", recipe="textfooler", dataset="glue/sst2", patience=3)
    b = RunSpec(model_id="pabee-minilm", model_dir="/b", recipe="textfooler", dataset="glue/sst2", patience=3,
                data_dir="/data")
    c = RunSpec(model_id="pabee-minilm", model_dir="/a", recipe="textfooler", dataset="glue/sst2", patience=4)
    assert a.run_id == b.run_id
    assert a.run_id != c.run_id
    assert a.run_id.startswith("pabee-minilm-p3_textfooler_sst2_")
    assert RunSpec.from_dict(a.to_dict()) == a


def test_suite_expansion(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[suite]\nname="s"\ndataset="glue/sst2"\nrecipes=["deepwordbug","pwws"]\npatience=[1,"full"]\nn=5\n'
        '[[models]]\nid="p"\nhead="pabee"\n[[models]]\nid="b"\nhead="full"\n'
    )
    suite = load_suite(path)
    runs = suite.run_specs({"p": "/m/p", "b": "/m/b"})
    assert [(r.model_id, r.patience, r.recipe) for r in runs] == [
        ("p", 1, "deepwordbug"), ("p", 1, "pwws"), ("p", None, "deepwordbug"), ("p", None, "pwws"),
        ("b", None, "deepwordbug"), ("b", None, "pwws"),
    ]
    assert all(r.n == 5 for r in runs)
    assert suite.verdict == VerdictOptions()  # defaults: 1-point margin, n >= 100, no pre-registered setting


def test_suite_verdict_section(tmp_path):
    path = tmp_path / "s.toml"
    base = '[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n[[models]]\nid="a"\n'
    path.write_text(base + '[verdict]\nsetting = "patience:3"\nmargin = 0.02\nmin_n = 50\n')
    assert load_suite(path).verdict == VerdictOptions(margin=0.02, min_n=50, setting="patience:3")
    assert VerdictOptions(setting=3).setting == "patience:3" and VerdictOptions(setting="full").setting == "full"
    for bad, message in (("setting = 0", "patience must be"), ("margin = 2", "margin"), ("bogus = 1", "unknown")):
        path.write_text(base + f"[verdict]\n{bad}\n")
        with pytest.raises(ValueError, match=f"s.toml.*{message}"):
            load_suite(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[suite]\nname="s"\ndataset="d"\n', "needs 'recipes'"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=[]\nbogus=1\n', "unknown \\[suite\\] keys"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n', "no \\[\\[models\\]\\]"),
        ('[suite]\nname="s"\ndataset="d"\nrecipes=["pwws"]\n[[models]]\nid="a"\nhead="x"\n', "head must be"),
        ('[suite\n', "invalid TOML"),
    ],
)
def test_suite_errors(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_suite(path)
