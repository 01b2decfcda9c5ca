"""Sharing TextAttack's model-independent work across the settings of a task leaves every record unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(os.environ.get("ROBUSTNESS_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
if not (SHARED / "lexicons").is_dir():
    pytest.skip(f"offline resources not found under {SHARED} (set ROBUSTNESS_SHARED)", allow_module_level=True)

SENTENCES = ["a gripping , beautifully acted and wonderful film", "dull , lifeless and boring movie",
             "an instant classic with great actors", "i have never been so bored in a cinema"]


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    from robustness.attack.recipes import Resources

    return Resources(nltk_data=str(SHARED / "nltk_data"), lexicons_dir=str(SHARED / "lexicons"),
                     cache_dir=str(tmp_path_factory.mktemp("cache")), max_words=2000, offline=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "sst2").mkdir()
    pd.DataFrame({"sentence": SENTENCES, "label": [1, 0, 1, 0], "idx": range(4)}).to_parquet(
        root / "sst2" / "validation.parquet")
    return root


def _task(recipe: str, model_dir: Path, data_dir: Path):
    from robustness.suite.plan import plan_tasks
    from robustness.suite.specs import RunSpec

    specs = [RunSpec(model_id="tp", model_dir=str(model_dir), recipe=recipe, dataset="glue/sst2", setting=s, n=4,
                     query_budget=30, batch_size=8, data_dir=str(data_dir))
             for s in ("patience:1", "entropy:0.5", "full")]
    (task,) = plan_tasks(specs, shard_size=4)
    return task


@pytest.mark.parametrize("recipe", ["textfooler", "pwws", "deepwordbug"])
def test_records_equal_with_and_without_shared_work(recipe, resources, data_dir, tiny_pabee_dir):
    from robustness.suite import work

    work.init_worker(resources)
    task = _task(recipe, tiny_pabee_dir, data_dir)
    shared = work.run_task(task, resources, share_work=True)
    attacks = [a for _, a in work._GROUP["attacks"].values()]
    assert len({id(a.constraints_cache) for a in attacks}) == 1  # one cache for every setting
    assert len({id(a.transformation) for a in attacks}) == 1
    alone = work.run_task(task, resources, share_work=False)
    assert len({id(a.constraints_cache) for _, a in work._GROUP["attacks"].values()}) == 3

    def strip(results):
        return [[{k: v for k, v in r.items() if k != "attack_time_s"} for r in res["records"]] for res in results]

    assert strip(shared) == strip(alone)
    assert any(r["result"] != "skipped" for res in shared for r in res["records"])


def test_examples_are_attacked_deepest_setting_first_with_the_records_of_runs_alone(
        resources, data_dir, tiny_pabee_dir, monkeypatch):
    from robustness.attack import runner
    from robustness.suite import work
    from robustness.suite.plan import plan_tasks

    work.init_worker(resources)
    task = _task("deepwordbug", tiny_pabee_dir, data_dir)
    calls, attack_example = [], runner.attack_example

    def spy(attack, wrapper, columns, text, label, ids, spec):
        calls.append((ids[0], spec.setting))
        return attack_example(attack, wrapper, columns, text, label, ids, spec)

    monkeypatch.setattr(runner, "attack_example", spy)
    work._GROUP.clear()
    swept = work.run_task(task, resources)
    assert calls == [(e, s) for e in range(4) for s in ("full", "entropy:0.5", "patience:1")]
    assert [r["run_id"] for r in swept] == [s.run_id for s in task.specs]  # results keep the plan's order

    def strip(result):
        return [{k: v for k, v in r.items() if k != "attack_time_s"} for r in result["records"]]

    for spec, result in zip(task.specs, swept, strict=True):
        work._GROUP.clear()  # a run alone: its own layer cache and TextAttack caches
        (alone,) = work.run_task(plan_tasks([spec], shard_size=4)[0], resources)
        assert strip(alone) == strip(result)
