"""The rollout engine: shapes, agreement with a plain Python loop, masking, trials with a carry."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.envs.toy.point_nav import PointNavTask
from jmeta.rollout import (
    StepFnActor,
    rollout_episode,
    rollout_episodes,
    rollout_tasks,
    rollout_trial,
)
from jmeta.tasks import sample_tasks

T = 10


def _task(x, y):
    return PointNavTask(goal=jnp.array([x, y], jnp.float32))


def obs_policy(params, obs, key):
    """Deterministic, observation-dependent: a = params * (0.1, -0.03) + 0.2 * obs[::-1]."""
    del key
    action = params * jnp.array([0.1, -0.03]) + 0.2 * obs[::-1]
    return action, obs.sum()


def const_policy(params, obs, key):
    del obs, key
    return params, jnp.zeros(())


def gaussian_policy(params, obs, key):
    action = 0.05 * jax.random.normal(key, (2,)) + params
    return action, -0.5 * jnp.sum(((action - params) / 0.05) ** 2)


def test_shapes():
    env, dist = jmeta.make("point_nav", horizon=T)
    task = dist.sample(jax.random.key(0))
    params = jnp.zeros(2)
    ep = jax.jit(functools.partial(rollout_episode, env, gaussian_policy))(
        params, task, jax.random.key(1)
    )
    assert ep.obs.shape == (T, 2) and ep.action.shape == (T, 2)
    for leaf in (ep.reward, ep.terminated, ep.mask, ep.log_prob, ep.time):
        assert leaf.shape == (T,)
    assert ep.mask.dtype == jnp.float32 and ep.terminated.dtype == jnp.bool_
    np.testing.assert_array_equal(ep.time, np.arange(T))
    eps = jax.jit(
        lambda k: rollout_episodes(env, gaussian_policy, params, task, k, num_episodes=3)
    )(jax.random.key(2))
    assert eps.obs.shape == (3, T, 2) and eps.reward.shape == (3, T)
    assert eps.episode_return().shape == (3,)
    tasks = sample_tasks(dist, jax.random.key(3), 4)
    batch = jax.jit(
        lambda k: rollout_tasks(env, gaussian_policy, params, tasks, k, num_episodes=3)
    )(jax.random.key(4))
    assert batch.obs.shape == (4, 3, T, 2) and batch.mask.shape == (4, 3, T)
    # Independent noise across episodes and tasks.
    assert not np.allclose(batch.action[0, 0], batch.action[0, 1])
    assert not np.allclose(batch.action[0, 0], batch.action[1, 0])
    # Horizon override.
    short = jax.jit(lambda k: rollout_episode(env, gaussian_policy, params, task, k, horizon=4))(
        jax.random.key(1)
    )
    assert short.obs.shape == (4, 2)


def test_deterministic_per_key():
    env, dist = jmeta.make("point_nav", horizon=T)
    task = dist.sample(jax.random.key(0))
    run = jax.jit(lambda k: rollout_episodes(env, gaussian_policy, jnp.zeros(2), task, k, 2))
    a, b, c = run(jax.random.key(5)), run(jax.random.key(5)), run(jax.random.key(6))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.reward, b.reward)
    assert not np.array_equal(a.action, c.action)


def test_trajectory_matches_python_loop():
    env, _ = jmeta.make("point_nav", horizon=T)
    task = _task(-0.4, 0.3)
    params = jnp.array([1.0, 2.0])
    traj = jax.jit(lambda p, k: rollout_episode(env, obs_policy, p, task, k))(
        params, jax.random.key(0)
    )

    obs, state = env.reset(jax.random.key(0), task)
    want_obs, want_act, want_rew, want_lp = [], [], [], []
    for _ in range(T):
        action, lp = obs_policy(params, obs, None)
        out = env.step(jax.random.key(0), state, action, task)
        want_obs.append(obs)
        want_act.append(action)
        want_rew.append(out.reward)
        want_lp.append(lp)
        assert not bool(out.terminated)
        obs, state = out.obs, out.state
    np.testing.assert_allclose(traj.obs, np.stack(want_obs), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(traj.action, np.stack(want_act), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(traj.reward, np.stack(want_rew), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(traj.log_prob, np.stack(want_lp), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(traj.mask, np.ones(T))
    assert not np.any(traj.terminated)
    # The first observation is the start; rewards are all negative distances.
    np.testing.assert_array_equal(traj.obs[0], [0.0, 0.0])
    assert np.all(np.asarray(traj.reward) < 0)
    np.testing.assert_allclose(traj.episode_return(), np.sum(want_rew), rtol=1e-5)


def test_masking_after_termination():
    env, _ = jmeta.make("point_nav", horizon=T)
    task = _task(0.3, 0.0)
    traj = jax.jit(lambda k: rollout_episode(env, const_policy, jnp.array([0.1, 0.0]), task, k))(
        jax.random.key(0)
    )
    np.testing.assert_array_equal(traj.mask, [1, 1, 1] + [0] * (T - 3))
    np.testing.assert_array_equal(traj.terminated, [False, False, True] + [False] * (T - 3))
    np.testing.assert_allclose(traj.reward[:3], [-0.2, -0.1, 0.0], atol=1e-6)
    assert np.all(np.asarray(traj.reward[3:]) == 0.0)
    # The observation stays at the terminal position after termination.
    np.testing.assert_allclose(
        traj.obs[:4], [[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [0.3, 0.0]], atol=1e-6
    )
    np.testing.assert_allclose(traj.obs[3:], np.tile([0.3, 0.0], (T - 3, 1)), atol=1e-6)
    np.testing.assert_array_equal(traj.time, np.arange(T))
    assert float(traj.num_steps) == 3.0
    np.testing.assert_allclose(traj.episode_return(), -0.3, atol=1e-6)


def test_rollout_tasks_params_per_task():
    env, _ = jmeta.make("point_nav", horizon=T)
    goals = jnp.array([[0.5, 0.5], [-0.5, 0.2], [0.1, -0.4]])
    tasks = PointNavTask(goal=goals)
    per_task = jnp.array([[0.05, 0.0], [0.0, -0.02], [-0.03, 0.04]])
    traj = jax.jit(
        lambda p, k: rollout_tasks(
            env, const_policy, p, tasks, k, num_episodes=2, params_per_task=True
        )
    )(per_task, jax.random.key(0))
    assert traj.obs.shape == (3, 2, T, 2)
    for i in range(3):
        # Final observation (before the last step) is (T - 1) moves of the task's own action.
        np.testing.assert_allclose(
            traj.obs[i, :, -1], np.tile((T - 1) * per_task[i], (2, 1)), atol=1e-5
        )
        pos = np.arange(1, T + 1)[:, None] * np.asarray(per_task[i])
        want = -np.linalg.norm(pos - np.asarray(goals[i]), axis=-1)
        np.testing.assert_allclose(traj.reward[i, 0], want, rtol=1e-5, atol=1e-6)
    # Shared params: every task moves the same way.
    shared = jax.jit(
        lambda k: rollout_tasks(env, const_policy, per_task[0], tasks, k, num_episodes=1)
    )(jax.random.key(0))
    np.testing.assert_allclose(shared.action, np.broadcast_to(per_task[0], (3, 1, T, 2)))
    with pytest.raises(ValueError):  # a batched params pytree with the wrong leading size
        rollout_tasks(
            env, const_policy, per_task[:2], tasks, jax.random.key(0), 1, params_per_task=True
        )


# ---------------------------------------------------------------- trials


def counting_step(params, carry, inputs, key):
    """A toy recurrent policy: the carry counts steps; the action depends on the carry only."""
    del key
    action = params * jnp.array([0.1, 0.0]) + jnp.array([0.0, 0.002]) * (carry % 3).astype(
        jnp.float32
    )
    return carry + 1, action, carry.astype(jnp.float32)


def test_rollout_trial_keeps_carry_and_records_inputs():
    T_trial = 11
    env, _ = jmeta.make("point_nav", variant="sparse", horizon=T_trial)
    assert env.spec.episodes_per_trial == 3
    task = _task(1.0, 0.0)
    run = jax.jit(
        lambda p, k: rollout_trial(env, StepFnActor(counting_step, jnp.zeros((), jnp.int32)), p, task, k)
    )
    traj, final_carry = run(jnp.ones(()), jax.random.key(0))
    K = 3
    assert traj.obs.shape == (K, T_trial, 2) and traj.action.shape == (K, T_trial, 2)
    assert traj.reward.shape == (K, T_trial)
    assert int(final_carry) == K * T_trial
    # log_prob is the carry the step saw: it keeps counting across episode boundaries.
    np.testing.assert_array_equal(traj.log_prob, np.arange(K * T_trial).reshape(K, T_trial))
    np.testing.assert_array_equal(traj.mask, np.ones((K, T_trial)))
    # The env is reset at each episode start; time restarts.
    np.testing.assert_array_equal(traj.obs[:, 0], np.zeros((K, 2)))
    np.testing.assert_array_equal(traj.time, np.tile(np.arange(T_trial), (K, 1)))
    # The actions follow the carry (not the time in the episode): episode 2 starts at carry 11.
    carries = np.arange(K * T_trial).reshape(K, T_trial)
    np.testing.assert_allclose(traj.action[..., 1], 0.002 * (carries % 3), atol=1e-7)
    # Sparse rewards are reached late in each episode (x >= 0.8): non-trivial prev_reward.
    rewards = np.asarray(traj.reward)
    assert rewards[:, -1].min() > 0.8 and rewards[:, 0].max() == 0.0

    extras = traj.extras
    prev_done = np.asarray(extras["prev_done"])
    want_done = np.zeros((K, T_trial))
    want_done[1:, 0] = 1.0
    np.testing.assert_array_equal(prev_done, want_done)

    flat_r = rewards.reshape(-1)
    flat_a = np.asarray(traj.action).reshape(-1, 2)
    np.testing.assert_array_equal(
        np.asarray(extras["prev_reward"]).reshape(-1), np.concatenate([[0.0], flat_r[:-1]])
    )
    np.testing.assert_array_equal(
        np.asarray(extras["prev_action"]).reshape(-1, 2),
        np.concatenate([np.zeros((1, 2)), flat_a[:-1]]),
    )


def test_rollout_trial_masked_steps_leave_carry():
    env, _ = jmeta.make("point_nav", horizon=6)
    task = _task(0.3, 0.0)

    def step(params, carry, inputs, key):
        return carry + 1, jnp.array([0.1, 0.0]), jnp.zeros(())

    run = jax.jit(
        lambda k: rollout_trial(env, StepFnActor(step, jnp.zeros((), jnp.int32)), None, task, k, num_episodes=2)
    )
    traj, final_carry = run(jax.random.key(0))
    assert traj.obs.shape == (2, 6, 2)
    np.testing.assert_array_equal(traj.mask, np.tile([1, 1, 1, 0, 0, 0], (2, 1)))
    np.testing.assert_array_equal(traj.terminated[:, 2], [True, True])
    assert int(final_carry) == 6  # 3 live steps per episode
    # After termination prev_reward / prev_action keep the last live step's values.
    np.testing.assert_allclose(
        traj.extras["prev_reward"][0, 3:], 0.0, atol=1e-6
    )  # reward at the goal ~ 0
    np.testing.assert_allclose(traj.extras["prev_reward"][1, 0], traj.reward[0, 2], atol=1e-7)
    np.testing.assert_array_equal(traj.extras["prev_done"][:, 0], [0.0, 1.0])
