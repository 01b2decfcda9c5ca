"""``import robustness`` is light (no torch, no transformers) and still makes the PABEE model known to
transformers' auto classes, whatever is imported first: transformers before or after robustness, or one of the
modules that define the registered classes (which import transformers while half-imported themselves). Each
order runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
from robustness.models.config import PabeeConfig
from robustness.models.pabee import PabeeModel
assert type(AutoConfig.for_model("pabee")) is PabeeConfig
assert AutoModel._model_mapping[PabeeConfig] is PabeeModel
assert AutoModelForSequenceClassification._model_mapping[PabeeConfig] is PabeeModel
"""

ORDERS = {
    "robustness, then transformers": "import robustness\nimport transformers",
    "transformers, then robustness": "import transformers\nimport robustness",
    "the config module first": "from robustness.models.config import PabeeConfig",
    "the model module first": "from robustness.models.pabee import PabeeModel",
    "a module importing both first": "from robustness.models import train",
}


def test_importing_the_package_and_the_command_line_imports_neither_torch_nor_transformers() -> None:
    code = ("import sys, robustness, robustness.cli, robustness.commands\n"
            "heavy = {'torch', 'transformers', 'textattack', 'datasets', 'pandas', 'matplotlib', 'ray'}\n"
            "assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_the_auto_classes_know_pabee_whatever_is_imported_first() -> None:
    runs = {name: subprocess.Popen([sys.executable, "-c", first + "\n" + CHECK], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for name, first in ORDERS.items()}
    failed = {}
    for name, proc in runs.items():
        _, err = proc.communicate(timeout=300)
        if proc.returncode:
            failed[name] = err.strip().splitlines()[-1]
    assert not failed


@pytest.mark.parametrize("name", ["robustness.models.config", "robustness.models.pabee"])
def test_a_half_imported_defining_module_defers_registration(name, monkeypatch) -> None:
    import types

    from robustness.models import registry

    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))  # in sys.modules, its class not yet defined
    assert registry._half_imported()
    monkeypatch.undo()
    assert not registry._half_imported()
