"""The results grid (experiments/grid.py) and its statistics (jmeta.stats): the confidence
intervals, the IQM and its stratified bootstrap against hand-computed values, the refusal of malformed
records, and the README block being what the generator writes from the repository's records."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))

import grid  # noqa: E402

from jmeta import stats as _stats  # noqa: E402


def test_ci_is_student_t_over_seeds():
    mean, half = _stats.mean_ci95(np.array([[1.0, 10.0], [2.0, 12.0], [3.0, 14.0]]))
    np.testing.assert_allclose(mean, [2.0, 12.0])
    # n = 3: t_{0.975, 2} = 4.302653, sd = 1 and 2 -> 4.302653 / sqrt(3) = 2.484138 and twice that
    np.testing.assert_allclose(half, [2.484138, 4.968276], rtol=1e-6)
    _, half_two = _stats.mean_ci95(np.array([0.0, 2.0]))  # n = 2: t = 12.706205, sd = sqrt(2)
    np.testing.assert_allclose(half_two, 12.706205, rtol=1e-6)


def test_one_seed_has_no_ci():
    mean, half = _stats.mean_ci95(np.array([[-57.5, -36.0]]))
    np.testing.assert_array_equal(mean, [-57.5, -36.0])
    assert half is None
    text = grid.fmt_mean_ci({"mean": -57.5, "ci95": None}, 2)
    assert text == "-57.50 (1 seed, no CI)" and "±" not in text


def test_iqm_by_hand():
    # 8 scores: the 2 lowest and 2 highest are cut, the mean of 3, 4, 5, 6 is 4.5 (the outlier is ignored)
    assert _stats.iqm(np.array([7.0, 1.0, 100.0, 3.0, 2.0, 6.0, 4.0, 5.0])) == pytest.approx(4.5)
    # 5 scores: floor(5 / 4) = 1 cut at each end -> mean of 2, 3, 4
    assert _stats.iqm(np.array([1.0, 2.0, 3.0, 4.0, 1000.0])) == pytest.approx(3.0)
    # a [seeds, tasks] matrix is pooled: 2 x 4 = the 8 scores above
    assert _stats.iqm(np.array([[7.0, 1.0, 100.0, 3.0], [2.0, 6.0, 4.0, 5.0]])) == pytest.approx(4.5)


def test_bootstrap_ci_contains_the_iqm_and_is_deterministic():
    scores = np.random.default_rng(1).normal(size=(5, 12))  # [seeds, tasks]
    lower, upper = _stats.stratified_bootstrap_ci(scores)
    assert lower < _stats.iqm(scores) < upper
    assert _stats.stratified_bootstrap_ci(scores) == (lower, upper)  # fixed RNG seed
    assert _stats.stratified_bootstrap_ci(scores, seed=1) != (lower, upper)
    # stratified: seeds are resampled within each task, so tasks that agree across seeds leave no spread
    same_per_task = np.tile(np.arange(12.0), (5, 1))
    assert _stats.stratified_bootstrap_ci(same_per_task) == pytest.approx((5.5, 5.5))


def test_iqm_needs_five_seeds():
    assert _stats.iqm_with_ci(np.ones((4, 3))) is None
    assert grid.fmt_iqm({"iqm": None}, 2) == "n < 5"
    out = _stats.iqm_with_ci(np.arange(15.0).reshape(5, 3))
    assert out["iqm"] == pytest.approx(7.0) and out["ci95"][0] <= 7.0 <= out["ci95"][1]


def _record(seed: int, mean: list[float]) -> dict:
    return {"algo": "maml", "seed": seed, "wall_s": 10.0, "command": f"python -m jmeta.train --algo maml --seed {seed}",
            "eval": {"axis": "step", "num_tasks": 2, "mean": mean, "stderr": [0.0] * len(mean),
                     "per_task": [[m - 1.0 for m in mean], [m + 1.0 for m in mean]]}}


def test_malformed_records_are_refused_naming_the_file(tmp_path):
    bad = tmp_path / "maml_seed0.json"
    for content, problem in [
        ({**_record(0, [1.0, 2.0]), "eval": {"axis": "step", "mean": [1.0, "x"]}}, "eval.mean must be"),
        ({k: v for k, v in _record(0, [1.0]).items() if k != "eval"}, "missing 'eval'"),
        ({**_record(0, [1.0, 2.0]), "eval": {**_record(0, [1.0, 2.0])["eval"], "per_task": [[1.0]]}},
         "eval.per_task must be [tasks, 2]"),
    ]:
        bad.write_text(json.dumps(content))
        with pytest.raises(grid.RecordError) as error:
            grid.read_records(str(bad))
        assert str(bad) in str(error.value) and problem in str(error.value) and "\n" not in str(error.value)
    bad.write_text("{not json")
    with pytest.raises(grid.RecordError, match="not valid JSON"):
        grid.read_records(str(bad))


def test_summary_of_five_seeds_has_ci_and_iqm(tmp_path):
    records = []
    for seed in range(5):
        path = tmp_path / f"maml_seed{seed}.json"
        path.write_text(json.dumps(_record(seed, [float(seed), 10.0 + seed])))
        records += grid.read_records(str(path))
    summary = grid.summarize_algorithm(records, "maml")
    before, after = summary["return"]["before"], summary["return"]["after"]
    assert before["mean"] == pytest.approx(2.0) and after["mean"] == pytest.approx(12.0)
    # sd of 0..4 = sqrt(2.5), t_{0.975, 4} = 2.776445
    assert after["ci95"] == pytest.approx(round(2.776445 * np.sqrt(2.5) / np.sqrt(5), 3))
    # 10 pooled scores (per task: mean -/+ 1): 9..13 and 11..15; cut 2 at each end -> mean of 11, 11, 12, 12, 13, 13
    assert after["iqm"]["iqm"] == pytest.approx(12.0)
    assert summary["n"] == 5 and summary["last"] == 1 and "success" not in summary


def test_a_gpu_entry_without_records_is_listed_with_its_command():
    entry = grid.Comparison("visual_nav_nothing_here", "visual_nav", ("dream",), (0,), ("--meta-iters", "7"),
                            "a test budget", needs_gpu=True)
    summary = grid.summarize_entry(entry)
    assert summary["status"] == "not yet run (needs a GPU)" and not summary["algorithms"]
    text = grid.env_markdown("visual_nav", [summary])
    assert "not yet run (needs a GPU)" in text
    assert ("python experiments/compare.py --env visual_nav --algos dream --seeds 0 --tag nothing_here -- "
            "--meta-iters 7") in text
    assert "python -m jmeta.train --algo dream --env visual_nav --seed 0" in text


def test_records_from_two_env_definitions_are_flagged(monkeypatch):
    """Seeds run before and after an env's definition changed (its version) must not be pooled silently."""
    entry = grid.Comparison("cheetah_dir_versions", "cheetah_dir", ("maml",), (0, 1), (), "a test budget")
    old = {**_record(0, [1.0, 2.0]), "source": "a.json"}  # before env ids were recorded
    new = {**_record(1, [1.0, 3.0]), "source": "b.json", "env_id": "cheetah_dir/default-v2"}
    monkeypatch.setattr(grid, "entry_records", lambda e, rerun=False: ({"maml": [old, new]}, []))
    summary = grid.summarize_entry(entry)
    assert summary["algorithms"]["maml"]["env_ids"] == ["cheetah_dir/default-v2", grid.ENV_ID_UNRECORDED]
    text = grid.env_markdown("cheetah_dir", [summary])
    assert "Warning: the records span env definitions" in text and "`cheetah_dir/default-v2`" in text
    monkeypatch.setattr(grid, "entry_records", lambda e, rerun=False: ({"maml": [{**old, "env_id": new["env_id"]},
                                                                                  new]}, []))
    same = grid.summarize_entry(entry)
    assert not same["env_notes"] and "Env: `cheetah_dir/default-v2`." in grid.env_markdown("cheetah_dir", [same])


def test_declared_output_flags_are_not_reported_as_differences(monkeypatch):
    entry = grid.Comparison("cheetah_dir_quiet", "cheetah_dir", ("maml",), (0,), ("--no-report", "--meta-iters", "5"),
                            "a test budget")
    record = {**_record(0, [1.0, 2.0]), "source": "a.json",
              "command": "python -m jmeta.train --algo maml --seed 0 --no-progress --no-report --meta-iters 5"}
    monkeypatch.setattr(grid, "entry_records", lambda e, rerun=False: ({"maml": [record]}, []))
    assert grid.summarize_entry(entry)["flag_notes"] == []
    record["command"] = record["command"].replace("5", "6")
    assert "--meta-iters 6" in grid.summarize_entry(entry)["flag_notes"][0]


def test_recorded_flags_drop_the_run_identity():
    command = ("python -m jmeta.train --algo pearl --env point_nav --seed 0 --logdir runs/compare --run-name x "
               "--no-progress --env-variant pearl_sparse --pearl.no-use-context")
    assert grid.recorded_flags(command) == ["--env-variant", "pearl_sparse", "--pearl.no-use-context"]


def test_the_grid_covers_every_registered_algorithm():
    from jmeta.algos import list_algorithms

    algos = {algo for entry in grid.GRID for algo, _ in grid.parse_algos(entry).values()}
    assert set(list_algorithms()) <= algos
    assert len({entry.stem for entry in grid.GRID}) == len(grid.GRID)


def test_the_readme_block_is_what_the_grid_writes():
    with open(grid.README, encoding="utf-8") as f:
        text = f.read()
    start, end = grid.readme_section(text)
    expected = grid.readme_block(grid.summarize_grid()) + "\n"
    assert text[start:end] == expected, "README.md is stale: run python experiments/grid.py --summarize-only --readme"


def test_only_missing_runs_are_started_and_cached_ones_are_reused(tmp_path, monkeypatch):
    compare = grid.compare
    monkeypatch.setattr(compare, "RESULTS", str(tmp_path))
    entry = grid.Comparison("point_nav_cache", "point_nav", ("maml", "sac=pearl --pearl.no-use-context"), (0, 1),
                            ("--meta-iters", "1"), "a test budget")
    cached = tmp_path / "compare" / "point_nav_cache" / "maml_seed0.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps(_record(0, [1.0, 2.0])))
    started = []

    def fake_run_one(algo, env, seed, stem, logdir, extra, label=None):
        started.append((algo, seed, extra))
        return {**_record(seed, [0.0, 1.0]), "algo": algo, "run_dir": "x", "config": {}}

    monkeypatch.setattr(compare, "run_one", fake_run_one)
    monkeypatch.setattr(compare, "summarize", lambda records, env, stem: [])
    assert grid.run_missing(entry, rerun=False, logdir=str(tmp_path / "runs")) == []
    assert started == [("pearl", 0, ["--meta-iters", "1", "--pearl.no-use-context"]),
                       ("maml", 1, ["--meta-iters", "1"]), ("pearl", 1, ["--meta-iters", "1", "--pearl.no-use-context"])]
    assert grid.entry_records(entry)[1] == []  # all four stored now
    started.clear()
    grid.run_missing(entry, rerun=False, logdir=str(tmp_path / "runs"))
    assert started == []
    grid.run_missing(entry, rerun=True, logdir=str(tmp_path / "runs"))
    assert len(started) == 4
