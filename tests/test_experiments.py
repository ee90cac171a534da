"""The experiment scripts' own logic: the side-by-side summary and its statistics, and what happens
when one run of a comparison fails (the others go on; the failure is recorded, not reused)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))

import compare  # noqa: E402


def test_confidence_interval_is_student_t_over_seeds():
    per_seed = np.array([[1.0, 10.0], [2.0, 12.0], [3.0, 14.0]])
    mean, half = compare.confidence_interval(per_seed)
    np.testing.assert_allclose(mean, [2.0, 12.0])
    # t_{0.975, 2} = 4.302653; sd = 1 and 2; n = 3
    np.testing.assert_allclose(half, 4.302653 * np.array([1.0, 2.0]) / np.sqrt(3), rtol=1e-6)
    one_mean, one_half = compare.confidence_interval(per_seed[:1])
    np.testing.assert_allclose(one_mean, per_seed[0])
    np.testing.assert_array_equal(one_half, 0.0)


def _record(algo: str, seed: int, mean: list[float], success=None) -> dict:
    evaluation = {"axis": "step", "num_tasks": 4, "mean": mean, "stderr": [0.0] * len(mean)}
    if success is not None:
        evaluation["extras"] = {"success": success}
    return {"algo": algo, "seed": seed, "wall_s": 10.0 + seed, "command": f"python -m jmeta.train --algo {algo}",
            "config": {"env_variant": "default", "eval_env_set": []}, "eval": evaluation}


def test_summary_tables_and_plots_come_from_the_records(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "RESULTS", str(tmp_path))
    records = {
        "maml": [_record("maml", 0, [-3.0, -1.0], [[0.0, 1.0], [0.0, 0.0]]),
                 _record("maml", 1, [-5.0, -3.0], [[0.0, 1.0], [1.0, 1.0]])],
        "reptile": [_record("reptile", 0, [-4.0, -2.0], [[0.0, 0.0], [0.0, 0.0]])],
    }
    lines = compare.summarize(records, "point_nav", "point_nav_test")
    summary = json.loads((tmp_path / "compare_point_nav_test.json").read_text())
    maml = summary["algorithms"]["maml"]
    assert maml["mean"] == [-4.0, -2.0] and maml["seeds"] == [0, 1]
    assert maml["success_mean"] == [0.25, 0.75]  # per seed: mean over tasks, then over seeds
    assert summary["algorithms"]["reptile"]["ci95"] == [0.0, 0.0]
    assert "| reptile | 1 | -4.00 ± 0.00 | -2.00 ± 0.00 | 10 s |" in lines
    assert (tmp_path / "compare_point_nav_test_adaptation.png").stat().st_size > 0
    assert (tmp_path / "compare_point_nav_test_success.png").stat().st_size > 0


def test_a_failed_run_is_recorded_apart_and_the_comparison_goes_on(tmp_path, monkeypatch, capsys):
    bad_algo = "no_such_algo"  # jmeta.train refuses it with exit code 2
    monkeypatch.setattr(compare, "RESULTS", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["compare.py", "--env", "point_nav", "--algos", bad_algo, "--seeds", "0",
                                      "--logdir", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match=f"did not finish: {bad_algo} seed 0"):
        compare.main()
    store = tmp_path / "compare" / "point_nav"
    failed = json.loads((store / f"{bad_algo}_seed0.failed.json").read_text())
    assert failed["failed"] == "exit code 2" and "eval" not in failed
    assert not (store / f"{bad_algo}_seed0.json").exists()  # not reused: the next invocation runs it again
    assert "FAILED" in capsys.readouterr().out


def test_labelled_entries_run_an_algorithm_with_flags_of_their_own():
    assert compare.parse_entry("maml") == ("maml", ("maml", []))
    assert compare.parse_entry("sac=pearl --pearl.no-use-context") == ("sac", ("pearl", ["--pearl.no-use-context"]))


def test_an_unfinished_run_is_resumed_and_its_wall_clock_summed(tmp_path, monkeypatch):
    """A grid run cut off at the end of a session (a checkpoint, no final eval.json) is continued with
    ``--resume`` by the next invocation, under its original command; the wall-clock of the killed
    attempt counts until its last metrics write. Finished runs, runs without a checkpoint and
    checkpoints without their run's config.json are not resumed."""
    import _runs

    logdir = tmp_path / "runs"
    old = logdir / "cheetah_dir_fig5__maml__seed0__20261207-233122"
    (old / "checkpoints" / "35").mkdir(parents=True)
    (old / "config.json").write_text("{}")
    (old / "metrics.jsonl").write_text("{}\n")
    os.utime(old / "metrics.jsonl", (1000.0 + 600, 1000.0 + 600))
    first = "python -m jmeta.train --algo maml --env cheetah_dir --seed 0"
    (old / _runs.WALL_FILE).write_text(json.dumps({"attempts": [{"command": first, "started": 1000.0, "ended": None}]}))
    finished = logdir / "cheetah_dir_fig5__maml__seed1__20261207-233122"
    (finished / "checkpoints" / "100").mkdir(parents=True)
    (finished / "eval.json").write_text("{}")
    (logdir / "cheetah_dir_fig5__maml__seed2__20261207-233122").mkdir()  # killed before its first save
    leftover = logdir / "cheetah_dir_fig5__maml__seed3__20261207-233122"  # files removed, a late async save
    (leftover / "checkpoints" / "35").mkdir(parents=True)
    assert _runs.unfinished_run(str(logdir), "cheetah_dir_fig5__maml__seed0") == str(old)
    assert _runs.unfinished_run(str(logdir), "cheetah_dir_fig5__maml__seed1") is None
    assert _runs.unfinished_run(str(logdir), "cheetah_dir_fig5__maml__seed2") is None
    assert _runs.unfinished_run(str(logdir), "cheetah_dir_fig5__maml__seed3") is None
    assert _runs.unfinished_run(str(tmp_path / "missing"), "x") is None

    ran = []

    class Done:
        returncode = 0

    def fake_run(command, check):
        ran.append(command)
        return Done()

    monkeypatch.setattr(_runs.subprocess, "run", fake_run)
    monkeypatch.setattr(_runs.time, "time", iter([5000.0, 5100.0]).__next__)
    run = _runs.train("maml", "cheetah_dir", 0, "cheetah_dir_fig5__maml__seed0__20261208-090000", str(logdir), [])
    assert ran[0][-3:] == ["--resume", str(old), "--no-progress"]
    assert run["run_dir"] == str(old) and run["command"] == first and run["attempts"] == 2
    assert run["wall_s"] == 600.0 + 100.0


def test_inner_step_size_entries_parse_and_refuse_bad_flags():
    import inner_step_size

    assert inner_step_size.parse_entry("maml") == ("maml", "maml", {})
    assert inner_step_size.parse_entry("cavia50=cavia --cavia.num-context-params 50 --cavia.inner-lr 1.0") == (
        "cavia50", "cavia", {"num_context_params": 50, "inner_lr": 1.0})
    with pytest.raises(SystemExit, match="pairs"):
        inner_step_size.parse_entry("c=cavia --cavia.inner-lr")
    with pytest.raises(SystemExit, match="is not a --cavia.FIELD flag"):
        inner_step_size.parse_entry("c=cavia --maml.inner-lr 1")


def test_fig5_table_and_figure_come_from_the_records(tmp_path, monkeypatch):
    """One finished seed: the interval is the seed's s.e. over held-out tasks; the target is met only
    when every step 1-3 is within two of the paper's standard errors or above."""
    import fig5

    monkeypatch.setattr(compare, "RESULTS", str(tmp_path))
    monkeypatch.setattr(fig5, "FIGURES", str(tmp_path / "img"))
    monkeypatch.setattr(fig5, "TABLE", str(tmp_path / "fig5.md"))
    store = tmp_path / "compare" / "cheetah_dir_fig5"
    store.mkdir(parents=True)
    per_task = [[-50.0, 290.0, 310.0, 312.0], [-52.0, 300.0, 318.0, 320.0]]
    record = {"seed": 0, "wall_s": 3600.0, "command": "python -m jmeta.train --algo maml --env cheetah_dir --seed 0",
              "eval": {"axis": "step", "mean": list(np.mean(per_task, axis=0)), "per_task": per_task}}
    (store / "maml_seed0.json").write_text(json.dumps(record))
    records = fig5.seed_records("cheetah_dir_fig5")
    mean, half, label = fig5.ours(records)
    np.testing.assert_allclose(half, np.std(per_task, axis=0, ddof=1) / np.sqrt(2))
    assert "1 seed" in label
    _, paper_mean, paper_se, _, _ = fig5.PAPER["cheetah_dir_fig5"]
    assert fig5.target_met(mean, paper_mean, paper_se)
    assert not fig5.target_met(mean - np.array([0.0, 0.0, 0.0, 20.0]), paper_mean, paper_se)
    assert os.path.getsize(fig5.figure("cheetah_dir_fig5", records)) > 0
    lines = fig5.table([("cheetah_dir_fig5", records)])
    assert any("| cheetah forward/back | 1 | 1 | 293.2 ± 8.7 | 295.0 ± 5.0 | +0.2 | 60 min |" == line for line in lines)
    assert any(line.endswith("| target | | met | | |") for line in lines)


def test_fig5_splits_forward_back_runs_by_direction():
    """Each forward/back seed gets one row per direction, averaging exactly that direction's held-out tasks."""
    import fig5

    sign = fig5.held_out_directions(40)
    assert set(np.unique(sign)) == {-1.0, 1.0}
    per_task = np.where(sign[:, None] > 0, 100.0, -50.0) + np.arange(4.0)[None, :]  # [40, 4]
    record = {"seed": 3, "eval": {"per_task": per_task.tolist()}}
    lines = fig5.direction_table([("cheetah_dir_fig5", [record]), ("cheetah_vel_fig5", [record])])
    rows = [line for line in lines if line.startswith("| cheetah forward/back | 3 |")]
    assert rows == [f"| cheetah forward/back | 3 | forward | {int((sign > 0).sum())} | 100.0 | 101.0 | 102.0 | 103.0 |",
                    f"| cheetah forward/back | 3 | backward | {int((sign < 0).sum())} | -50.0 | -49.0 | -48.0 | -47.0 |"]
    assert not any("velocity" in line for line in lines)  # only the forward/back entries are split
