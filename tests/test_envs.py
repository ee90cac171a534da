"""The environment contract (every registered env and variant) and point_nav against its definition
(cbfinn/maml_rl maml_examples/point_env_randgoal.py, see jmeta.envs.toy.point_nav)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.envs import RescaleActions
from jmeta.envs.registry import variant_params
from jmeta.envs.toy.point_nav import PointNavState, PointNavTask
from jmeta.errors import ConfigError, UnknownNameError

ALL_VARIANTS = [(name, v) for name in jmeta.list_envs() for v in jmeta.list_variants(name)]
#: Families whose variants differ only in sizes (arms, episodes per trial): the dynamic contract
#: runs on the default and the largest variant; every variant still gets the spec test.
SIZE_ONLY_VARIANTS = {"bandit": ("default", "k50_n500"), "tabular_mdp": ("default", "n100")}
ENV_VARIANTS = [(n, v) for n, v in ALL_VARIANTS if n not in SIZE_ONLY_VARIANTS or v in SIZE_ONLY_VARIANTS[n]]
IDS = [f"{n}-{v}" for n, v in ENV_VARIANTS]


def _is_mujoco(name, variant):
    return any(f.name == "physics" for f in dataclasses.fields(variant_params(name, variant)))


#: MuJoCo variants share one env class and physics path per family; the generic checks (jit vs
#: eager, vmap rows equal single calls, determinism per key, finite observations over a rollout)
#: run on each family's default, while every variant keeps the spec test and the "different task"
#: test (jitted reset, then a step vmapped over tasks and scanned over time on the variant's own
#: obs/reward/task code, float32 rewards).
GENERIC_VARIANTS = [(n, v) for n, v in ENV_VARIANTS if not _is_mujoco(n, v) or v == "default"]
GENERIC_IDS = [f"{n}-{v}" for n, v in GENERIC_VARIANTS]
HORIZON = 10  # short rollouts keep the contract tests fast
BATCH = 8


def _make(name, variant):
    return jmeta.make(name, variant=variant)


@functools.cache
def _jitted(name, variant):
    """One env per (name, variant) per test process, with its jitted reset/step compiled once."""
    env, dist = _make(name, variant)
    return env, dist, jax.jit(env.reset), jax.jit(env.step)



#: Longest probe of "a different task changes the reward": enough for every sparse task to pay
#: somewhere (point_nav sparse needs 10 steps, grid_nav 15) without 200-step MuJoCo walks.
PROBE_HORIZON = 40


def _random_actions(env, key, shape=()):
    space = env.spec.action_space
    keys = jax.random.split(key, int(np.prod(shape)) if shape else 1)
    acts = jax.vmap(space.sample)(keys)
    return acts.reshape(*shape, *space.shape) if shape else acts[0]


def _rollout(env, task, key, actions, reset=None, step=None):
    """Python-level loop over jitted reset/step; returns stacked (obs, reward)."""
    reset, step = reset or jax.jit(env.reset), step or jax.jit(env.step)
    k0, key = jax.random.split(key)
    obs, state = reset(k0, task)
    all_obs, rewards = [obs], []
    for a in actions:
        key, k = jax.random.split(key)
        out = step(k, state, a, task)
        state = out.state
        all_obs.append(out.obs)
        rewards.append(out.reward)
    return jnp.stack(all_obs), jnp.stack(rewards)


# ---------------------------------------------------------------- contract, every env and variant


def test_registry_is_nonempty_and_has_point_nav():
    assert "point_nav" in jmeta.list_envs()
    assert {"default", "sparse"} <= set(jmeta.list_variants("point_nav"))


@pytest.mark.parametrize(("name", "variant"), ALL_VARIANTS, ids=[f"{n}-{v}" for n, v in ALL_VARIANTS])
def test_spec_is_consistent(name, variant):
    env, _ = _make(name, variant)
    spec = env.spec
    assert spec.name == name and spec.variant == variant
    assert spec.horizon >= 1 and spec.episodes_per_trial >= 1
    assert spec.env_id == f"{name}/{variant}-v{spec.version}"
    assert isinstance(env, jmeta.MetaEnv)


@pytest.mark.parametrize(("name", "variant"), GENERIC_VARIANTS, ids=GENERIC_IDS)
def test_reset_step_under_jit(name, variant):
    env, dist, reset, step = _jitted(name, variant)
    task = jax.jit(dist.sample)(jax.random.key(1))
    obs, state = reset(jax.random.key(2), task)
    assert obs.shape == env.spec.observation_space.shape
    action = env.spec.action_space.sample(jax.random.key(3))
    out = step(jax.random.key(4), state, action, task)
    assert out.obs.shape == env.spec.observation_space.shape
    assert out.reward.shape == () and out.reward.dtype == jnp.float32
    assert out.terminated.shape == () and out.terminated.dtype == jnp.bool_
    assert out.truncated.shape == ()
    assert np.isfinite(float(out.reward))
    # jit and eager agree
    eager = env.step(jax.random.key(4), state, action, task)
    np.testing.assert_allclose(eager.obs, out.obs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(eager.reward, out.reward, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "variant"), GENERIC_VARIANTS, ids=GENERIC_IDS)
def test_vmap_over_tasks(name, variant):
    env, dist, _, step = _jitted(name, variant)
    keys = jax.random.split(jax.random.key(5), BATCH)
    tasks = jax.vmap(dist.sample)(keys)
    for leaf in jax.tree_util.tree_leaves(tasks):
        assert leaf.shape[0] == BATCH
    obs, states = jax.jit(jax.vmap(env.reset))(keys, tasks)
    assert obs.shape == (BATCH, *env.spec.observation_space.shape)
    actions = _random_actions(env, jax.random.key(6), (BATCH,))
    out = jax.jit(jax.vmap(env.step))(keys, states, actions, tasks)
    assert out.obs.shape == (BATCH, *env.spec.observation_space.shape)
    assert out.reward.shape == (BATCH,)
    assert out.terminated.shape == (BATCH,)
    # Each batch row equals the unbatched call on that task.
    for i in (0, BATCH - 1):
        task_i = jax.tree_util.tree_map(lambda x, i=i: x[i], tasks)
        state_i = jax.tree_util.tree_map(lambda x, i=i: x[i], states)
        single = step(keys[i], state_i, actions[i], task_i)
        np.testing.assert_allclose(single.reward, out.reward[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(single.obs, out.obs[i], rtol=1e-5, atol=1e-6)
    # Different tasks are different.
    assert (
        len({tuple(np.asarray(x).ravel().tolist()) for x in jax.tree_util.tree_leaves(tasks)[0]})
        > 1
    )


@pytest.mark.parametrize(("name", "variant"), GENERIC_VARIANTS, ids=GENERIC_IDS)
def test_deterministic_per_key(name, variant):
    env, dist, reset, step = _jitted(name, variant)
    actions = _random_actions(env, jax.random.key(7), (HORIZON,))
    t1 = dist.sample(jax.random.key(8))
    t2 = dist.sample(jax.random.key(8))
    for a, b in zip(jax.tree_util.tree_leaves(t1), jax.tree_util.tree_leaves(t2), strict=True):
        np.testing.assert_array_equal(a, b)
    obs1, rew1 = _rollout(env, t1, jax.random.key(9), actions, reset, step)
    obs2, rew2 = _rollout(env, t2, jax.random.key(9), actions, reset, step)
    np.testing.assert_array_equal(obs1, obs2)
    np.testing.assert_array_equal(rew1, rew2)
    # Different keys give different tasks (some task sets have only two tasks, so try several).
    others = jax.vmap(dist.sample)(jax.random.split(jax.random.key(10), 8))
    assert any(
        not np.array_equal(a, b[i])
        for a, b in zip(jax.tree_util.tree_leaves(t1), jax.tree_util.tree_leaves(others), strict=True)
        for i in range(8)
    )


#: Variants whose reward is, by definition, the same for every task until the agent is near its
#: goal, which no short probe from the start reaches: MAESN's sparse wheeled robot pays
#: ``-||g|| - ctrl`` beyond 0.8 of the goal and every goal has ``||g|| = 2`` (it needs about 88 steps
#: at full torque to get there). The probe asserts that task independence instead;
#: ``tests/test_maesn_envs.py`` checks that the rewards differ between tasks near a goal.
TASK_INDEPENDENT_FAR_FROM_GOAL = {("wheeled_nav", "sparse")}


@pytest.mark.parametrize(("name", "variant"), ENV_VARIANTS, ids=IDS)
def test_different_task_changes_reward(name, variant):
    """Identical states and actions, different tasks: the rewards differ somewhere.

    Sparse-reward tasks pay only near their goal, so the probe walks the whole horizon with a
    few random walks and with constant actions (straight lines from the start) as well.
    """
    env, dist, reset, _ = _jitted(name, variant)
    # MuJoCo rewards are dense (ant_goal/sparse pays near the start for goals close to it): a
    # short probe suffices and keeps the host-engine path's cost down.
    mujoco = _is_mujoco(name, variant)
    horizon = min(env.spec.horizon, HORIZON if mujoco else PROBE_HORIZON)
    num_constant = 4 if mujoco else 16
    keys = jax.random.split(jax.random.key(11), BATCH)
    tasks = jax.vmap(dist.sample)(keys)
    obs, state = reset(jax.random.key(12), jax.tree_util.tree_map(lambda x: x[0], tasks))
    assert obs.shape == env.spec.observation_space.shape  # every variant's reset under jit
    walks = _random_actions(env, jax.random.key(13), (4, horizon))
    constant = _random_actions(env, jax.random.key(14), (num_constant,))
    constant = jnp.broadcast_to(constant[:, None], (num_constant, horizon, *constant.shape[1:]))
    sequences = jnp.concatenate([walks, constant])

    def walk(task, actions):
        def body(s, a):
            out = env.step(jax.random.key(15), s, a, task)
            return out.state, out.reward

        return jax.lax.scan(body, state, actions)[1]

    per_task = jax.vmap(jax.vmap(walk, in_axes=(None, 0)), in_axes=(0, None))
    rewards = jax.jit(per_task)(tasks, sequences)
    assert rewards.dtype == jnp.float32
    rewards = np.asarray(rewards)
    assert rewards.shape == (BATCH, sequences.shape[0], horizon)
    assert np.all(np.isfinite(rewards))
    # Max over (sequence, step) of the spread of the reward across tasks.
    if (name, variant) in TASK_INDEPENDENT_FAR_FROM_GOAL:
        assert np.ptp(rewards, axis=0).max() < 1e-5
    else:
        assert np.ptp(rewards, axis=0).max() > 1e-3


@pytest.mark.parametrize(("name", "variant"), GENERIC_VARIANTS, ids=GENERIC_IDS)
def test_observations_finite_over_random_rollout(name, variant):
    env, dist, reset, step = _jitted(name, variant)
    task = dist.sample(jax.random.key(15))
    actions = _random_actions(env, jax.random.key(16), (HORIZON,))
    obs, rewards = _rollout(env, task, jax.random.key(17), actions, reset, step)
    assert obs.shape == (HORIZON + 1, *env.spec.observation_space.shape)
    assert np.all(np.isfinite(obs))
    assert np.all(np.isfinite(rewards))


# ---------------------------------------------------------------- point_nav against its definition


def _task(x, y):
    return PointNavTask(goal=jnp.array([x, y], jnp.float32))


def _state(x, y, t=0):
    return PointNavState(position=jnp.array([x, y], jnp.float32), time=jnp.asarray(t, jnp.int32))


def test_point_nav_spec():
    env, _ = jmeta.make("point_nav")
    assert env.spec.horizon == 100
    assert env.spec.episodes_per_trial == 1
    assert env.spec.action_space.low == -0.1 and env.spec.action_space.high == 0.1
    assert env.spec.observation_space.shape == (2,)


def test_point_nav_starts_at_origin():
    env, dist = jmeta.make("point_nav")
    for seed in range(3):
        obs, state = env.reset(jax.random.key(seed), dist.sample(jax.random.key(seed + 100)))
        np.testing.assert_array_equal(obs, [0.0, 0.0])
        np.testing.assert_array_equal(state.position, [0.0, 0.0])
        assert int(state.time) == 0


def test_point_nav_action_clipped_and_reward_after_move():
    env, _ = jmeta.make("point_nav")
    task = _task(0.4, -0.3)
    _, state = env.reset(jax.random.key(0), task)
    out = jax.jit(env.step)(jax.random.key(1), state, jnp.array([0.3, -0.05]), task)
    np.testing.assert_allclose(out.obs, [0.1, -0.05], atol=1e-7)
    np.testing.assert_allclose(out.state.position, [0.1, -0.05], atol=1e-7)
    expected = -np.hypot(0.1 - 0.4, -0.05 + 0.3)  # -||s' - g|| after the move
    np.testing.assert_allclose(out.reward, expected, rtol=1e-6)
    assert not bool(out.terminated)
    assert int(out.state.time) == 1
    # Negative clipping from a non-origin state.
    out2 = env.step(jax.random.key(2), out.state, jnp.array([-5.0, 0.02]), task)
    np.testing.assert_allclose(out2.obs, [0.0, -0.03], atol=1e-7)
    np.testing.assert_allclose(out2.reward, -np.hypot(0.0 - 0.4, -0.03 + 0.3), rtol=1e-6)


def test_point_nav_terminates_within_tolerance():
    env, _ = jmeta.make("point_nav")
    task = _task(0.25, -0.15)
    # Moves to (0.255, -0.145): |dx| = |dy| = 0.005 < 0.01.
    out = env.step(jax.random.key(0), _state(0.2, -0.2), jnp.array([0.055, 0.055]), task)
    assert bool(out.terminated)
    np.testing.assert_allclose(out.reward, -np.hypot(0.005, 0.005), rtol=1e-4)
    # |dx| = 0.005 but |dy| = 0.02: not terminated (both must be within 0.01).
    out = env.step(jax.random.key(0), _state(0.2, -0.2), jnp.array([0.055, 0.07]), task)
    assert not bool(out.terminated)
    # |dx| = 0.015 only: not terminated.
    out = env.step(jax.random.key(0), _state(0.2, -0.2), jnp.array([0.035, 0.05]), task)
    assert not bool(out.terminated)


def test_point_nav_truncated_at_horizon():
    env, _ = jmeta.make("point_nav", horizon=5)
    task = _task(0.4, 0.4)
    out = env.step(jax.random.key(0), _state(0.0, 0.0, 3), jnp.zeros(2), task)
    assert not bool(out.truncated)
    out = env.step(jax.random.key(0), out.state, jnp.zeros(2), task)
    assert bool(out.truncated)


def test_point_nav_goal_distribution():
    _, dist = jmeta.make("point_nav")
    goals = np.asarray(jax.vmap(dist.sample)(jax.random.split(jax.random.key(0), 2000)).goal)
    assert goals.shape == (2000, 2)
    assert goals.min() >= -0.5 and goals.max() <= 0.5
    # Uniform over the square: fills it and is centred.
    assert goals.min() < -0.48 and goals.max() > 0.48
    np.testing.assert_allclose(goals.mean(axis=0), [0.0, 0.0], atol=0.03)
    np.testing.assert_allclose(goals.var(axis=0), [1 / 12, 1 / 12], rtol=0.1)


def test_point_nav_sparse_goals_on_upper_semicircle():
    env, dist = jmeta.make("point_nav", variant="sparse")
    assert env.spec.episodes_per_trial == 3
    assert env.spec.horizon == 100
    goals = np.asarray(jax.vmap(dist.sample)(jax.random.split(jax.random.key(0), 1000)).goal)
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0, atol=1e-5)
    assert goals[:, 1].min() >= -1e-6
    angles = np.arctan2(goals[:, 1], goals[:, 0])
    assert angles.min() < 0.05 and angles.max() > np.pi - 0.05  # covers the whole semicircle


def test_point_nav_sparse_reward_and_no_termination():
    env, _ = jmeta.make("point_nav", variant="sparse")
    task = _task(0.0, 1.0)
    step = jax.jit(env.step)
    # Lands exactly on the goal: reward 1 - 0 = 1, still not terminated.
    out = step(jax.random.key(0), _state(0.0, 0.95), jnp.array([0.0, 0.05]), task)
    np.testing.assert_allclose(out.reward, 1.0, atol=1e-6)
    assert not bool(out.terminated)
    # Within the radius: d = 0.15 -> reward 0.85.
    out = step(jax.random.key(0), _state(0.0, 0.8), jnp.array([0.0, 0.05]), task)
    np.testing.assert_allclose(out.reward, 0.85, atol=1e-5)
    assert not bool(out.terminated)
    # Outside the radius: d = 0.25 -> 0.
    out = step(jax.random.key(0), _state(0.0, 0.7), jnp.array([0.0, 0.05]), task)
    assert float(out.reward) == 0.0
    # From the origin (d = 1): 0.
    out = step(jax.random.key(0), _state(0.0, 0.0), jnp.array([0.1, 0.1]), task)
    assert float(out.reward) == 0.0


# ---------------------------------------------------------------- bad input


def test_unknown_env_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        jmeta.make("nope")
    assert "point_nav" in str(info.value)
    assert "nope" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_unknown_variant_lists_valid_variants():
    with pytest.raises(UnknownNameError) as info:
        jmeta.make("point_nav", variant="nope")
    msg = str(info.value)
    assert "default" in msg and "sparse" in msg and "nope" in msg


def test_unknown_override_lists_valid_options():
    with pytest.raises(ConfigError) as info:
        jmeta.make("point_nav", not_a_field=3)
    msg = str(info.value)
    assert "not_a_field" in msg
    for option in ("horizon", "max_step", "goal_radius", "episodes_per_trial"):
        assert option in msg


def test_override_applies_and_bad_horizon_raises():
    env, _ = jmeta.make("point_nav", horizon=7)
    assert env.spec.horizon == 7
    with pytest.raises(ConfigError):
        jmeta.make("point_nav", horizon=0)


def test_list_variants_unknown_env_raises():
    with pytest.raises(UnknownNameError):
        jmeta.list_variants("nope")


def test_rescale_actions():
    env, _ = jmeta.make("point_nav")
    wrapped = RescaleActions(env)
    assert wrapped.spec.action_space.low == -1.0 and wrapped.spec.action_space.high == 1.0
    assert wrapped.spec.horizon == env.spec.horizon
    mapped = np.asarray(wrapped.env_action(jnp.array([-1.0, 1.0])))
    np.testing.assert_allclose(mapped, [-0.1, 0.1], atol=1e-7)
    np.testing.assert_allclose(wrapped.env_action(jnp.array([0.0, 0.5])), [0.0, 0.05], atol=1e-7)
    np.testing.assert_allclose(wrapped.env_action(jnp.array([-3.0, 7.0])), [-0.1, 0.1], atol=1e-7)
    # Through step: agent action 0.5 moves by 0.05.
    task = _task(0.3, 0.3)
    _, state = wrapped.reset(jax.random.key(0), task)
    out = wrapped.step(jax.random.key(1), state, jnp.array([0.5, -2.0]), task)
    np.testing.assert_allclose(out.obs, [0.05, -0.1], atol=1e-7)


def test_rescale_actions_rejects_discrete():
    from jmeta.spaces import Discrete

    class _Fake:
        spec = jmeta.EnvSpec("x", "default", Discrete(3), Discrete(3), 5, 1, "1", "")

    with pytest.raises(TypeError):
        RescaleActions(_Fake())
