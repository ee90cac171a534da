"""The env API answers bad input clearly: overrides in ``jmeta.make``, tasks in ``reset``/``step``,
actions (shape, dtype, Python lists), and non-finite actions (one documented behaviour on every env
and both physics paths). Errors are raised while tracing, so ``jax.eval_shape`` finds them without
running anything."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from _tiny import FAST_COMPILE
from jmeta.errors import ConfigError, EnvInputError
from jmeta.rollout import debug_nonfinite, rollout_episode
from jmeta.spaces import Discrete


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ("point_nav", {"horizon": 2.5}, "point_nav.horizon must be int, got 2.5"),
        ("point_nav", {"horizon": "10"}, "point_nav.horizon must be int, got '10'"),
        ("point_nav", {"horizon": 0}, "point_nav.horizon must be >= 1, got 0"),
        ("point_nav", {"max_step": -0.1}, "point_nav.max_step must be > 0, got -0.1"),
        ("point_nav", {"max_step": float("nan")}, "point_nav.max_step must be a finite float, got nan"),
        ("point_nav", {"goal_low": 1.0, "goal_high": 0.0}, "point_nav.goal_low must be < goal_high"),
        ("point_nav", {"goal_set": "ring"}, "point_nav.goal_set must be one of box, semicircle, pearl_square, pearl_semicircle, got 'ring'"),
        ("point_nav", {"episodes_per_trial": 0}, "point_nav.episodes_per_trial must be >= 1, got 0"),
        ("point_nav", {"sparse": 1}, "point_nav.sparse must be bool, got 1"),
        ("point_nav", {"nope": 1}, "unknown option(s) nope for environment 'point_nav'"),
        ("grid_nav", {"num_cells": 2}, "grid_nav.num_cells must be >= 3"),
        ("bandit", {"num_arms": 2.0}, "bandit.num_arms must be int, got 2.0"),
        ("cheetah_vel", {"physics": "gpu"}, "cheetah_vel.physics='gpu' is invalid; valid values are: auto, mjx, mujoco"),
        ("maze2d", {"reveal_distance": float("inf")}, "maze2d.reveal_distance must be a finite float, got inf"),
    ],
)
def test_make_validates_overrides(env, overrides, message):
    with pytest.raises(ConfigError) as info:
        jmeta.make(env, **overrides)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", jmeta.list_envs())
def test_every_env_checks_its_task_and_action_while_tracing(name):
    env, dist = jmeta.make(name)
    key = jax.random.key(0)
    task = jax.eval_shape(dist.sample, key)
    _, state = jax.eval_shape(env.reset, key, task)
    space = env.spec.action_space
    good = jax.ShapeDtypeStruct(space.shape, jnp.int32 if isinstance(space, Discrete) else jnp.float32)
    jax.eval_shape(env.step, key, state, good, task)  # the right inputs trace
    with pytest.raises(EnvInputError, match=rf"^{name}\.reset: task is None"):
        jax.eval_shape(env.reset, key, None)
    batched = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((3, *x.shape), x.dtype), task)
    with pytest.raises(EnvInputError, match="a batch of tasks needs jax.vmap"):
        jax.eval_shape(env.reset, key, batched)
    other = jax.eval_shape(jmeta.make("bandit" if name != "bandit" else "point_nav")[1].sample, key)
    with pytest.raises(EnvInputError, match=rf"is not a {name} task"):
        jax.eval_shape(env.step, key, state, good, other)
    wrong = jax.ShapeDtypeStruct((2, *space.shape), good.dtype)
    with pytest.raises(EnvInputError, match="^" + re.escape(f"{name}.step: action must have shape {tuple(space.shape)}")):
        jax.eval_shape(env.step, key, state, wrong, task)
    if isinstance(space, Discrete):
        with pytest.raises(EnvInputError, match="action must be an integer"):
            jax.eval_shape(env.step, key, state, jax.ShapeDtypeStruct((), jnp.float32), task)


def test_python_lists_and_scalars_are_converted():
    env, dist = jmeta.make("point_nav")
    task = dist.sample(jax.random.key(0))
    _, state = env.reset(jax.random.key(1), task)
    out = env.step(jax.random.key(2), state, [0.05, -0.05], task)
    np.testing.assert_allclose(np.asarray(out.obs), [0.05, -0.05], rtol=1e-6)
    env, dist = jmeta.make("bandit")
    task = dist.sample(jax.random.key(0))
    _, state = env.reset(jax.random.key(1), task)
    assert np.isfinite(float(env.step(jax.random.key(2), state, 3, task).reward))
    with pytest.raises(EnvInputError, match="not an array"):
        env.step(jax.random.key(2), state, "left", task)


def _nonfinite_steps(env, dist, jit_options=None):
    task = dist.sample(jax.random.key(0))
    dim = env.spec.action_space.shape
    actions = jnp.stack([jnp.full(dim, jnp.nan), jnp.full(dim, jnp.inf), jnp.zeros(dim)])

    def run(action):
        _, state = env.reset(jax.random.key(1), task)
        return env.step(jax.random.key(2), state, action, task)

    step = jax.jit(jax.vmap(run), compiler_options=jit_options) if jit_options else jax.jit(jax.vmap(run))
    return step(actions)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("point_nav", {}), ("cheetah_vel", {"physics": "mujoco"}), ("cheetah_vel", {"physics": "mjx"}),
     ("wheeled_nav", {"physics": "mujoco"})],
)
def test_nonfinite_actions_are_zeroed_and_flagged(name, overrides):
    """NaN / inf actions act as a zero action on every path, and info["nonfinite_action"] says so."""
    env, dist = jmeta.make(name, **overrides)
    out = _nonfinite_steps(env, dist, FAST_COMPILE if overrides.get("physics") == "mjx" else None)
    assert np.all(np.isfinite(np.asarray(out.obs))) and np.all(np.isfinite(np.asarray(out.reward)))
    np.testing.assert_array_equal(np.asarray(out.info["nonfinite_action"]), [1.0, 1.0, 0.0])
    # The same next observation and reward as the zero action.
    np.testing.assert_allclose(np.asarray(out.obs[0]), np.asarray(out.obs[2]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.reward[0]), np.asarray(out.reward[2]), rtol=1e-5, atol=1e-6)


def test_debug_mode_raises_on_the_first_nonfinite_value():
    env, dist = jmeta.make("point_nav", horizon=5)
    task = dist.sample(jax.random.key(0))

    def nan_policy(params, obs, key):  # a policy whose log-probability is NaN
        return jnp.zeros(2), jnp.log(-1.0 + 0.0 * obs.sum())

    run = jax.jit(lambda k: rollout_episode(env, nan_policy, None, task, k))
    assert np.isnan(np.asarray(run(jax.random.key(1)).log_prob)).all()  # silently NaN by default
    with debug_nonfinite(), pytest.raises(FloatingPointError):
        jax.block_until_ready(run(jax.random.key(2)))
