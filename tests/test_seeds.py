"""Many seeds in one program (``--num-seeds``): each seed of a many-seed run trains exactly what the
one-seed run with that seed trains; the run's logs are the means over seeds with 95% intervals."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
import pytest
from scipy import stats

from _tiny import tiny_config
from jmeta import trainer
from jmeta.errors import ConfigError, NonFiniteError
from jmeta.logging import read_metrics
from test_trainer import _NaNAfter


def _curves(path: str) -> list[dict]:
    return [r for r in read_metrics(path) if r["kind"] in ("train", "eval")]


def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_each_seed_trains_what_its_one_seed_run_trains(tmp_path):
    many = trainer.train(tiny_config(str(tmp_path), run_name="many", seed=3, num_seeds=2, meta_iters=2, plots=True))
    one = trainer.train(tiny_config(str(tmp_path), run_name="one", seed=4, meta_iters=2))

    per_seed = {s: _curves(os.path.join(many.run_dir, "seeds", f"seed_{s}", "metrics.jsonl")) for s in (3, 4)}
    reference = _curves(os.path.join(one.run_dir, "metrics.jsonl"))
    assert len(per_seed[4]) == len(reference) == 4  # evaluations at 0 and 2, train records 1 and 2
    for a, b in zip(per_seed[4], reference, strict=True):
        for name in b:
            if name.startswith(("train/", "eval/")):
                assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-6), name

    # The run's own metrics are the means over seeds (and the evaluations carry a 95% CI over seeds).
    aggregate = _curves(os.path.join(many.run_dir, "metrics.jsonl"))
    for record, s3, s4 in zip(aggregate, per_seed[3], per_seed[4], strict=True):
        name = "train/return_post" if record["kind"] == "train" else "eval/return_step1"
        assert record[name] == pytest.approx((s3[name] + s4[name]) / 2)
        if record["kind"] == "eval":
            assert record["eval/return_step1_ci95"] == pytest.approx(
                stats.t.ppf(0.975, 1) * abs(s3[name] - s4[name]) / 2)  # sd of two values: |a - b| / sqrt(2)
    final = _read(os.path.join(many.run_dir, "eval.json"))
    seed_means = np.array(final["per_seed_mean"])  # [2, K + 1]
    assert final["seeds"] == [3, 4] and final["num_seeds"] == 2
    np.testing.assert_allclose(final["mean"], seed_means.mean(0))
    np.testing.assert_allclose(final["ci95"], stats.t.ppf(0.975, 1) * seed_means.std(0, ddof=1) / np.sqrt(2))
    np.testing.assert_allclose(seed_means[1], _read(os.path.join(one.run_dir, "eval.json"))["mean"], rtol=1e-4)
    assert os.path.exists(os.path.join(many.run_dir, "plots", "adaptation_curve.png"))

    # One checkpoint holds both seeds; restore_run picks one out.
    _, _, _, state = trainer.restore_run(many.run_dir, seed=4)
    for a, b in zip(jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(one.state.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match=r"^seed: .* trained seed\(s\) 3, 4, got 9$"):
        trainer.restore_run(many.run_dir, seed=9)
    with pytest.raises(ConfigError, match=r"^num_seeds: cannot change on resume \(2 in the run, 3 requested\)$"):
        trainer.train(dataclasses.replace(tiny_config(str(tmp_path), seed=3, num_seeds=3, meta_iters=4),
                                          resume=many.run_dir))


def test_bad_seed_counts_are_refused():
    with pytest.raises(ConfigError, match=r"^num_seeds: must be >= 1, got 0$"):
        tiny_config("x", num_seeds=0).validate()
    with pytest.raises(ConfigError, match=r"^num_seeds: seed \+ num_seeds - 1 must be < 2\*\*32"):
        tiny_config("x", seed=2**32 - 1, num_seeds=2).validate()


def test_a_nan_in_any_seed_stops_every_seed_at_the_last_good_iteration(tmp_path, monkeypatch):
    original_build = trainer.build
    monkeypatch.setattr(trainer, "build", lambda config, task_sharding=None: (
        lambda env, dist, algo: (env, dist, _NaNAfter(algo, at=2)))(*original_build(config, task_sharding)))
    config = tiny_config(str(tmp_path), run_name="nan", num_seeds=2, meta_iters=6, checkpoint_every=100)
    with pytest.raises(NonFiniteError, match=r"iteration 3 .*train/outer_loss, seed\(s\) 0, 1.*last good checkpoint "
                                             r"is iteration 2"):
        trainer.train(config)
    monkeypatch.setattr(trainer, "build", original_build)
    _, _, _, state = trainer.restore_run(os.path.join(str(tmp_path), "nan"), seed=1)
    assert int(state.iteration) == 2


@pytest.mark.extended
def test_a_many_seed_run_resumes_exactly(tmp_path):
    """Extended tier (three runs): stopped after 2 of 4 iterations and resumed, a 2-seed run writes
    the uninterrupted run's records, per seed and aggregated, to the bit."""
    full = trainer.train(tiny_config(str(tmp_path), run_name="full", num_seeds=2, meta_iters=4))
    part = trainer.train(tiny_config(str(tmp_path), run_name="part", num_seeds=2, meta_iters=4), stop_after=2)
    assert part.interrupted
    trainer.train(dataclasses.replace(tiny_config(str(tmp_path), num_seeds=2, meta_iters=4), resume=part.run_dir))

    def records(run_dir, *where):
        return [{k: v for k, v in r.items() if not k.startswith("perf")}
                for r in _curves(os.path.join(run_dir, *where, "metrics.jsonl"))]

    for where in [(), ("seeds", "seed_0"), ("seeds", "seed_1")]:
        assert records(part.run_dir, *where) == records(full.run_dir, *where)
