"""VariBAD and task inference and their shared parts: the trial encoder's beliefs, the KL terms, the
decoders, running statistics, trial replay without replacement, task features and the agreement of
the beliefs the agent acted on with the ones the VAE trains (jmeta.algos.varibad, following
lmzintgraf/varibad)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.algos import make_algorithm
from jmeta.algos.varibad import TINY, consumed_inputs
from jmeta.envs.base import task_features
from jmeta.errors import ConfigError
from jmeta.networks.belief import RewardDecoder, TrialEncoder, gaussian_kl, kl_to_previous
from jmeta.rl.replay import replay_init, replay_insert, replay_sample
from jmeta.rl.running_stats import running_stats_init, running_stats_normalize, running_stats_update
from jmeta.spaces import Discrete
from jmeta.tasks import sample_tasks
from jmeta.types import StepInputs

# ---------------------------------------------------------------- KL terms


def test_gaussian_kl_matches_the_closed_form_and_is_zero_for_equal_gaussians():
    mq, lq = jnp.array([0.5, -1.0]), jnp.log(jnp.array([2.0, 0.5]))
    mp, lp = jnp.array([0.0, 1.0]), jnp.log(jnp.array([1.0, 4.0]))
    # Per dim: 0.5 * (log(vp / vq) - 1 + vq / vp + (mq - mp)^2 / vp).
    expected = 0.5 * ((np.log(1 / 2) - 1 + 2 + 0.25) + (np.log(4 / 0.5) - 1 + 0.5 / 4 + 4 / 4))
    np.testing.assert_allclose(gaussian_kl(mq, lq, mp, lp), expected, rtol=1e-6)
    np.testing.assert_allclose(gaussian_kl(mq, lq, mq, lq), 0.0, atol=1e-7)


def test_kl_to_previous_chains_beliefs_and_starts_at_the_standard_normal():
    means = jnp.array([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    logvars = jnp.array([[0.0, 0.0], [0.0, -1.0], [0.5, -1.0]])
    kl = kl_to_previous(means, logvars)
    assert kl.shape == (3,)
    np.testing.assert_allclose(kl[0], 0.0, atol=1e-7)  # the prior N(0, I) against N(0, I)
    np.testing.assert_allclose(kl[1], gaussian_kl(means[1], logvars[1], means[0], logvars[0]), rtol=1e-6)
    np.testing.assert_allclose(kl[2], gaussian_kl(means[2], logvars[2], means[1], logvars[1]), rtol=1e-6)
    to_prior = kl_to_previous(means, logvars, to_standard_normal=True)
    zeros = jnp.zeros(2)
    np.testing.assert_allclose(to_prior[2], gaussian_kl(means[2], logvars[2], zeros, zeros), rtol=1e-6)


# ---------------------------------------------------------------- encoder and decoders


def _inputs(length: int, key) -> StepInputs:
    k1, k2, k3 = jax.random.split(key, 3)
    return StepInputs(obs=jax.random.normal(k1, (length, 2)), prev_action=jax.random.randint(k2, (length,), 0, 5),
                      prev_reward=jax.random.normal(k3, (length,)), prev_done=jnp.zeros((length,)))


def test_encoder_gives_the_prior_then_one_belief_per_input_and_skips_invalid_inputs():
    enc = TrialEncoder(Discrete(5), latent_size=3, hidden_size=8, state_embed=4, action_embed=4, reward_embed=4)
    params = enc.init(jax.random.key(0), obs_size=2)
    inputs = _inputs(6, jax.random.key(1))
    encode = jax.jit(enc.encode)
    means, logvars = encode(params, inputs, jnp.ones(6))
    assert means.shape == logvars.shape == (7, 3)
    prior_mean, prior_logvar = enc.prior(params)
    np.testing.assert_allclose(means[0], prior_mean)
    np.testing.assert_allclose(logvars[0], prior_logvar)
    # Step by step agrees with the scan.
    h, step = enc.initial_hidden(), jax.jit(enc.step)
    for t in range(6):
        h, m, _ = step(params, h, jax.tree_util.tree_map(lambda x, t=t: x[t], inputs))
        np.testing.assert_allclose(means[t + 1], m, rtol=1e-5, atol=1e-6)
    # An invalid input leaves the belief unchanged, and the next valid one continues from it.
    valid = jnp.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    masked_means, _ = encode(params, inputs, valid)
    np.testing.assert_allclose(masked_means[2], masked_means[1])
    skipped = jax.tree_util.tree_map(lambda x: jnp.concatenate([x[:1], x[2:]]), inputs)
    direct, _ = encode(params, skipped, jnp.ones(5))
    np.testing.assert_allclose(masked_means[3:], direct[2:], rtol=1e-5, atol=1e-6)


def test_multi_head_reward_decoder_reads_the_head_of_the_next_state():
    dec = RewardDecoder(Discrete(5), kind="bernoulli", multi_head=True, num_states=25, layers=(8,))
    params = dec.init(jax.random.key(0), latent_size=3, obs_size=2)
    z = jax.random.normal(jax.random.key(1), (4, 3))
    index = jnp.array([0, 7, 24, 7])
    out = dec.predict(params, z, None, jnp.zeros(4, jnp.int32), None, index)
    heads = dec._net.apply({"params": params}, z, None, None, None)
    np.testing.assert_allclose(out, heads[jnp.arange(4), index], rtol=1e-6)
    # Bernoulli loss is the binary cross-entropy of r > 0.
    loss = dec.loss(jnp.array([0.0, 2.0]), jnp.array([1.0, -0.1]))
    np.testing.assert_allclose(loss, [np.log(2.0), np.log1p(np.exp(2.0))], rtol=1e-6)


# ---------------------------------------------------------------- running statistics, replay, task features


def test_running_stats_merge_batches_exactly_and_ignore_masked_rows():
    x = jax.random.normal(jax.random.key(0), (50, 3)) * 3.0 + 1.0
    mask = (jnp.arange(50) % 5 != 0).astype(jnp.float32)
    stats = running_stats_init(3)
    for chunk in range(5):
        rows = slice(10 * chunk, 10 * chunk + 10)
        stats = running_stats_update(stats, x[rows], mask[rows])
    kept = np.asarray(x)[np.asarray(mask) > 0]
    np.testing.assert_allclose(stats.mean, kept.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var, kept.var(axis=0), rtol=1e-3)
    normalized = running_stats_normalize(stats, jnp.asarray(kept))
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-3)


def test_trial_replay_draws_distinct_held_trials_without_replacement():
    buf = replay_init({"x": jnp.zeros(())}, num_buffers=1, capacity=10)
    buf = replay_insert(buf, jnp.zeros(1, jnp.int32), {"x": jnp.arange(1.0, 7.0)[None]}, jnp.ones((1, 6), bool))
    for seed in range(20):
        drawn = np.asarray(replay_sample(buf, jax.random.key(seed), jnp.zeros(1, jnp.int32), 6, replace=False)["x"][0])
        assert sorted(drawn) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # every held trial once, never an empty slot


@pytest.mark.parametrize("name", jmeta.list_envs())
def test_every_env_has_finite_task_features(name):
    env, dist = jmeta.make(name)
    features = jax.jit(lambda k: task_features(env, dist.sample(k)))(jax.random.key(0))
    assert features.ndim == 1 and 1 <= features.shape[0] <= 600 and features.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(features)))


def test_task_features_flatten_the_task_or_use_the_env_s_own():
    env, dist = jmeta.make("grid_nav")
    task = dist.sample(jax.random.key(0))
    np.testing.assert_array_equal(task_features(env, task), np.asarray(task.goal, np.float32))
    env, dist = jmeta.make("cheetah_vel")
    assert task_features(env, dist.sample(jax.random.key(0))).shape == (1,)
    grid, _ = jmeta.make("grid_nav")
    np.testing.assert_array_equal(grid.state_index(jnp.array([[0.0, 0.0], [2.0, 3.0], [4.0, 4.0]])), [0, 13, 24])


# ---------------------------------------------------------------- the algorithm


def _algo(config=TINY, env="grid_nav", **env_overrides):
    env, dist = jmeta.make(env, **env_overrides)
    return make_algorithm("varibad", env, dist, config, meta_batch_size=4), dist


def test_beliefs_the_agent_acted_on_are_the_ones_the_vae_trains():
    """The context recorded while acting (belief j at step j, the prior at step 0, across episode
    boundaries) equals the encoder's re-encoding of the stored trial (the VAE's and
    rl_through_encoder's view)."""
    algo, dist = _algo(dataclasses.replace(TINY, action_embed=3), horizon=5)
    state = algo.init(jax.random.key(0))
    tasks = sample_tasks(dist, jax.random.key(1), 3)

    @jax.jit
    def run(state, tasks):
        traj = algo.collect(state.params, state.norm, tasks, jax.random.key(2), 2, algo.episodes_per_trial)
        trials = algo.vae_trials(traj, tasks)
        return traj, trials, jax.vmap(lambda t: algo.trial_beliefs(state.params["encoder"], t))(trials)

    traj, trials, (means, logvars, valid) = run(state, tasks)
    recorded = traj.extras["context"].reshape(6, algo.trial_length, -1)
    assert means.shape == (6, algo.trial_length + 1, TINY.latent_size)
    np.testing.assert_allclose(recorded, jnp.concatenate([means[:, :-1], logvars[:, :-1]], axis=-1),
                               rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(valid) == 1.0)
    inputs, _ = consumed_inputs(jax.tree_util.tree_map(lambda x: x[0], trials))
    # The last input is the trial's final transition: its next observation, action and reward.
    np.testing.assert_array_equal(inputs.obs[-1], trials.next_obs[0, -1])
    np.testing.assert_array_equal(inputs.prev_reward[-1], trials.reward[0, -1])


def test_elbo_terms_count_every_belief_and_transition_or_the_subsample():
    config = dataclasses.replace(TINY, decode_task=True)
    algo, dist = _algo(config, horizon=3)
    state = algo.init(jax.random.key(0))
    tasks = sample_tasks(dist, jax.random.key(1), 4)
    sub = dataclasses.replace(algo, config=dataclasses.replace(config, subsample_elbos=1, subsample_decodes=1))

    @jax.jit
    def run(state, tasks):
        traj = algo.collect(state.params, state.norm, tasks, jax.random.key(2), 1, algo.episodes_per_trial)
        trial = jax.tree_util.tree_map(lambda x: x[0], algo.vae_trials(traj, tasks))
        means, logvars, _ = algo.trial_beliefs(state.params["encoder"], trial)
        return (algo.elbo_terms(state.params, trial, jax.random.key(3)), kl_to_previous(means, logvars).sum(),
                sub.elbo_terms(state.params, trial, jax.random.key(3)))

    terms, kl_sum, one = run(state, tasks)
    assert set(terms) == {"kl", "reward_loss", "task_loss"}
    np.testing.assert_allclose(terms["kl"], kl_sum, rtol=1e-5)
    # Subsampling 1 ELBO term x 1 transition: the reward loss is one transition's loss.
    assert float(one["reward_loss"]) < float(terms["reward_loss"]) / 5


def test_policy_input_options_build_and_step():
    for policy_input in ("task", "none"):
        algo, _ = _algo(dataclasses.replace(TINY, policy_input=policy_input), horizon=3)
        state = algo.init(jax.random.key(0))
        new_state, metrics = jax.jit(algo.meta_step)(state, jax.random.key(1))
        assert int(new_state.iteration) == 1 and np.isfinite(float(metrics["train/vae_loss"]))
    assert algo.actor().privileged is False
    task_algo, _ = _algo(dataclasses.replace(TINY, policy_input="task"), horizon=3)
    assert task_algo.actor().privileged and task_algo.context_size == 2


def test_rl_through_encoder_changes_the_encoder_in_the_ppo_step():
    algo, _ = _algo(dataclasses.replace(TINY, rl_through_encoder=True, vae_batch_trials=16), horizon=3)
    state = algo.init(jax.random.key(0))
    new_state, _ = jax.jit(algo.meta_step)(state, jax.random.key(1))  # the VAE waits for 16 trials: PPO alone
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state.params["encoder"],
                                     new_state.params["encoder"])
    assert any(jax.tree_util.tree_leaves(changed))
    plain, _ = _algo(dataclasses.replace(TINY, vae_batch_trials=16), horizon=3)
    plain_state = plain.init(jax.random.key(0))
    after, _ = jax.jit(plain.meta_step)(plain_state, jax.random.key(1))
    for a, b in zip(jax.tree_util.tree_leaves(plain_state.params["encoder"]),
                    jax.tree_util.tree_leaves(after.params["encoder"]), strict=True):
        np.testing.assert_array_equal(a, b)  # neither PPO nor (not yet) the VAE touched it


@pytest.mark.parametrize(("field", "value", "message"), [
    ("latent_size", 0, "varibad.latent_size: must be >= 1"),
    ("kl_weight", float("nan"), "kl_weight"),
    ("reward_decoder", "poisson", "varibad.reward_decoder: must be 'bernoulli' or 'gaussian'"),
    ("policy_input", "oracle", "varibad.policy_input"),
    ("vae_batch_trials", 100, "varibad.vae_batch_trials: must be <= vae_buffer_trials"),
    ("num_minibatches", 3, "varibad.num_minibatches: must divide"),
    ("rl_through_encoder", True, "varibad.rl_through_encoder: needs policy_input='belief'"),
])
def test_bad_config_is_refused_naming_the_field(field, value, message):
    config = dataclasses.replace(TINY, **{field: value})
    if field == "rl_through_encoder":
        config = dataclasses.replace(config, policy_input="task")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _algo(config)


def test_multi_head_reward_needs_discrete_states():
    with pytest.raises(ConfigError, match="varibad.reward_multi_head: needs an env with discrete states"):
        _algo(dataclasses.replace(TINY, reward_multi_head=True), env="point_nav")


def test_reward_normalisation_divides_by_the_running_return_std():
    algo, _ = _algo(dataclasses.replace(TINY, normalize_rewards=True, gamma=0.5), horizon=2)
    state = algo.init(jax.random.key(0))
    assert set(state.norm) == {"obs", "context", "return"}
    example = algo._example_trial()  # L = 4 * 2 steps
    trials = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), example)
    trials = trials.replace(reward=jnp.ones_like(trials.reward), mask=jnp.ones_like(trials.mask))
    rewards, stats = algo.ppo_rewards(state.norm, trials)
    running = np.array([sum(0.5**i for i in range(t + 1)) for t in range(algo.trial_length)])  # 1, 1.5, 1.75, ...
    np.testing.assert_allclose(stats.var[0], running.var(), rtol=1e-3)
    np.testing.assert_allclose(rewards, 1.0 / np.sqrt(running.var()), rtol=1e-3)
    plain, _ = _algo(TINY, horizon=2)
    assert "return" not in plain.init(jax.random.key(0)).norm
