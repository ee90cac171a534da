"""Unit tests of what each gradient-based method adds to the skeleton: FO-MAML's first-order
meta-gradient, Meta-SGD's learned step sizes, Reptile's outer step, ProMP's inner-KL penalty and
E-MAML's exploration term."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jmeta
from jmeta.algos import make_algorithm
from jmeta.algos.emaml import standardized_rewards
from jmeta.envs import RescaleActions
from jmeta.errors import ConfigError
from jmeta.rl import surrogates


def _algo(name: str, meta_batch_size: int = 3, **overrides):
    from jmeta.algos import algorithm_class

    env, dist = jmeta.make("point_nav", horizon=8)
    config = dataclasses.replace(algorithm_class(name).TINY, **overrides)
    return make_algorithm(name, RescaleActions(env), dist, config, meta_batch_size)


def _collect(algo, state, key=None):
    key = jax.random.key(3) if key is None else key
    tasks = algo.sample_tasks(key)
    keys = jax.random.split(jax.random.fold_in(key, 1), algo.meta_batch_size)
    c = algo.config
    return jax.vmap(lambda t, k: algo.collect_task(state.params, state.inner_lr, t, k, c.num_inner_steps,
                                                   c.episodes_per_task))(tasks, keys)


def test_fomaml_meta_gradient_is_the_post_update_gradient_at_the_adapted_params():
    """First order: d L(theta'(theta)) / d theta equals grad L evaluated at theta' (the Jacobian is I)."""
    fo = _algo("fomaml")
    state = fo.init(jax.random.key(0))
    batches, post, _ = _collect(fo, state)
    lr = state.inner_lr
    meta_grad, _ = ravel_pytree(jax.grad(fo.outer_loss)(state.params, lr, batches, post))

    def loss_at(adapted_per_task):
        log_prob = jax.vmap(fo.policy.log_prob)(adapted_per_task, post.traj.obs, post.traj.action)
        per_task = jax.vmap(surrogates.importance_objective)(log_prob, post.traj.log_prob,
                                                                         post.advantages, post.traj.mask)
        return -per_task.mean()

    adapted = jax.vmap(fo.adapt, in_axes=(None, None, 0))(state.params, lr, batches)
    per_task_grads = jax.grad(loss_at)(adapted)
    summed, _ = ravel_pytree(jax.tree_util.tree_map(lambda g: g.sum(axis=0), per_task_grads))
    np.testing.assert_allclose(np.asarray(meta_grad), np.asarray(summed), rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="fomaml.first_order: must be True"):
        _algo("fomaml", first_order=False)


def test_metasgd_learns_per_parameter_step_sizes():
    algo = _algo("metasgd")
    state = algo.init(jax.random.key(0))
    assert jax.tree_util.tree_structure(state.inner_lr) == jax.tree_util.tree_structure(state.params)
    assert all(np.allclose(np.asarray(x), 0.1) for x in jax.tree_util.tree_leaves(state.inner_lr))
    new_state, metrics = jax.jit(algo.meta_step)(state, jax.random.key(1))
    changed = [not np.allclose(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree_util.tree_leaves(state.inner_lr), jax.tree_util.tree_leaves(new_state.inner_lr), strict=True)]
    assert any(changed), "the outer step moved the step sizes"
    assert float(metrics["train/step_fraction"]) > 0


def test_reptile_moves_the_initialisation_to_the_mean_adapted_params():
    algo = _algo("reptile", outer_lr=1.0)
    state = algo.init(jax.random.key(0))
    batches, post, _ = _collect(algo, state, jax.random.key(5))
    new_params, _, _ = algo.outer_update(state, batches, post)
    adapted = jax.vmap(lambda b: algo.adapt(state.params, state.inner_lr, b, first_order=True))(batches)
    want = jax.tree_util.tree_map(lambda x: x.mean(axis=0), adapted)  # epsilon = 1: the mean itself
    for a, b in zip(jax.tree_util.tree_leaves(new_params), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    half = _algo("reptile", outer_lr=0.5)
    new_half, _, _ = half.outer_update(state, batches, post)
    for p, a, h in zip(jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(want),
                       jax.tree_util.tree_leaves(new_half), strict=True):
        np.testing.assert_allclose(np.asarray(h), np.asarray(p + 0.5 * (a - p)), rtol=1e-5, atol=1e-6)


def test_promp_inner_kl_is_zero_at_the_sampling_policy_and_penalised():
    algo = _algo("promp", num_inner_steps=2, inner_kl_coef=1.0)
    state = algo.init(jax.random.key(0))
    assert state.inner_kl_coef.shape == (2,)
    batches, post, _ = _collect(algo, state)
    old = jax.vmap(algo._inner_dists, in_axes=(None, None, 0))(state.params, state.inner_lr, batches)
    np.testing.assert_allclose(np.asarray(algo.inner_kls(state.params, state.inner_lr, batches, old)), 0.0, atol=1e-6)
    moved = jax.tree_util.tree_map(lambda x: x + 0.05, state.params)
    kls = np.asarray(algo.inner_kls(moved, state.inner_lr, batches, old))
    assert kls.shape == (2,) and np.all(kls > 0)
    _, _, metrics = algo.outer_update(state, batches, post)
    assert float(metrics["train/inner_kl"]) >= 0 and float(metrics["train/inner_kl_coef"]) == pytest.approx(1.0)
    adaptive = _algo("promp", num_inner_steps=2, adaptive_inner_kl=True, target_inner_kl=1e3)
    (_, coef), _, _ = adaptive.outer_update(adaptive.init(jax.random.key(0)), batches, post)
    np.testing.assert_allclose(np.asarray(coef), 5e-4 / 2)  # KL far below target / 1.5: halved


def test_promp_outer_trust_region_bounds_how_far_the_sampling_policies_move():
    """With an Adam step far too large (lr 1), the unbounded outer step moves the policies a long
    way; with ``outer_max_kl`` the kept steps stay inside the region (pre- and post-update)."""
    free = _algo("promp", ppo_lr=1.0, ppo_epochs=3)
    state = free.init(jax.random.key(0))
    batches, post, _ = _collect(free, state)
    _, _, loose = free.outer_update(state, batches, post)
    assert float(loose["train/kl"]) > 0.1 and "train/outer_epochs" not in loose
    bounded = _algo("promp", ppo_lr=1.0, ppo_epochs=3, outer_max_kl=0.05)
    (_, _), _, tight = bounded.outer_update(state, batches, post)
    assert float(tight["train/kl"]) <= 0.05 and float(tight["train/inner_kl"]) <= 0.05
    assert float(tight["train/outer_epochs"]) < 3
    small = _algo("promp", ppo_lr=1e-6, ppo_epochs=3, outer_max_kl=0.05)
    _, _, kept = small.outer_update(state, batches, post)
    assert float(kept["train/outer_epochs"]) == 3.0  # small steps are all kept
    with pytest.raises(ValueError, match="outer_max_kl"):
        _algo("promp", outer_max_kl=-1.0).config.validate("promp")


def test_emaml_exploration_term_rewards_pre_update_actions_that_paid_off():
    np.testing.assert_allclose(np.asarray(standardized_rewards(jnp.array([1.0, 3.0, 100.0]), jnp.array([1.0, 1.0, 0.0]))),
                               [-1.0, 1.0, 0.0], rtol=1e-6)
    algo = _algo("emaml")
    state = algo.init(jax.random.key(0))
    batches, post, _ = _collect(algo, state)
    term = algo.exploration_term(state.params, batches, post)
    # By hand: -mean_i[mean_t R~_i * mean_t log pi(pre-update actions of task i)].
    adjusted = standardized_rewards(post.traj.reward, post.traj.mask)
    r = np.asarray((adjusted * post.traj.mask).sum((1, 2)) / post.traj.mask.sum((1, 2)))
    pre = jax.tree_util.tree_map(lambda x: x[:, 0], batches.traj)
    log_prob = jax.vmap(algo.policy.log_prob, in_axes=(None, 0, 0))(state.params, pre.obs, pre.action)
    ll = np.asarray((log_prob * pre.mask).sum((1, 2)) / pre.mask.sum((1, 2)))
    np.testing.assert_allclose(float(term), -(r * ll).mean(), rtol=1e-5)
    # The outer loss is MAML's plus the term; its gradient is not MAML's.
    maml_like = _algo("emaml", exploration_weight=0.0)
    diff = algo.outer_loss(state.params, state.inner_lr, batches, post) - \
        maml_like.outer_loss(state.params, state.inner_lr, batches, post)
    np.testing.assert_allclose(float(diff), float(term), rtol=1e-5)


def test_cavia_adapts_only_the_context():
    algo = _algo("cavia", num_context_params=3)
    state = algo.init(jax.random.key(0))
    batches, post, _ = _collect(algo, state)
    theta, phi = jax.vmap(algo.adapt, in_axes=(None, None, 0))(state.params, state.inner_lr, batches)
    assert phi.shape == (algo.meta_batch_size, 3) and np.any(np.asarray(phi) != 0)
    for a, b in zip(jax.tree_util.tree_leaves(theta), jax.tree_util.tree_leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b))  # weights untouched by the inner loop
    # The pre-adaptation policy is the network with a zero context.
    obs = post.traj.obs[0]
    zero = (state.params, jnp.zeros(3))
    np.testing.assert_allclose(np.asarray(algo.policy.log_prob(state.params, obs, post.traj.action[0])),
                               np.asarray(algo.policy.log_prob(zero, obs, post.traj.action[0])), rtol=1e-6)
    # The meta-gradient reaches the weights through the context's adaptation (second order).
    grad, _ = ravel_pytree(jax.grad(algo.outer_loss)(state.params, state.inner_lr, batches, post))
    assert np.all(np.isfinite(np.asarray(grad))) and np.linalg.norm(np.asarray(grad)) > 0


@pytest.mark.parametrize("name", ["maml", "metasgd"])
def test_meta_test_step_size_after_the_first_step_is_scaled(name):
    """``eval_lr_scale_after_first`` (the MAML authors' test: step 1 at the full size, later steps at
    half): the meta-test equals a learner whose step size is scaled from the second step on, and
    1.0 leaves the meta-test exactly as before; a non-positive scale is refused in one line."""
    base = _algo(name, eval_adapt_steps=3, eval_episodes_per_task=2)
    halved = _algo(name, eval_adapt_steps=3, eval_episodes_per_task=2, eval_lr_scale_after_first=0.5)
    state = base.init(jax.random.key(0))
    tasks = base.sample_tasks(jax.random.key(1))
    key = jax.random.key(2)
    plain = base.evaluate(state, tasks, key).returns
    np.testing.assert_array_equal(_algo(name, eval_adapt_steps=3, eval_episodes_per_task=2,
                                        eval_lr_scale_after_first=1.0).evaluate(state, tasks, key).returns, plain)
    got = halved.evaluate(state, tasks, key).returns

    class ByHand(type(base)):
        def inner_lr_at(self, inner_lr, step):
            return jax.tree_util.tree_map(lambda x: x * jnp.where(step == 0, 1.0, 0.5), inner_lr)

    by_hand = ByHand(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    np.testing.assert_allclose(got, by_hand.evaluate(state, tasks, key).returns, rtol=1e-6)
    np.testing.assert_array_equal(got[:, :2], plain[:, :2])  # step 0 and the first step are unchanged
    assert not np.array_equal(got[:, 2:], plain[:, 2:])
    with pytest.raises(ConfigError, match="eval_lr_scale_after_first"):
        dataclasses.replace(base.config, eval_lr_scale_after_first=0.0).validate("x")
