"""MAESN's parts (per-episode latents, the latent REINFORCE inner step, the per-task latent table and
its KL, meta-learned step sizes, the prior at meta-test) and the run fields that give it its sparse
meta-test (``env_set`` / ``eval_env_set``)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.algos import make_algorithm
from jmeta.algos.maesn import TINY, LatentParams, LatentStepSizes, episode_latents
from jmeta.config import TrainConfig
from jmeta.envs import RescaleActions
from jmeta.envs.registry import parse_overrides
from jmeta.envs.wrappers import unwrap
from jmeta.errors import ConfigError
from jmeta.rollout import rollout_episodes
from jmeta.tasks import training_task_set


def _maesn(meta_batch_size: int = 3, env: str = "point_nav", variant: str = "semicircle", **overrides):
    env_, dist = jmeta.make(env, variant, horizon=8)
    return make_algorithm("maesn", RescaleActions(env_), dist, dataclasses.replace(TINY, **overrides), meta_batch_size)


def _task_params(algo, state, row: int = 0) -> LatentParams:
    return algo.task_start(state.params, jnp.asarray(row))


def test_one_latent_per_episode_feeds_the_policy():
    algo = _maesn()
    state = algo.init(jax.random.key(0))
    start = _task_params(algo, state, 2)
    task = algo.training_set.get(2)
    traj = jax.jit(lambda p: rollout_episodes(algo.env, algo.actor, p, task, jax.random.key(1), 4))(start)
    noise = np.asarray(traj.extras["noise"])  # [E, T, d]
    assert noise.shape == (4, 8, algo.config.latent_dim)
    np.testing.assert_array_equal(noise, np.broadcast_to(noise[:, :1], noise.shape))  # constant within an episode
    assert not np.allclose(noise[0, 0], noise[1, 0])  # a fresh draw per episode
    z = episode_latents(start, traj)
    np.testing.assert_allclose(np.asarray(z[:, 0]), np.asarray(start.mean + noise[:, 0] * jnp.exp(start.log_std)), rtol=1e-6)
    log_prob = algo.policy.log_prob((start.policy, z), traj.obs, traj.action)
    np.testing.assert_allclose(np.asarray(log_prob), np.asarray(traj.log_prob), rtol=1e-5, atol=1e-5)


def test_inner_step_is_reinforce_on_the_latent_with_the_step_sizes():
    algo = _maesn()
    state = algo.init(jax.random.key(0))
    start = _task_params(algo, state, 1)
    task = algo.training_set.get(1)
    traj = rollout_episodes(algo.env, algo.actor, start, task, jax.random.key(4), 6, next_obs=False)
    batch = algo.pg_batch(traj)
    lr = LatentStepSizes(jnp.asarray([0.3, 0.7]), jnp.asarray([0.2, 0.5]))
    new = algo.inner_update(start, batch, lr, first_order=False)

    # Hand-computed: L = -mean_e[log N(z_e; mu, sigma) A_e], A = standardised t=0 advantages.
    z = np.asarray(episode_latents(start, traj)[:, 0], np.float64)
    adv = np.asarray(batch.advantages[:, 0], np.float64)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    mu, log_std = np.asarray(start.mean, np.float64), np.asarray(start.log_std, np.float64)
    var = np.exp(2 * log_std)
    grad_mu = -np.mean(adv[:, None] * (z - mu) / var, axis=0)
    grad_log_std = -np.mean(adv[:, None] * ((z - mu) ** 2 / var - 1.0), axis=0)
    np.testing.assert_allclose(np.asarray(new.mean), mu - np.asarray(lr.mean) * grad_mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(new.log_std), log_std - np.asarray(lr.log_std) * grad_log_std,
                               rtol=1e-4, atol=1e-5)
    # The weights stay unless adapt_policy.
    for a, b in zip(jax.tree_util.tree_leaves(new.policy), jax.tree_util.tree_leaves(start.policy), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved = _maesn(adapt_policy=True).inner_update(start, batch, lr, first_order=False)
    assert any(not np.allclose(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree_util.tree_leaves(moved.policy), jax.tree_util.tree_leaves(start.policy), strict=True))


def test_step_size_decay_follows_the_authors_test_schedule():
    algo = _maesn(step_size_decay=0.5)
    lr = LatentStepSizes(jnp.ones(2), jnp.full(2, 2.0))
    scales = [float(algo.inner_lr_at(lr, jnp.asarray(k)).mean[0]) for k in range(4)]
    assert scales == [1.0, 1.0, 0.5, 0.25]


def test_meta_gradient_reaches_sampled_rows_step_sizes_and_weights_only():
    algo = _maesn(meta_batch_size=3)
    state = algo.init(jax.random.key(0))
    outer, _, post, _ = algo.collect_meta_batch(state, jax.random.key(7))
    ids = np.asarray(outer.ids)
    params_grad, lr_grad = jax.grad(lambda m: algo.outer_loss(*m, outer, post))((state.params, state.inner_lr))
    rows = np.abs(np.asarray(params_grad.latent_mean)).sum(axis=1)
    unsampled = np.setdiff1d(np.arange(algo.training_set.size), ids)
    assert (rows[unsampled] == 0).all() and (rows[ids] > 0).all()
    assert float(np.abs(np.asarray(lr_grad.mean)).sum()) > 0  # second order through the inner step
    assert any(float(np.abs(np.asarray(g)).sum()) > 0 for g in jax.tree_util.tree_leaves(params_grad.policy))
    # The KL term pulls the sampled rows' means to 0: its gradient is mean_i / N per row.
    kl_grad = jax.grad(lambda p: algo.latent_kl(p, outer.ids))(state.params)
    counts = np.bincount(ids, minlength=algo.training_set.size)[:, None]
    np.testing.assert_allclose(np.asarray(kl_grad.latent_mean), counts * np.asarray(state.params.latent_mean) / 3,
                               rtol=1e-5, atol=1e-7)


def test_meta_step_learns_the_table_and_step_sizes_unless_frozen():
    for learn in (True, False):
        algo = _maesn(learn_step_sizes=learn)
        state = algo.init(jax.random.key(0))
        new, metrics = jax.jit(algo.meta_step)(state, jax.random.key(1))
        assert np.isfinite([float(v) for v in metrics.values()]).all()
        assert {"train/latent_kl", "train/latent_std", "train/return_pre", "train/return_post"} <= set(metrics)
        assert not np.allclose(np.asarray(new.params.latent_mean), np.asarray(state.params.latent_mean))
        same_lr = np.allclose(np.asarray(new.inner_lr.mean), np.asarray(state.inner_lr.mean))
        assert same_lr != learn


def test_meta_test_starts_from_the_prior_not_the_table():
    algo = _maesn()
    state = algo.init(jax.random.key(0))
    tasks = jmeta.tasks.TaskBank.for_evaluation(algo.task_dist, 3).tasks
    out = jax.jit(algo.evaluate)(state, tasks, jax.random.key(2))
    shuffled = state.replace(params=state.params.replace(latent_mean=state.params.latent_mean + 5.0))
    again = jax.jit(algo.evaluate)(shuffled, tasks, jax.random.key(2))
    np.testing.assert_array_equal(np.asarray(out.returns), np.asarray(again.returns))
    assert out.returns.shape == (3, 2) and out.extras["success"].shape == (3, 2)


def test_training_set_is_the_envs_fixed_goals_or_a_fixed_draw():
    _, dist = jmeta.make("wheeled_nav")
    assert training_task_set(dist, 7, 0).size == 100  # MAESN's 100 training goals
    np.testing.assert_array_equal(np.asarray(training_task_set(dist, 7, 0).tasks.goal),
                                  np.asarray(dist.fixed_split.train.tasks.goal))
    _, free = jmeta.make("point_nav", "semicircle")
    a, b = training_task_set(free, 5, 3), training_task_set(free, 5, 3)
    assert a.size == 5
    np.testing.assert_array_equal(np.asarray(a.tasks.goal), np.asarray(b.tasks.goal))
    assert _maesn(num_train_tasks=5).init(jax.random.key(0)).params.latent_mean.shape == (5, 2)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("latent_dim", 0, "maesn.latent_dim: must be >= 1"),
    ("kl_weight", -0.1, "maesn.kl_weight: must be >= 0"),
    ("kl_weight", float("nan"), "maesn.kl_weight"),
    ("num_train_tasks", 0, "maesn.num_train_tasks: must be >= 1"),
    ("step_size_decay", 0.0, r"maesn.step_size_decay: must be in \(0, 1\]"),
    ("train_task_seed", -1, "maesn.train_task_seed"),
])
def test_bad_maesn_settings_are_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        _maesn(**{field: value})


# ---------------------------------------------------------------- env_set / eval_env_set


def test_parse_overrides_types_and_errors():
    assert parse_overrides("point_nav", "default", ["sparse=true", "goal_radius=0.3", "horizon=50"]) == {
        "sparse": True, "goal_radius": 0.3, "horizon": 50}
    assert parse_overrides("wheeled_nav", "default", ["reward=sparse"]) == {"reward": "sparse"}
    with pytest.raises(ConfigError, match="eval_env_set: unknown option 'sprase' for environment 'point_nav'; valid options are: .*sparse"):
        parse_overrides("point_nav", "default", ["sprase=true"], "eval_env_set")
    with pytest.raises(ConfigError, match="must look like FIELD=VALUE"):
        parse_overrides("point_nav", "default", ["sparse"])
    with pytest.raises(ConfigError, match=r"point_nav.horizon cannot be set from 'ten'"):
        parse_overrides("point_nav", "default", ["horizon=ten"])
    with pytest.raises(ConfigError, match=r"point_nav.sparse cannot be set from 'yes'"):
        parse_overrides("point_nav", "default", ["sparse=yes"])
    with pytest.raises(ConfigError, match="goal_radius cannot be set from 'nan'"):
        parse_overrides("point_nav", "default", ["goal_radius=nan"])


def test_run_config_checks_env_set_before_compiling():
    with pytest.raises(ConfigError, match="env_set: unknown option 'nope'"):
        TrainConfig(env_set=("nope=1",)).validate()
    with pytest.raises(ConfigError, match="eval_env_set: .*must look like FIELD=VALUE"):
        TrainConfig(eval_env_set=("sparse",)).validate()
    config = TrainConfig(env="point_nav", env_set=("goal_radius=0.3",), env_horizon=20, eval_env_set=("sparse=true",))
    config.validate()
    assert config.env_overrides() == {"goal_radius": 0.3, "horizon": 20}
    assert config.eval_env_overrides() == {"goal_radius": 0.3, "horizon": 20, "sparse": True}
    assert TrainConfig.from_dict(json_roundtrip(config.to_dict())) == config


def json_roundtrip(data):
    import json

    return json.loads(json.dumps(data))


def test_meta_test_env_takes_the_eval_overrides():
    from jmeta.trainer import build, build_meta_test

    config = TrainConfig(algo="maesn", env="point_nav", env_variant="semicircle", eval_env_set=("sparse=true",),
                         meta_batch_size=2, eval_tasks=3, algo_config=TINY)
    env, dist, algo = build(config)
    eval_algo, bank = build_meta_test(config, algo, dist)
    assert not unwrap(env).params.sparse and unwrap(eval_algo.env).params.sparse
    assert bank.size == 3 and eval_algo.training_set.size == algo.training_set.size
    plain = dataclasses.replace(config, eval_env_set=())
    same, _ = build_meta_test(plain, algo, dist)
    assert same is algo


def test_point_nav_reports_success_within_the_goal_radius():
    env, _ = jmeta.make("point_nav", "semicircle")
    task = jmeta.envs.toy.point_nav.PointNavTask(goal=jnp.asarray([0.0, 0.15]))
    _, state = env.reset(jax.random.key(0), task)
    out = env.step(jax.random.key(1), state, jnp.asarray([0.0, 0.0]), task)
    assert float(out.info["success"]) == 1.0  # distance 0.15 <= 0.2
    far = jmeta.envs.toy.point_nav.PointNavTask(goal=jnp.asarray([0.0, 1.0]))
    assert float(env.step(jax.random.key(1), state, jnp.zeros(2), far).info["success"]) == 0.0


def test_eval_table_shows_the_success_rate():
    from jmeta.algos.base import EvalOut
    from jmeta.evaluation import summarize

    out = EvalOut(returns=jnp.asarray([[1.0, 2.0], [3.0, 4.0]]), axis="step",
                  extras={"success": jnp.asarray([[0.0, 0.5], [0.5, 1.0]])})
    result = summarize(out)
    lines = result.table().splitlines()
    assert lines[0].split("|")[-1].strip() == "success"
    assert lines[2].split("|")[-1].strip() == "0.750"
    assert result.metrics()["eval/success_step1"] == 0.75
