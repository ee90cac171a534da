"""RL²: the recurrent actor-critic, trial replay, GAE across episodes, PPO and the algorithm contract."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.algos import make_algorithm
from jmeta.algos.rl2 import RL2, RL2Config, trial_gae
from jmeta.config import TrainConfig
from jmeta.envs import RescaleActions
from jmeta.errors import ConfigError
from jmeta.networks.recurrent import RecurrentActorCritic, encode_inputs
from jmeta.rl import returns as rl_returns
from jmeta.spaces import Box, Discrete
from jmeta.tasks import sample_tasks
from jmeta.types import StepInputs

TINY = RL2Config(hidden_size=16, embed_sizes=(8,), head_sizes=(8,), num_minibatches=2, ppo_epochs=2, eval_trials_per_task=2)


def _algo(env_name="point_nav", variant="sparse", config=TINY, meta_batch_size=4, **env_overrides):
    env, dist = jmeta.make(env_name, variant, **env_overrides)
    if isinstance(env.spec.action_space, Box):
        env = RescaleActions(env)
    return RL2(env, dist, config, meta_batch_size)


def _trials(algo, key, num_tasks=3, trials=2):
    tasks = sample_tasks(algo.task_dist, jax.random.fold_in(key, 1), num_tasks)
    params = algo.init(key).params
    traj = algo.collect(params, tasks, jax.random.fold_in(key, 2), trials, algo.episodes_per_trial)
    flat = jax.tree_util.tree_map(lambda x: x.reshape(num_tasks * trials, *x.shape[2:]), traj)
    return params, flat


@pytest.fixture(params=["continuous", "discrete"])
def algo(request):
    if request.param == "continuous":
        return _algo(horizon=6)
    if "grid_nav" not in jmeta.list_envs():
        pytest.skip("grid_nav not registered")
    return _algo("grid_nav", "default", horizon=5)


def test_encode_inputs_one_hot_and_no_action_yet():
    space = Discrete(3)
    inputs = StepInputs(obs=jnp.array([2.0, 1.0]), prev_action=jnp.array(-1), prev_reward=jnp.array(0.5), prev_done=jnp.array(1.0))
    np.testing.assert_array_equal(encode_inputs(inputs, space), [2.0, 1.0, 0, 0, 0, 0.5, 1.0])
    inputs = dataclasses.replace(inputs, prev_action=jnp.array(2))
    np.testing.assert_array_equal(encode_inputs(inputs, space), [2.0, 1.0, 0, 0, 1, 0.5, 1.0])
    net = RecurrentActorCritic(space, hidden_size=4)
    assert net.input_size(Box(-1, 1, (2,))) == 7


def test_replay_reproduces_behaviour_log_probs(algo):
    """The learner's unroll of a recorded trial gives exactly the rollout's log-probabilities."""
    params, trials = _trials(algo, jax.random.key(0))
    log_prob, value, entropy = jax.jit(jax.vmap(lambda t: algo.network.unroll(params, t)))(trials)
    assert log_prob.shape == trials.mask.shape == value.shape == entropy.shape
    np.testing.assert_allclose(np.asarray(log_prob), np.asarray(trials.log_prob), atol=1e-5)
    # episode boundaries are visible: prev_done is 1 exactly at the first step of episodes 2..K
    done = np.asarray(trials.extras["prev_done"])
    assert np.all(done[:, 0, 0] == 0) and np.all(done[:, 1:, 0] == 1) and np.all(done[:, :, 1:] == 0)


def test_memory_crosses_episode_boundaries(algo):
    """Changing a reward seen in episode 1 changes the policy in episode 2 (the carry is kept)."""
    params, trials = _trials(algo, jax.random.key(1), num_tasks=1, trials=1)
    trial = jax.tree_util.tree_map(lambda x: x[0], trials)
    extras = dict(trial.extras)
    extras["prev_reward"] = extras["prev_reward"].at[0, 2].add(5.0)
    changed = dataclasses.replace(trial, extras=extras)
    lp0, _, _ = algo.network.unroll(params, trial)
    lp1, _, _ = algo.network.unroll(params, changed)
    np.testing.assert_allclose(lp0[0, :2], lp1[0, :2], atol=1e-6)  # the past is unchanged
    assert float(jnp.abs(lp0[1] - lp1[1]).max()) > 1e-4  # the next episode remembers


def test_truncated_bptt_changes_gradients_not_values():
    algo = _algo(horizon=6)
    params, trials = _trials(algo, jax.random.key(2), num_tasks=2, trials=1)
    trial = jax.tree_util.tree_map(lambda x: x[0], trials)
    steps = trial.mask.size

    def loss(p, truncation):
        lp, v, _ = algo.network.unroll(p, trial, truncation)
        return lp.sum() + v.sum()

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    full = grad(params, 0)
    same = grad(params, steps)  # a window as long as the trial cuts nothing
    cut = grad(params, 1)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(full), leaves(same), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(leaves(full), leaves(cut), strict=True)) > 1e-4
    values = jax.jit(lambda p, n: algo.network.unroll(p, trial, n)[1], static_argnums=1)
    np.testing.assert_allclose(values(params, 1), values(params, 0), atol=1e-6)


def test_trial_gae_crosses_episodes():
    rewards = jnp.array([[0.0, 0.0], [0.0, 1.0]])
    values = jnp.zeros((2, 2))
    mask = jnp.ones((2, 2))
    adv = trial_gae(rewards, values, mask, 0.5, 1.0)
    # the reward at the end of episode 2 reaches the first step of episode 1: 0.5^3
    np.testing.assert_allclose(adv, [[0.125, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(adv.reshape(-1), rl_returns.discounted_returns(rewards.reshape(-1), mask.reshape(-1), 0.5))


def test_ppo_loss_at_behaviour_params_has_unit_ratio(algo):
    params, trials = _trials(algo, jax.random.key(3))
    batch = algo.trial_batch(params, trials)
    _, info = jax.jit(algo.loss)(params, batch)
    assert abs(float(info["approx_kl"])) < 1e-6
    assert float(info["clip_fraction"]) == 0.0
    np.testing.assert_allclose(batch.targets, (batch.advantages + batch.old_values) * trials.mask, atol=1e-6)


def test_meta_step_updates_and_reports(algo):
    state = algo.init(jax.random.key(4))
    step = jax.jit(algo.meta_step)
    new_state, metrics = step(state, jax.random.key(5))
    assert int(new_state.iteration) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    k = algo.episodes_per_trial
    assert {f"train/return_episode{i}" for i in range(k)} <= set(metrics)
    np.testing.assert_allclose(float(metrics["train/return_trial"]), sum(float(metrics[f"train/return_episode{i}"]) for i in range(k)), rtol=1e-5, atol=1e-5)
    changed = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), state.params, new_state.params)
    assert max(jax.tree_util.tree_leaves(changed)) > 0
    assert step._cache_size() == 1
    step(new_state, jax.random.key(6))
    assert step._cache_size() == 1  # no recompilation per iteration
    assert algo.env_steps_per_iteration() == 4 * 1 * k * algo.env.spec.horizon


def test_evaluate_reports_every_episode(algo):
    state = algo.init(jax.random.key(7))
    tasks = sample_tasks(algo.task_dist, jax.random.key(8), 3)
    out = jax.jit(algo.evaluate)(state, tasks, jax.random.key(9))
    assert out.axis == "episode" and out.returns.shape == (3, algo.episodes_per_trial)
    longer = algo.with_eval_settings(eval_episodes=5, eval_deterministic=True)
    out = jax.jit(longer.evaluate)(state, tasks, jax.random.key(9))
    assert out.returns.shape == (3, 5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_minibatches": 3}, "must divide meta_batch_size * trials_per_task = 4"),
        ({"clip_eps": 0.0}, "rl2.clip_eps"),
        ({"hidden_size": 0}, "rl2.hidden_size"),
        ({"gamma": 1.5}, "rl2.gamma"),
        ({"episodes_per_trial": 0}, "rl2.episodes_per_trial"),
        ({"eval_trials_per_task": 0}, "rl2.eval_trials_per_task"),
        ({"bptt_truncation": -1}, "rl2.bptt_truncation"),
        ({"lr": -1.0}, "rl2.lr"),
        ({"reward_scale": 0.0}, "rl2.reward_scale"),
    ],
)
def test_invalid_rl2_settings_are_rejected(overrides, message):
    config = TrainConfig(algo="rl2", env="point_nav", env_variant="sparse", meta_batch_size=4,
                         algo_config=dataclasses.replace(RL2Config(), **overrides))
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        config.validate()


def test_rl2_built_from_python_validates_its_config():
    env, dist = jmeta.make("grid_nav")
    with pytest.raises(ConfigError, match="must divide meta_batch_size"):
        RL2(env, dist, dataclasses.replace(TINY, num_minibatches=3), meta_batch_size=4)


def test_registry_builds_rl2_and_config_round_trips():
    env, dist = jmeta.make("point_nav", "sparse")
    algo = make_algorithm("rl2", env, dist, TINY, 4)
    assert isinstance(algo, RL2) and algo.name == "rl2"
    config = TrainConfig(algo="rl2", algo_config=dataclasses.replace(TINY, embed_sizes=()))
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.slow
def test_rl2_runs_on_a_mujoco_env_through_the_host_physics_path():
    """Trials of cheetah_vel/varibad (2 episodes) on the C-engine path: nested vmaps over tasks and
    trials of a scan over episodes and steps, with the physics as one batched host callback."""
    config = dataclasses.replace(TINY, hidden_size=8, embed_sizes=(), head_sizes=(), ppo_epochs=1)
    algo = _algo("cheetah_vel", "varibad", config=config, meta_batch_size=2, horizon=3, physics="mujoco")
    assert algo.episodes_per_trial == 2
    state, metrics = jax.jit(algo.meta_step)(algo.init(jax.random.key(0)), jax.random.key(1))
    assert int(state.iteration) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert float(metrics["train/return_episode0"]) != 0.0
