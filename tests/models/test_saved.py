"""Reading a saved model without loading it: the facts equal the loaded config's, and the modules a driver
that attacks nothing runs (suite validation, planning, shard writing, the executors) import no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from robustness.models.pabee import PabeeConfig
from robustness.models.saved import ModelFacts, saved_facts


@pytest.mark.parametrize("which", ["tiny_pabee_dir", "tiny_full_dir"])
def test_facts_equal_the_loaded_config(which, request):
    path = request.getfixturevalue(which)
    config = PabeeConfig.from_pretrained(path)
    assert saved_facts(path) == ModelFacts(config.num_layers, config.head, tuple(config.label_names))


def test_legacy_and_layerless_configs_and_bad_ones(tiny_full_dir, tmp_path):
    config = PabeeConfig.from_pretrained(tiny_full_dir)
    shutil.copy(tiny_full_dir / "model.safetensors", tmp_path / "model.safetensors")
    legacy = {"format": "robustness-pabee", "format_version": 1, "backbone": config.backbone, "head": "full",
              "num_labels": 2, "label_names": ["neg", "pos"], "num_layers": 2}
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    assert saved_facts(tmp_path) == ModelFacts(2, "full", ("neg", "pos"))
    del legacy["num_layers"]  # older still: the backbone's own layer count
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    assert saved_facts(tmp_path).num_layers == config.backbone["num_hidden_layers"]
    (tmp_path / "config.json").write_text(json.dumps({"head": "full", "num_layers": "two"}))
    with pytest.raises(ValueError, match=r"config\.json: not a robustness model config"):
        saved_facts(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="half-saved"):
        saved_facts(tmp_path)


def test_a_driver_that_attacks_nothing_imports_no_torch():
    code = ("import sys\n"
            "import robustness.commands, robustness.suite.validate, robustness.suite.plan, robustness.suite.shards\n"
            "import robustness.suite.executors, robustness.suite.stages\n"
            "import robustness.models.train, robustness.models.saved\n"
            "print(sorted(m for m in ('torch', 'transformers', 'textattack', 'matplotlib') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"


def test_a_ray_driver_prepares_runs_without_torch(tiny_pabee_dir, tmp_path):
    """What ``bench --engine ray`` runs in the driver before the attacks: calibrations (none to make), the
    fingerprint, the run directories with their spec.json (facts read from config.json)."""
    suite = tmp_path / "tiny.toml"
    suite.write_text('[suite]\nname = "tiny"\ndataset = "glue/sst2"\nn = 2\nrecipes = ["deepwordbug"]\n'
                     f'patience = [1, "full"]\n\n[[models]]\nid = "tiny"\npath = "{tiny_pabee_dir}"\n')
    code = ("import json, sys\nfrom pathlib import Path\n"
            "from robustness.suite.stages import calibrate_thresholds\n"
            "from robustness.models.fingerprint import model_fingerprint\n"
            "from robustness.suite.shards import prepare_run\nfrom robustness.suite.suite_file import load_suite\n"
            "suite = load_suite(sys.argv[1])\ndirs = {m.id: m.path for m in suite.models}\n"
            "calibrate_thresholds(suite, dirs)\n"
            "for spec in suite.run_specs(dirs):\n"
            "    prepare_run(spec, Path(sys.argv[2]) / spec.run_id, 'test', model_fingerprint(spec.model_dir))\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'textattack') if m in sys.modules)))")
    found = subprocess.run([sys.executable, "-c", code, str(suite), str(tmp_path / "runs")], capture_output=True,
                           text=True, check=True).stdout
    assert json.loads(found) == []
    specs = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*/spec.json"))]
    config = PabeeConfig.from_pretrained(tiny_pabee_dir)
    assert sorted((s["setting"], s["num_layers"], s["head"], s["label_names"]) for s in specs) == [
        (setting, config.num_layers, config.head, config.label_names) for setting in ("full", "patience:1")]
