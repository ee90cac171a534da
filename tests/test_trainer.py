"""Trainer: resume equality, interrupts, NaN handling, checkpoints, compile stability."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _tiny import tiny_config
from jmeta import trainer
from jmeta.checkpoint import Checkpointer
from jmeta.errors import CheckpointError, ConfigError, NonFiniteError
from jmeta.logging import read_metrics


def _train_records(run_dir: str) -> list[dict]:
    records = read_metrics(os.path.join(run_dir, "metrics.jsonl"), "train")
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


def _eval_records(run_dir: str) -> list[dict]:
    records = read_metrics(os.path.join(run_dir, "metrics.jsonl"), "eval")
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in records]


# Resume equality (2 + 2 iterations equal 4) is checked for every algorithm in test_algorithm_contract.py.


def test_sigint_finishes_chunk_saves_and_resumes(tmp_path, monkeypatch):
    original_update = trainer.ProgressBar.update

    def update_then_interrupt(self, completed, status, eta_s=None):
        original_update(self, completed, status, eta_s)
        if completed == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer.ProgressBar, "update", update_then_interrupt)
    result = trainer.train(tiny_config(str(tmp_path), run_name="sig", meta_iters=6, checkpoint_every=100))
    assert result.interrupted and result.iteration == 2
    ckpt = Checkpointer(os.path.join(result.run_dir, "checkpoints"))
    assert ckpt.latest_step() == 2
    ckpt.close()
    monkeypatch.setattr(trainer.ProgressBar, "update", original_update)
    resumed = trainer.train(tiny_config(str(tmp_path), run_name="sig", meta_iters=6, checkpoint_every=100, resume=result.run_dir))
    assert resumed.iteration == 6 and not resumed.interrupted
    assert [r["iteration"] for r in _train_records(result.run_dir)] == list(range(1, 7))


@dataclasses.dataclass(frozen=True)
class _NaNAfter:
    """Wraps an algorithm so its loss turns NaN from iteration ``at`` on."""

    inner: object
    at: int

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def meta_step(self, state, key):
        new_state, metrics = self.inner.meta_step(state, key)
        metrics = dict(metrics)
        metrics["train/outer_loss"] = jnp.where(state.iteration >= self.at, jnp.nan, metrics["train/outer_loss"])
        return new_state, metrics


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    original_build = trainer.build

    def build_with_nan(config, task_sharding=None):
        env, dist, algo = original_build(config, task_sharding)
        return env, dist, _NaNAfter(algo, at=2)

    monkeypatch.setattr(trainer, "build", build_with_nan)
    config = tiny_config(str(tmp_path), run_name="nan", meta_iters=6, checkpoint_every=100)
    with pytest.raises(NonFiniteError, match=r"iteration 3 .*train/outer_loss.*last good checkpoint is iteration 2"):
        trainer.train(config)
    run_dir = os.path.join(str(tmp_path), "nan")
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
    assert ckpt.all_steps() == [2]
    ckpt.close()
    # The kept checkpoint is good: it restores and has finite parameters.
    monkeypatch.setattr(trainer, "build", original_build)
    _, _, _, state = trainer.restore_run(run_dir)
    assert int(state.iteration) == 2
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(state.params))


def test_mismatched_and_corrupt_checkpoints_are_refused(tmp_path):
    result = trainer.train(tiny_config(str(tmp_path), run_name="ok", meta_iters=2))
    # Mismatch: a different network cannot restore this checkpoint.
    other = tiny_config(str(tmp_path), algo_config=dataclasses.replace(tiny_config("x").algo_config, hidden_sizes=(8, 8)))
    _, _, algo = trainer.build(other)
    ckpt = Checkpointer(os.path.join(result.run_dir, "checkpoints"))
    abstract = jax.eval_shape(algo.init, jax.random.key(0))
    with pytest.raises(CheckpointError, match="does not match"):
        ckpt.restore(abstract)
    with pytest.raises(CheckpointError, match="algo_config"):
        ckpt.restore(abstract, expected_meta=trainer._checkpoint_identity(other))
    with pytest.raises(CheckpointError, match="no checkpoint for iteration 7"):
        ckpt.restore(abstract, step=7)
    ckpt.close()
    # Resume with a changed frozen field is refused before anything runs.
    with pytest.raises(ConfigError, match="meta_batch_size: cannot change on resume"):
        trainer.train(tiny_config(str(tmp_path), run_name="ok", meta_batch_size=5, resume=result.run_dir))
    # Corrupt: the state's data files are damaged.
    state_dir = os.path.join(result.run_dir, "checkpoints", "2", "state")
    for root, _, files in os.walk(state_dir):
        for name in files:
            if name not in ("_CHECKPOINT_METADATA",):
                with open(os.path.join(root, name), "wb") as f:
                    f.write(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        trainer.restore_run(result.run_dir)
    # Missing checkpoints entirely.
    shutil.rmtree(os.path.join(result.run_dir, "checkpoints"))
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        trainer.restore_run(result.run_dir)


def test_changing_inner_lr_does_not_recompile(tmp_path):
    config = tiny_config(str(tmp_path))
    _, _, algo = trainer.build(config)
    traces = []

    def counted(state, key):
        traces.append(1)  # runs only while tracing
        return algo.meta_step(state, key)

    step = jax.jit(counted)
    state = algo.init(jax.random.key(0))
    s1, m1 = step(state, jax.random.key(1))
    s2, m2 = step(state.replace(inner_lr=jnp.asarray(0.5, jnp.float32)), jax.random.key(1))
    s3, _ = step(s1, jax.random.key(2))
    assert len(traces) == 1
    assert float(m1["train/inner_lr"]) == pytest.approx(0.1) and float(m2["train/inner_lr"]) == pytest.approx(0.5)
    # The learning rate is really used: the post-adaptation return differs.
    assert float(m1["train/return_post"]) != float(m2["train/return_post"])


def test_one_compile_per_chunk_length(tmp_path):
    result = trainer.train(tiny_config(str(tmp_path), run_name="chunks", meta_iters=6, chunk_size=2))
    perf = [p for p in read_metrics(os.path.join(result.run_dir, "metrics.jsonl"), "perf") if "chunk_length" in p]
    assert len(perf) == 1 and perf[0]["chunk_length"] == 2
    # eval_every is honoured exactly: chunks of 2 end at iteration 3 for the evaluation there.
    result = trainer.train(tiny_config(str(tmp_path), run_name="chunks2", meta_iters=5, chunk_size=2, eval_every=3))
    records = read_metrics(os.path.join(result.run_dir, "metrics.jsonl"))
    assert sorted(p["chunk_length"] for p in records if "chunk_length" in p) == [1, 2]
    assert [r["iteration"] for r in records if r["kind"] == "eval"] == [0, 3, 5]
    eval_compiles = [r for r in records if "perf/eval_compile_s" in r]
    assert len(eval_compiles) == 1 and eval_compiles[0]["iteration"] == 0  # the meta-test compiles once


def test_invalid_config_is_rejected_before_compiling(tmp_path):
    with pytest.raises(ConfigError, match=r"^maml.inner_lr: must be > 0, got -1.0$"):
        trainer.train(tiny_config(str(tmp_path), algo_config=dataclasses.replace(tiny_config("x").algo_config, inner_lr=-1.0)))
    with pytest.raises(ConfigError, match="env: must be one of"):
        trainer.train(tiny_config(str(tmp_path), env="nope"))
    with pytest.raises(ConfigError, match="env_variant"):
        trainer.train(tiny_config(str(tmp_path), env_variant="nope"))
    assert not os.listdir(tmp_path)  # nothing was created


def test_eval_extras_are_summarised_and_logged():
    from jmeta.algos import EvalOut
    from jmeta.evaluation import summarize

    out = EvalOut(returns=jnp.array([[0.0, 1.0], [2.0, 3.0]]), axis="episode",
                  extras={"success": jnp.array([[0.0, 1.0], [1.0, 1.0]]), "reads": jnp.array([1.0, 0.0])})
    result = summarize(out)
    assert result.axis == "episode" and result.axis_label.startswith("episode")
    np.testing.assert_allclose(result.mean, [1.0, 2.0])
    np.testing.assert_allclose(result.stderr, [1.0, 1.0])
    metrics = result.metrics()
    assert metrics["eval/return_episode1"] == 2.0 and metrics["eval/return_episode0_se"] == 1.0
    assert metrics["eval/success_episode0"] == 0.5 and metrics["eval/success_episode1"] == 1.0
    assert metrics["eval/reads"] == 0.5
    assert result.to_dict()["extras"]["reads"] == [1.0, 0.0]
    with pytest.raises(ValueError, match="K \\+ 1"):
        summarize(EvalOut(returns=jnp.zeros(3)))
