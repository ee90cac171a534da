"""MAML: the compiled meta-iteration, the meta-gradient through adaptation, outer updates."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jmeta
from jmeta.algos import make_algorithm
from jmeta.algos.maml import MAMLConfig
from jmeta.envs import RescaleActions

SMALL = MAMLConfig(episodes_per_task=4, hidden_sizes=(8,), cg_iters=5, eval_adapt_steps=2, eval_episodes_per_task=3)


def _algo(cfg: MAMLConfig = SMALL, meta_batch_size: int = 3, horizon: int = 12):
    env, dist = jmeta.make("point_nav", horizon=horizon)
    return make_algorithm("maml", RescaleActions(env), dist, cfg, meta_batch_size)


def _collect(algo, state, key):
    """Stored inner and post batches for a meta-batch, as meta_step builds them."""
    c = algo.config
    tasks = jmeta.tasks.sample_tasks(algo.task_dist, key, algo.meta_batch_size)
    keys = jax.random.split(jax.random.fold_in(key, 1), algo.meta_batch_size)
    return jax.vmap(lambda t, k: algo.collect_task(state.params, state.inner_lr, t, k, c.num_inner_steps, c.episodes_per_task))(tasks, keys)


@pytest.mark.parametrize("outer", ["trpo", "ppo"])
def test_meta_step_is_one_compiled_call(outer):
    algo = _algo(dataclasses.replace(SMALL, outer=outer))
    state = algo.init(jax.random.key(0))
    step = jax.jit(algo.meta_step)
    new_state, metrics = step(state, jax.random.key(1))
    assert int(new_state.iteration) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["train/outer_loss"]) < float(metrics["train/outer_loss_before"])
    if outer == "trpo":
        assert float(metrics["train/kl"]) <= SMALL.max_kl * 1.001
        assert 0.0 < float(metrics["train/step_fraction"]) <= 1.0
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
    assert any(jax.tree_util.tree_leaves(changed))
    assert algo.env_steps_per_iteration() == 3 * 4 * 12 * 2


@pytest.mark.parametrize("num_inner_steps", [1, 2])
def test_meta_gradient_through_adaptation_matches_finite_differences(num_inner_steps):
    """With the samples held fixed, the outer loss is a deterministic function of theta. Its
    finite differences equal jax.grad through the inner steps for the plain VPG inner surrogate
    (whose Hessian is the Hessian of that deterministic function). LVC/DiCE add the
    sampling-distribution term on purpose, which fixed-sample differences cannot see: that term is
    checked against exact expectations in test_surrogates.py. tanh keeps the loss smooth (a ReLU
    net with zero biases sits on its kink at the all-zero first observation)."""
    cfg = dataclasses.replace(SMALL, inner_estimator="vpg", num_inner_steps=num_inner_steps, inner_lr=0.3,
                              activation="tanh")
    algo = _algo(cfg)
    state = algo.init(jax.random.key(3))
    batches, post, _ = _collect(algo, state, jax.random.key(4))
    flat, unravel = ravel_pytree(state.params)
    loss = jax.jit(lambda x: algo.outer_loss(unravel(x), state.inner_lr, batches, post))
    grad = jax.grad(lambda x: algo.outer_loss(unravel(x), state.inner_lr, batches, post))(flat)
    rng = np.random.default_rng(0)
    for _ in range(3):
        direction = jnp.asarray(rng.normal(size=flat.shape), jnp.float32)
        direction = direction / jnp.linalg.norm(direction)
        eps = 1e-2
        fd = (loss(flat + eps * direction) - loss(flat - eps * direction)) / (2 * eps)
        analytic = jnp.vdot(grad, direction)
        assert abs(float(fd) - float(analytic)) <= 1e-2 * abs(float(analytic)) + 1e-4, (float(fd), float(analytic))


def test_lvc_adds_the_sampling_term_to_the_meta_gradient():
    """LVC and VPG give the same inner step (same first derivative) but different meta-gradients."""
    lvc = _algo(dataclasses.replace(SMALL, inner_estimator="lvc", inner_lr=0.3, activation="tanh"))
    vpg = _algo(dataclasses.replace(SMALL, inner_estimator="vpg", inner_lr=0.3, activation="tanh"))
    state = lvc.init(jax.random.key(3))
    batches, post, _ = _collect(lvc, state, jax.random.key(4))
    for a, b in zip(jax.tree_util.tree_leaves(jax.vmap(lvc.adapt, in_axes=(None, None, 0))(state.params, state.inner_lr, batches)),
                    jax.tree_util.tree_leaves(jax.vmap(vpg.adapt, in_axes=(None, None, 0))(state.params, state.inner_lr, batches)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    g_lvc, _ = ravel_pytree(jax.grad(lvc.outer_loss)(state.params, state.inner_lr, batches, post))
    g_vpg, _ = ravel_pytree(jax.grad(vpg.outer_loss)(state.params, state.inner_lr, batches, post))
    assert float(jnp.linalg.norm(g_lvc - g_vpg) / jnp.linalg.norm(g_vpg)) > 1e-2


def test_second_order_differs_from_first_order():
    algo2 = _algo(dataclasses.replace(SMALL, inner_lr=0.5))
    algo1 = _algo(dataclasses.replace(SMALL, inner_lr=0.5, first_order=True))
    state = algo2.init(jax.random.key(5))
    batches, post, _ = _collect(algo2, state, jax.random.key(6))
    g2, _ = ravel_pytree(jax.grad(algo2.outer_loss)(state.params, state.inner_lr, batches, post))
    g1, _ = ravel_pytree(jax.grad(algo1.outer_loss)(state.params, state.inner_lr, batches, post))
    # Same data, same value; the gradients differ by the Hessian term.
    assert float(algo2.outer_loss(state.params, state.inner_lr, batches, post)) == pytest.approx(
        float(algo1.outer_loss(state.params, state.inner_lr, batches, post)), rel=1e-5)
    rel = float(jnp.linalg.norm(g2 - g1) / jnp.linalg.norm(g1))
    assert rel > 1e-2
    # And with a zero inner learning rate the two coincide (adaptation is the identity).
    zero = jnp.zeros((), jnp.float32)
    h2, _ = ravel_pytree(jax.grad(algo2.outer_loss)(state.params, zero, batches, post))
    h1, _ = ravel_pytree(jax.grad(algo1.outer_loss)(state.params, zero, batches, post))
    np.testing.assert_allclose(np.asarray(h2), np.asarray(h1), rtol=1e-5, atol=1e-7)


def test_evaluate_shapes_and_adaptation_changes_returns():
    algo = _algo()
    state = algo.init(jax.random.key(0))
    bank = jmeta.TaskBank.for_evaluation(algo.task_dist, 5)
    out = jax.jit(algo.evaluate)(state, bank.tasks, jax.random.key(1))
    assert out.axis == "step" and out.returns.shape == (5, 3)  # steps 0, 1, 2
    assert not np.allclose(np.asarray(out.returns[:, 0]), np.asarray(out.returns[:, 2]))


def test_invalid_maml_settings_name_the_field():
    from jmeta.algos.maml import MAML
    from jmeta.errors import ConfigError

    for field, value in [("num_inner_steps", 0), ("inner_lr", 0.0), ("max_kl", -1.0), ("backtrack_ratio", 1.0),
                         ("gamma", 1.5), ("hidden_sizes", ()), ("episodes_per_task", 0), ("ppo_clip", 0.0),
                         ("inner_lr", float("inf")), ("max_kl", float("nan")), ("init_std", float("inf"))]:
        with pytest.raises(ConfigError, match=rf"^maml\.{field}: "):
            MAML.validate_config(dataclasses.replace(SMALL, **{field: value}))
