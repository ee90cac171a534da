"""Surrogate objectives: gradients of VPG/LVC/DiCE/PPO, and the MAML meta-gradient they give.

The key test is second-order: on a 3-armed bandit the exact meta-objective
``F(theta) = J(theta + alpha grad J(theta))`` is known in closed form, so its gradient (central
finite differences in float64) can be compared with the meta-gradient that MAML computes from
sampled actions through :func:`jmeta.adaptation.inner_step`. LVC and DiCE estimate it without bias;
the first-order approximation and the naive VPG surrogate do not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmeta import adaptation
from jmeta.networks import MLPPolicy
from jmeta.rl import returns as rl_returns
from jmeta.rl import surrogates

E, T, OBS, ACT = 3, 6, 3, 2


@pytest.fixture(scope="module")
def problem():
    """A small Gaussian policy and a random masked batch [E, T] (episodes end early)."""
    policy = MLPPolicy.gaussian(action_dim=ACT, hidden_sizes=(8,), activation="tanh", init_std=0.7)
    params = jax.jit(policy.init, static_argnums=1)(jax.random.key(0), (OBS,))
    k1, k2, k3, k4 = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(k1, (E, T, OBS))
    actions = jax.random.normal(k2, (E, T, ACT))
    rewards = jax.random.normal(k3, (E, T))
    baseline = 0.5 * jax.random.normal(k4, (E, T))
    valid = jnp.array([T, 4, 2])
    mask = (jnp.arange(T)[None] < valid[:, None]).astype(jnp.float32)
    rewards = rewards * mask
    log_prob_fn = jax.jit(lambda p: policy.log_prob(p, obs, actions))
    return dict(
        policy=policy,
        params=params,
        obs=obs,
        actions=actions,
        rewards=rewards,
        baseline=baseline * mask,
        mask=mask,
        log_prob_fn=log_prob_fn,
    )


def _flat(tree):
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree_util.tree_leaves(tree)])


def test_lvc_gradient_equals_vpg_gradient(problem):
    lp, mask = problem["log_prob_fn"], problem["mask"]
    adv = problem["rewards"] - problem["baseline"]
    g_lvc = jax.jit(jax.grad(lambda p: surrogates.lvc_objective(lp(p), adv, mask)))(
        problem["params"]
    )
    g_vpg = jax.jit(jax.grad(lambda p: surrogates.vpg_objective(lp(p), adv, mask)))(
        problem["params"]
    )
    f_lvc, f_vpg = _flat(g_lvc), _flat(g_vpg)
    assert np.abs(f_vpg).max() > 1e-3  # a real gradient
    np.testing.assert_allclose(f_lvc, f_vpg, rtol=1e-5, atol=1e-6)


def test_lvc_value_is_masked_mean_advantage(problem):
    lp, mask = problem["log_prob_fn"], problem["mask"]
    adv = problem["rewards"] + 1.0
    value = surrogates.lvc_objective(lp(problem["params"]), adv, mask)
    want = float(np.sum(np.asarray(adv) * np.asarray(mask)) / np.sum(np.asarray(mask)))
    np.testing.assert_allclose(value, want, rtol=1e-6)
    # VPG's value is the masked mean of log_prob * advantage.
    lpv = np.asarray(lp(problem["params"]))
    vpg = surrogates.vpg_objective(lp(problem["params"]), adv, mask)
    np.testing.assert_allclose(
        vpg, np.sum(lpv * np.asarray(adv) * np.asarray(mask)) / np.sum(np.asarray(mask)), rtol=1e-5
    )


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_dice_gradient_is_policy_gradient(problem, gamma):
    lp, mask = problem["log_prob_fn"], problem["mask"]
    rewards, baseline = problem["rewards"], problem["baseline"]
    grad_dice = jax.jit(
        jax.grad(lambda p: surrogates.dice_objective(lp(p), rewards, baseline, mask, gamma))
    )
    g_dice = _flat(grad_dice(problem["params"]))

    # Expected: sum_t grad log pi_t gamma^t (R_t - b_t) / num_episodes over valid steps,
    # with R_t the discounted return-to-go from t.
    rets = jax.vmap(rl_returns.discounted_returns, in_axes=(0, 0, None))(rewards, mask, gamma)
    coef = (gamma ** jnp.arange(T))[None] * (rets - baseline) * mask / E

    def explicit(p):
        return jnp.sum(lp(p) * jax.lax.stop_gradient(coef))

    g_want = _flat(jax.jit(jax.grad(explicit))(problem["params"]))
    assert np.abs(g_want).max() > 1e-3
    np.testing.assert_allclose(g_dice, g_want, rtol=1e-4, atol=1e-5)
    # Its value is the mean discounted return (the magic boxes evaluate to 1).
    value = surrogates.dice_objective(lp(problem["params"]), rewards, baseline, mask, gamma)
    disc = np.asarray(rewards) * gamma ** np.arange(T)[None] * np.asarray(mask)
    np.testing.assert_allclose(value, disc.sum(-1).mean(), rtol=1e-5, atol=1e-6)


def test_ppo_clip_objective(problem):
    lp, mask = problem["log_prob_fn"], problem["mask"]
    adv = problem["rewards"] + 0.3
    params = problem["params"]
    old = lp(params)
    # Ratio 1: the value is the masked mean advantage and the gradient equals VPG's.
    value = surrogates.ppo_clip_objective(old, old, adv, mask, 0.2)
    want = float(np.sum(np.asarray(adv) * np.asarray(mask)) / np.sum(np.asarray(mask)))
    np.testing.assert_allclose(value, want, rtol=1e-6)
    g_ppo = _flat(
        jax.jit(jax.grad(lambda p: surrogates.ppo_clip_objective(lp(p), old, adv, mask, 0.2)))(
            params
        )
    )
    g_vpg = _flat(jax.jit(jax.grad(lambda p: surrogates.vpg_objective(lp(p), adv, mask)))(params))
    np.testing.assert_allclose(g_ppo, g_vpg, rtol=1e-4, atol=1e-6)


def test_ppo_clip_cuts_gradient_beyond_clip():
    log_prob = jnp.array([0.0, 0.0, 0.0, 0.0])
    old = jnp.array([-0.5, 0.5, -0.5, 0.5])  # ratios e^0.5 ~ 1.65 and e^-0.5 ~ 0.61
    adv = jnp.array([1.0, -1.0, -1.0, 1.0])
    mask = jnp.ones(4)
    grad = np.asarray(
        jax.grad(lambda lp: surrogates.ppo_clip_objective(lp, old, adv, mask, 0.2))(log_prob)
    )
    # Step 0: ratio > 1 + eps with A > 0 -> clipped, zero gradient. Step 1: ratio < 1 - eps, A < 0 -> clipped.
    assert grad[0] == 0.0 and grad[1] == 0.0
    # Steps 2, 3: the unclipped term is the minimum -> gradient ratio * A / N.
    np.testing.assert_allclose(grad[2], np.exp(0.5) * -1.0 / 4, rtol=1e-6)
    np.testing.assert_allclose(grad[3], np.exp(-0.5) * 1.0 / 4, rtol=1e-6)
    value = surrogates.ppo_clip_objective(log_prob, old, adv, mask, 0.2)
    np.testing.assert_allclose(value, (1.2 - 0.8 - np.exp(0.5) + np.exp(-0.5)) / 4, rtol=1e-5)


def test_importance_objective_matches_lvc_at_old_params(problem):
    lp, mask = problem["log_prob_fn"], problem["mask"]
    adv = problem["rewards"]
    params = problem["params"]
    old = lp(params)
    g_is = _flat(
        jax.jit(jax.grad(lambda p: surrogates.importance_objective(lp(p), old, adv, mask)))(params)
    )
    g_lvc = _flat(jax.jit(jax.grad(lambda p: surrogates.lvc_objective(lp(p), adv, mask)))(params))
    np.testing.assert_allclose(g_is, g_lvc, rtol=1e-4, atol=1e-6)


def test_magic_box():
    x = jnp.array([0.3, -1.2])
    np.testing.assert_allclose(surrogates.magic_box(x), [1.0, 1.0])
    np.testing.assert_allclose(jax.grad(lambda v: surrogates.magic_box(v).sum())(x), [1.0, 1.0])
    # d2/dx2 magic(x) = magic(x) = 1 as well.
    np.testing.assert_allclose(jax.grad(jax.grad(lambda v: surrogates.magic_box(v)))(0.7), 1.0)


# ---------------------------------------------------------------- the second-order bandit test

REWARDS = np.array([1.0, 0.0, 5.0])
THETA = np.array([-1.0, 0.0, 1.0])
ALPHA = 0.5
NUM_SAMPLES = 100_000


def _softmax(t):
    e = np.exp(t - t.max())
    return e / e.sum()


def _np_J(theta):
    return _softmax(theta) @ REWARDS


def _np_grad_J(theta):
    p = _softmax(theta)
    return p * (REWARDS - p @ REWARDS)


def _np_F(theta):
    return _np_J(theta + ALPHA * _np_grad_J(theta))


def _fd_meta_gradient(theta, h=1e-5):
    eye = np.eye(len(theta))
    return np.array([(_np_F(theta + h * e) - _np_F(theta - h * e)) / (2 * h) for e in eye])


def _jax_J(theta):
    return jax.nn.softmax(theta) @ jnp.asarray(REWARDS, jnp.float32)


@pytest.fixture(scope="module")
def bandit_batch():
    logits = jnp.asarray(THETA, jnp.float32)
    actions = jax.random.categorical(jax.random.key(42), logits, shape=(NUM_SAMPLES,))
    return {"actions": actions, "rewards": jnp.asarray(REWARDS, jnp.float32)[actions]}


def _objective(estimator, theta, batch):
    log_prob = jax.nn.log_softmax(theta)[batch["actions"]]
    r = batch["rewards"]
    mask = jnp.ones_like(r)
    if estimator == "lvc":
        return surrogates.lvc_objective(log_prob, r, mask)
    if estimator == "vpg":
        return surrogates.vpg_objective(log_prob, r, mask)
    if estimator == "dice":  # N episodes of one step, gamma = 1, baseline 0
        return surrogates.dice_objective(
            log_prob[:, None], r[:, None], jnp.zeros_like(r)[:, None], mask[:, None], 1.0
        )
    raise ValueError(estimator)


def _maml_meta_gradient(estimator, batch, first_order=False):
    def outer(theta):
        adapted = adaptation.inner_step(
            lambda p, b: -_objective(estimator, p, b),
            theta,
            batch,
            jnp.float32(ALPHA),
            first_order=first_order,
        )
        return _jax_J(adapted)

    return np.asarray(jax.jit(jax.grad(outer))(jnp.asarray(THETA, jnp.float32)), np.float64)


def _tolerance(fd):
    """Monte-Carlo tolerance: observed errors of the unbiased estimators are ~1e-3 at n = 1e5."""
    return 0.02 * np.abs(fd).max() + 0.005


def test_bandit_sanity(bandit_batch):
    # The sample-based inner gradient is close to the exact policy gradient.
    g = jax.grad(lambda t: _objective("lvc", t, bandit_batch))(jnp.asarray(THETA, jnp.float32))
    np.testing.assert_allclose(g, _np_grad_J(THETA), atol=0.02)
    freq = np.bincount(np.asarray(bandit_batch["actions"]), minlength=3) / NUM_SAMPLES
    np.testing.assert_allclose(freq, _softmax(THETA), atol=0.01)
    # Exact J in JAX equals numpy's.
    np.testing.assert_allclose(_jax_J(jnp.asarray(THETA, jnp.float32)), _np_J(THETA), rtol=1e-6)


@pytest.mark.parametrize("estimator", ["lvc", "dice"])
def test_second_order_meta_gradient_is_unbiased(bandit_batch, estimator):
    fd = _fd_meta_gradient(THETA)
    got = _maml_meta_gradient(estimator, bandit_batch)
    err = np.abs(got - fd).max()
    assert err < _tolerance(fd), (estimator, got, fd, err)


@pytest.mark.parametrize(
    ("estimator", "first_order"), [("lvc", True), ("vpg", False)], ids=["first_order", "vpg"]
)
def test_biased_meta_gradients_miss(bandit_batch, estimator, first_order):
    fd = _fd_meta_gradient(THETA)
    got = _maml_meta_gradient(estimator, bandit_batch, first_order=first_order)
    err = np.abs(got - fd).max()
    assert err > 5 * _tolerance(fd), (estimator, first_order, got, fd, err)


def test_second_order_differs_from_first_order(bandit_batch):
    second = _maml_meta_gradient("lvc", bandit_batch)
    first = _maml_meta_gradient("lvc", bandit_batch, first_order=True)
    assert np.abs(second - first).max() > 0.1
    # First order is exactly grad J at the adapted params.
    adapted = THETA + ALPHA * np.asarray(
        jax.grad(lambda t: _objective("lvc", t, bandit_batch))(jnp.asarray(THETA, jnp.float32)),
        np.float64,
    )
    np.testing.assert_allclose(first, _np_grad_J(adapted), rtol=1e-4, atol=1e-5)


def test_second_order_differs_on_a_policy_network(problem):
    """The same distinction on a Gaussian MLP policy: second-order LVC through adapt != first order."""
    lp, mask = problem["log_prob_fn"], problem["mask"]
    adv = problem["rewards"] - problem["baseline"]
    post_actions = problem["actions"] + 0.1
    policy, obs = problem["policy"], problem["obs"]

    def outer(params, first_order):
        adapted = adaptation.inner_step(
            lambda p, b: -surrogates.lvc_objective(lp(p), b, mask),
            params,
            adv,
            jnp.float32(0.1),
            first_order,
        )
        return jnp.sum(policy.log_prob(adapted, obs, post_actions) * mask)

    g2 = _flat(jax.jit(jax.grad(lambda p: outer(p, False)))(problem["params"]))
    g1 = _flat(jax.jit(jax.grad(lambda p: outer(p, True)))(problem["params"]))
    assert np.abs(g2 - g1).max() > 1e-3 * np.abs(g1).max()
    assert np.all(np.isfinite(g2))
