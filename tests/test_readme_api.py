"""The README's "Python API" example runs as written (with the tiny model and the shared bundle), uses the façade
(``import robustness as rb``) only, and its library calls print nothing: all the output is the example's own two
prints."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", ROOT.parent / "shared"))


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_example_names_its_inputs() -> None:
    code = readme_example()
    for name in ("model_dir", "shared", "out"):
        assert re.search(rf"^{name} = ", code, flags=re.M), name
    assert "import robustness as rb" in code and "from robustness" not in code


@pytest.mark.skipif(not (SHARED / "nltk_data").is_dir(), reason="shared resources absent")
def test_readme_example_runs_and_library_calls_print_nothing(tiny_pabee_dir, tmp_path, capfd, monkeypatch) -> None:
    code = readme_example()
    code = re.sub(r"^model_dir = .*$", f"model_dir = {str(tiny_pabee_dir)!r}", code, flags=re.M)
    code = re.sub(r"^shared = .*$", f"shared = Path({str(SHARED)!r})", code, flags=re.M)
    code = re.sub(r"^out = .*$", f"out = Path({str(tmp_path / 'api')!r})", code, flags=re.M)
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    namespace: dict = {}
    exec(compile(code, "README.md#python-api", "exec"), namespace)
    out, err = capfd.readouterr()
    assert err == ""
    printed = out.splitlines()
    assert printed[0].split() == ["setting", "accuracy", "layer_speedup"]
    assert "attack_success_rate" in out and "patience:1" in out and "deepwordbug" in out
    assert namespace["report_md"].is_file() and namespace["report_html"].is_file()
    assert len(namespace["summary"]) == 1 and namespace["summary"]["n"].iloc[0] == 4
    run, replay = namespace["run"], namespace["replay"]
    assert run.complete and run.setting == "patience:1" and len(run.records) == 4
    assert replay.spec["kind"] == "transfer" and replay.spec["source_run_id"] == run.run_id
    assert replay.setting == "full" and len(replay.records) == 4
