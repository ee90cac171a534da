"""PEARL and its shared parts: the product-of-Gaussians encoder, SAC's losses, the tanh-Gaussian
log-probability, per-task replay, the data schedule and the meta-test trial (jmeta.algos.pearl,
following katerakelly/oyster)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.algos.pearl import TINY
from jmeta.config import TrainConfig
from jmeta.errors import ConfigError
from jmeta.networks.distributions import TanhGaussian
from jmeta.networks.encoders import ContextEncoder, GaussianPosterior, product_of_gaussians
from jmeta.rl import sac
from jmeta.rl.replay import replay_clear, replay_init, replay_insert, replay_sample
from jmeta.trainer import build

# ---------------------------------------------------------------- product of Gaussians


def test_product_of_gaussians_matches_closed_form():
    means = jnp.array([[1.0, -2.0], [3.0, 0.0], [0.5, 4.0]])
    variances = jnp.array([[1.0, 4.0], [2.0, 1.0], [0.5, 2.0]])
    post = product_of_gaussians(means, variances, jnp.ones(3))
    precision = (1 / variances).sum(axis=0)
    np.testing.assert_allclose(post.variance, 1 / precision, rtol=1e-6)
    np.testing.assert_allclose(post.mean, (means / variances).sum(axis=0) / precision, rtol=1e-6)
    # Two unit-variance factors at 0 and 2 in 1-D: N(1, 1/2).
    two = product_of_gaussians(jnp.array([[0.0], [2.0]]), jnp.ones((2, 1)), jnp.ones(2))
    np.testing.assert_allclose([two.mean[0], two.variance[0]], [1.0, 0.5], rtol=1e-6)


def test_product_of_gaussians_ignores_masked_factors_and_is_the_prior_when_empty():
    means = jnp.array([[1.0], [100.0]])
    variances = jnp.array([[2.0], [1e-3]])
    post = product_of_gaussians(means, variances, jnp.array([1.0, 0.0]))
    np.testing.assert_allclose([post.mean[0], post.variance[0]], [1.0, 2.0], rtol=1e-6)
    empty = product_of_gaussians(means, variances, jnp.zeros(2))
    np.testing.assert_array_equal(empty.mean, [0.0])
    np.testing.assert_array_equal(empty.variance, [1.0])


def test_encoder_posterior_is_permutation_invariant():
    encoder = ContextEncoder(latent_size=3, hidden_sizes=(16, 16))
    params = encoder.init(jax.random.key(0), 5)
    context = jax.random.normal(jax.random.key(1), (12, 5))
    mask = jnp.ones(12)
    perm = jax.random.permutation(jax.random.key(2), 12)
    a = encoder.posterior(params, context, mask)
    b = encoder.posterior(params, context[perm], mask)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.variance, b.variance, rtol=1e-5)
    # More context, tighter posterior: every precision adds.
    assert np.all(np.asarray(encoder.posterior(params, context[:3], jnp.ones(3)).variance) > np.asarray(a.variance))
    deterministic = dataclasses.replace(encoder, probabilistic=False)
    np.testing.assert_array_equal(deterministic.posterior(params, context, mask).variance, np.zeros(3))


def test_kl_to_standard_normal_closed_form():
    q = GaussianPosterior(jnp.array([1.0, 0.0]), jnp.array([1.0, 4.0]))
    expected = 0.5 * ((1 + 1 - 1 - 0) + (4 + 0 - 1 - math.log(4)))
    np.testing.assert_allclose(q.kl_to_standard_normal(), expected, rtol=1e-6)
    np.testing.assert_allclose(GaussianPosterior.prior(4).kl_to_standard_normal(), 0.0, atol=1e-7)


# ---------------------------------------------------------------- SAC losses


def test_bellman_target_hand_computed():
    reward = jnp.array([1.0, 5.0])  # already scaled
    terminated = jnp.array([0.0, 1.0])
    next_value = jnp.array([10.0, 10.0])
    np.testing.assert_allclose(sac.bellman_target(reward, terminated, next_value, 0.9), [1.0 + 9.0, 5.0])
    # Twin-Q soft value: min(2, 3) - 0.5 * (-1) = 2.5.
    np.testing.assert_allclose(sac.soft_value(jnp.array([2.0]), jnp.array([3.0]), jnp.array([-1.0]), 0.5), [2.5])


def test_critic_value_actor_losses_hand_computed():
    q1, q2, y = jnp.array([1.0, 2.0]), jnp.array([0.0, 2.0]), jnp.array([1.0, 3.0])
    np.testing.assert_allclose(sac.critic_loss(q1, q2, y), (0 + 1) / 2 + (1 + 1) / 2)
    # The target is not differentiated.
    grad_y = jax.grad(lambda t: sac.critic_loss(q1, q2, t))(y)
    np.testing.assert_array_equal(grad_y, [0.0, 0.0])
    v, min_q, log_prob = jnp.array([0.0, 1.0]), jnp.array([2.0, 2.0]), jnp.array([-1.0, 0.0])
    np.testing.assert_allclose(sac.value_loss(v, min_q, log_prob, 1.0), ((0 - 3) ** 2 + (1 - 2) ** 2) / 2)
    np.testing.assert_allclose(sac.actor_loss(log_prob, min_q, 2.0), np.mean([2 * -1 - 2, 0 - 2]))


def test_temperature_loss_raises_alpha_when_entropy_is_below_target():
    log_prob = jnp.array([1.0, 1.0])  # entropy estimate -1, below a target of 0
    grad = jax.grad(sac.temperature_loss)(jnp.asarray(0.0), log_prob, 0.0)
    assert float(grad) < 0  # gradient descent increases log_alpha
    np.testing.assert_allclose(sac.polyak({"w": jnp.array(0.0)}, {"w": jnp.array(1.0)}, 0.25)["w"], 0.25)


def test_tanh_gaussian_log_prob_includes_the_change_of_variables():
    dist = TanhGaussian(jnp.array([0.3, -0.5]), jnp.log(jnp.array([0.7, 1.2])))
    key = jax.random.key(3)
    action, log_prob = dist.sample_and_log_prob(key)
    u = dist.mean + jnp.exp(dist.log_std) * jax.random.normal(key, (2,))
    normal = -0.5 * jnp.sum(((u - dist.mean) / jnp.exp(dist.log_std)) ** 2 + 2 * dist.log_std + math.log(2 * math.pi))
    expected = normal - jnp.sum(jnp.log(1 - jnp.tanh(u) ** 2))
    np.testing.assert_allclose(action, jnp.tanh(u), rtol=1e-6)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
    np.testing.assert_allclose(dist.log_prob(action), expected, rtol=1e-4)


# ---------------------------------------------------------------- replay


def _items(values):
    values = jnp.asarray(values, jnp.float32)
    return {"x": values, "y": jnp.stack([values, -values], axis=-1)}


def test_replay_inserts_valid_items_contiguously_and_wraps():
    buf = replay_init({"x": jnp.zeros(()), "y": jnp.zeros(2)}, num_buffers=3, capacity=4)
    assert buf.nbytes() == 3 * 4 * 3 * 4
    items = jax.tree_util.tree_map(lambda x: x[None], _items([1, 2, 3]))
    buf = replay_insert(buf, jnp.array([1]), items, jnp.array([[True, False, True]]))
    np.testing.assert_array_equal(buf.size, [0, 2, 0])
    np.testing.assert_array_equal(buf.data["x"][1, :2], [1, 3])
    # Wrap: 3 more items into buffer 1 overwrite the oldest.
    buf = replay_insert(buf, jnp.array([1]), jax.tree_util.tree_map(lambda x: x[None], _items([4, 5, 6])),
                        jnp.ones((1, 3), bool))
    np.testing.assert_array_equal(buf.size, [0, 4, 0])
    np.testing.assert_array_equal(buf.data["x"][1], [6, 3, 4, 5])
    np.testing.assert_array_equal(buf.data["y"][1, 0], [6, -6])
    # A repeated index appends twice.
    twice = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 10]), _items([7]))
    buf = replay_insert(buf, jnp.array([0, 0]), twice, jnp.ones((2, 1), bool))
    np.testing.assert_array_equal(buf.data["x"][0, :2], [7, 17])
    buf = replay_clear(buf, jnp.array([0]))
    np.testing.assert_array_equal(buf.size, [0, 4, 0])
    with pytest.raises(ValueError, match="capacity 4"):
        replay_insert(buf, jnp.array([1]), jax.tree_util.tree_map(lambda x: x[None], _items(range(5))),
                      jnp.ones((1, 5), bool))


def test_replay_samples_only_stored_items():
    buf = replay_init({"x": jnp.zeros(())}, num_buffers=2, capacity=100)
    buf = replay_insert(buf, jnp.array([0, 1]), {"x": jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])},
                        jnp.ones((2, 3), bool))
    batch = jax.jit(replay_sample, static_argnums=3)(buf, jax.random.key(0), jnp.array([1, 0, 1]), 500)
    assert batch["x"].shape == (3, 500)
    assert set(np.unique(batch["x"][0])) == {4.0, 5.0, 6.0}
    assert set(np.unique(batch["x"][1])) == {1.0, 2.0, 3.0}


# ---------------------------------------------------------------- PEARL


def _pearl(**overrides):
    config = TrainConfig(algo="pearl", env="point_nav", env_variant="pearl", meta_batch_size=4,
                         algo_config=dataclasses.replace(TINY, **overrides))
    return build(config)


def test_episode_schedule_follows_oyster():
    """sparse-point-robot: 100 prior steps (5 episodes of 20), 900 posterior steps (45 episodes): the
    first posterior episode still uses the prior z (oyster's clear_z); point-robot: 200 prior, 200
    extra (replay only)."""
    _, _, learner = _pearl(num_steps_prior=100, num_steps_posterior=900, num_extra_rl_steps_posterior=0,
                           replay_capacity=1000)
    posterior, to_encoder = learner.episode_schedule
    assert len(posterior) == 50 and not posterior[:6].any() and posterior[6:].all()
    assert to_encoder.all()
    assert learner.env_steps_per_iteration() == TINY.num_tasks_sample * 50 * 20
    _, _, learner = _pearl(num_steps_prior=200, num_steps_posterior=0, num_extra_rl_steps_posterior=200,
                           replay_capacity=1000)
    posterior, to_encoder = learner.episode_schedule
    assert list(posterior) == [False] * 11 + [True] * 9
    assert list(to_encoder) == [True] * 10 + [False] * 10
    assert learner.headline()["train/return_posterior"] == "post"


def test_buffers_follow_the_collection_schedule():
    _, _, learner = _pearl(num_steps_prior=20, num_steps_posterior=20, num_extra_rl_steps_posterior=40,
                           num_initial_steps=40)
    state = learner.init(jax.random.key(0))
    assert learner.training_set.size == 80  # oyster's 80 training goals
    np.testing.assert_array_equal(state.replay.size, np.full(80, 40))
    np.testing.assert_array_equal(state.encoder_replay.size, np.full(80, 40))
    new, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    added = np.asarray(new.replay.size - state.replay.size)
    assert added.sum() == TINY.num_tasks_sample * 80 and set(np.unique(added)) <= {0, 80, 160}
    touched = added > 0
    # The collected tasks' encoder buffers were cleared, then got the prior and posterior episodes.
    np.testing.assert_array_equal(np.asarray(new.encoder_replay.size)[touched], 40)
    np.testing.assert_array_equal(np.asarray(new.encoder_replay.size)[~touched], 40)
    assert np.isfinite(float(metrics["train/return_posterior"]))


def test_meta_test_trial_keeps_the_prior_z_then_uses_the_posterior():
    _, dist, learner = _pearl(eval_exploration_episodes=2)
    state = learner.init(jax.random.key(0))
    task = jax.tree_util.tree_map(lambda x: x[0], dist.held_out.tasks)
    traj, zs = jax.jit(lambda p, k: learner.trial(p, task, k, 4))(state.params, jax.random.key(1))
    assert traj.reward.shape == (4, 20) and zs.shape == (4, TINY.latent_size)
    np.testing.assert_array_equal(zs[0], zs[1])  # exploration episodes share the first prior draw
    assert not np.allclose(zs[1], zs[2]) and not np.allclose(zs[2], zs[3])  # posterior draws after each episode


def test_sparse_variant_trains_sac_on_the_dense_reward():
    config = TrainConfig(algo="pearl", env="point_nav", env_variant="pearl_sparse", meta_batch_size=4,
                         algo_config=TINY)
    _, _, learner = build(config)
    state = learner.init(jax.random.key(0))
    stored = jax.tree_util.tree_map(lambda x: x[:, : int(state.replay.size[0])], state.replay.data)
    assert float(stored.reward.min()) >= 0.0  # the sparse reward in the context
    assert float(stored.sac_reward.max()) < 0.0  # -distance for SAC
    no_dense = dataclasses.replace(learner, config=dataclasses.replace(TINY, dense_sac_reward=False))
    stored = no_dense.init(jax.random.key(0)).replay.data
    np.testing.assert_array_equal(stored.sac_reward, stored.reward)


@pytest.mark.parametrize(("field", "value"), [("kl_lambda", -1.0), ("tau", 0.0), ("reward_scale", float("nan")),
                                               ("critic", "q"), ("batch_size", 0), ("eval_exploration_episodes", 0),
                                               ("num_steps_prior", -1)])
def test_bad_config_is_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"pearl.{field}"):
        _pearl(**{field: value})


def test_replay_capacity_below_one_collection_is_refused_before_compiling():
    # TINY: 10 prior + 10 extra steps -> 2 episodes of 20; 20 initial steps -> 1 episode: 40 steps at most.
    with pytest.raises(ConfigError, match=r"pearl.replay_capacity: must hold one collection per task \(40 steps"):
        _pearl(replay_capacity=39)
    _pearl(replay_capacity=40)


def test_non_vector_observations_are_refused():
    from jmeta.algos.pearl import PEARL
    from jmeta.spaces import Box

    env, dist, _ = _pearl()
    image_spec = dataclasses.replace(env.spec, observation_space=Box(0.0, 1.0, (4, 4, 3)))
    image_env = type("ImageEnv", (), {"spec": image_spec})()
    with pytest.raises(ConfigError, match="pearl: needs vector observations"):
        PEARL(env=image_env, task_dist=dist, config=TINY, meta_batch_size=4)


def test_discrete_env_is_refused():
    config = TrainConfig(algo="pearl", env="grid_nav", algo_config=TINY, meta_batch_size=4)
    with pytest.raises(ConfigError, match="continuous"):
        build(config)


@pytest.mark.parametrize("critic", ["target_q"])
def test_target_q_critic_and_learned_temperature_run(critic):
    _, dist, learner = _pearl(critic=critic, auto_alpha=True, alpha=0.5)
    state = learner.init(jax.random.key(0))
    assert "vf" not in state.params and "log_alpha" in state.params
    new, metrics = jax.jit(learner.meta_step)(state, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(new.params["log_alpha"]) != math.log(0.5)


# ---------------------------------------------------------------- point_nav's PEARL variants


def test_point_nav_pearl_goals_are_oysters():
    _, dist = jmeta.make("point_nav", "pearl")
    rng = np.random.RandomState(1337)  # oyster: np.random.seed(1337); uniform(-1, 1) for x, then y
    goals = np.array([[rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)] for _ in range(100)], np.float32)
    np.testing.assert_allclose(dist.fixed_split.train.tasks.goal, goals[:80], rtol=1e-6)
    np.testing.assert_allclose(dist.held_out.tasks.goal, goals[80:], rtol=1e-6)
    _, sparse = jmeta.make("point_nav", "pearl_sparse")
    goals = sparse.fixed_split.train.tasks.goal
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(goals[:, 1]) >= -1e-6)
    np.testing.assert_allclose(goals[0], [0.99798668, 0.06342392], rtol=1e-5)  # numpy shuffle under seed 1337


def test_point_nav_pearl_dynamics():
    env, dist = jmeta.make("point_nav", "pearl")
    task = dist.held_out.get(0)
    obs, state = env.reset(jax.random.key(0), task)
    other, _ = env.reset(jax.random.key(1), task)
    assert not np.allclose(obs, other) and np.all(np.abs(np.asarray(obs)) <= 1.0)  # U[-1, 1]^2 starts
    out = env.step(jax.random.key(2), state.replace(position=task.goal), jnp.zeros(2), task)
    assert not bool(out.terminated)  # oyster's point robot never terminates
    assert env.spec.horizon == 20 and env.spec.episodes_per_trial == 3
    np.testing.assert_allclose(out.info["dense_reward"], -out.info["distance"])


def test_meta_test_reports_a_posterior_episode_on_single_episode_envs():
    config = TrainConfig(algo="pearl", env="point_nav", env_variant="pearl", env_set=("episodes_per_trial=1",),
                         meta_batch_size=4, algo_config=dataclasses.replace(TINY, eval_exploration_episodes=2))
    _, _, learner = build(config)
    assert learner.num_eval_episodes == 3  # 2 exploration episodes with the prior z, then the posterior
    explicit = dataclasses.replace(learner, config=dataclasses.replace(learner.config, eval_episodes=5))
    assert explicit.num_eval_episodes == 5
