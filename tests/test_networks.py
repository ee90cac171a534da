"""Distributions against closed forms in numpy, and the policy / value networks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmeta.errors import ConfigError
from jmeta.networks import Categorical, DiagGaussian, MLPPolicy, TanhGaussian, ValueMLP, policy_for
from jmeta.spaces import Box, Discrete


def _init(net, key, obs_shape):
    """Jitted init (eager Flax init dispatches op by op and is slow on CPU)."""
    return jax.jit(net.init, static_argnums=1)(key, obs_shape)


# ---------------------------------------------------------------- DiagGaussian


def np_gauss_logpdf(x, mean, log_std):
    std = np.exp(log_std)
    return np.sum(-0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), axis=-1)


def _gauss(seed, shape=(5, 3)):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=shape).astype(np.float32)
    log_std = rng.uniform(-1.0, 0.5, size=shape).astype(np.float32)
    return mean, log_std


def test_diag_gaussian_log_prob():
    mean, log_std = _gauss(0)
    x = np.random.default_rng(1).normal(size=mean.shape).astype(np.float32)
    d = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))
    got = np.asarray(d.log_prob(jnp.asarray(x)))
    assert got.shape == (5,)
    np.testing.assert_allclose(got, np_gauss_logpdf(x, mean, log_std), rtol=1e-5, atol=1e-5)
    # Standard normal in 1D at 0: -0.5 log(2 pi).
    std_normal = DiagGaussian(jnp.zeros(1), jnp.zeros(1))
    np.testing.assert_allclose(
        std_normal.log_prob(jnp.zeros(1)), -0.5 * math.log(2 * math.pi), rtol=1e-6
    )


def test_diag_gaussian_entropy():
    mean, log_std = _gauss(2)
    d = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))
    want = np.sum(0.5 * np.log(2 * np.pi * np.e * np.exp(2 * log_std)), axis=-1)
    np.testing.assert_allclose(d.entropy(), want, rtol=1e-5)


def test_diag_gaussian_kl_closed_form_and_monte_carlo():
    m1, s1 = _gauss(3, (4, 2))
    m2, s2 = _gauss(4, (4, 2))
    p = DiagGaussian(jnp.asarray(m1), jnp.asarray(s1))
    q = DiagGaussian(jnp.asarray(m2), jnp.asarray(s2))
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-6)
    v1, v2 = np.exp(2 * s1), np.exp(2 * s2)
    want = np.sum(np.log(np.sqrt(v2 / v1)) + (v1 + (m1 - m2) ** 2) / (2 * v2) - 0.5, axis=-1)
    got = np.asarray(p.kl(q))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got > 0)
    # Monte Carlo: E_p[log p - log q].
    mc = jax.jit(
        lambda k: jax.vmap(lambda kk: p.log_prob(p.sample(kk)) - q.log_prob(p.sample(kk)))(
            jax.random.split(k, 200_000)
        ).mean(0)
    )
    mc = np.asarray(mc(jax.random.key(0)))
    np.testing.assert_allclose(mc, want, rtol=0.05, atol=0.02)


def test_diag_gaussian_sample_moments():
    d = DiagGaussian(jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.5, 2.0])))
    xs = np.asarray(jax.vmap(d.sample)(jax.random.split(jax.random.key(1), 50_000)))
    np.testing.assert_allclose(xs.mean(0), [1.0, -2.0], atol=0.03)
    np.testing.assert_allclose(xs.std(0), [0.5, 2.0], rtol=0.03)
    assert np.array_equal(np.asarray(d.mode()), [1.0, -2.0])


# ---------------------------------------------------------------- Categorical


def np_log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_categorical_log_prob_entropy_kl():
    rng = np.random.default_rng(5)
    l1 = rng.normal(size=(6, 4)).astype(np.float32) * 2
    l2 = rng.normal(size=(6, 4)).astype(np.float32)
    x = rng.integers(0, 4, size=6)
    p, q = Categorical(jnp.asarray(l1)), Categorical(jnp.asarray(l2))
    lp1, lp2 = np_log_softmax(l1.astype(np.float64)), np_log_softmax(l2.astype(np.float64))
    np.testing.assert_allclose(
        p.log_prob(jnp.asarray(x)), lp1[np.arange(6), x], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(p.entropy(), -(np.exp(lp1) * lp1).sum(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.kl(q), (np.exp(lp1) * (lp1 - lp2)).sum(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-6)
    np.testing.assert_array_equal(p.mode(), l1.argmax(-1))
    # Uniform: entropy log n.
    np.testing.assert_allclose(Categorical(jnp.zeros(5)).entropy(), math.log(5), rtol=1e-6)


def test_categorical_sample_frequencies():
    logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
    xs = np.asarray(
        jax.vmap(Categorical(logits).sample)(jax.random.split(jax.random.key(2), 40_000))
    )
    assert xs.dtype == np.int32
    np.testing.assert_allclose(np.bincount(xs, minlength=3) / xs.size, [0.2, 0.5, 0.3], atol=0.01)


# ---------------------------------------------------------------- policies


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_gaussian_policy_shapes_and_init_std(state_dependent_std):
    policy = MLPPolicy.gaussian(
        action_dim=3, hidden_sizes=(16, 16), state_dependent_std=state_dependent_std, init_std=0.4
    )
    params = _init(policy, jax.random.key(0), (5,))
    obs = jax.random.normal(jax.random.key(1), (7, 5))
    d = jax.jit(policy.dist)(params, obs)
    assert d.mean.shape == (7, 3) and d.log_std.shape == (7, 3)
    if state_dependent_std:
        assert "log_std" not in params
        # Output-layer init is small-ish but non-zero: std is around init_std, varying with obs.
        np.testing.assert_allclose(np.exp(d.log_std).mean(), 0.4, rtol=1.0)
        assert np.ptp(np.asarray(d.log_std), axis=0).max() > 0
    else:
        np.testing.assert_allclose(np.exp(params["log_std"]), 0.4, rtol=1e-6)
        np.testing.assert_allclose(np.exp(d.log_std), 0.4, rtol=1e-6)
    single = jax.jit(policy.dist)(params, obs[0])
    assert single.mean.shape == (3,)
    np.testing.assert_allclose(single.mean, d.mean[0], rtol=1e-5, atol=1e-6)


def test_gaussian_policy_state_dependent_std_offset():
    """With zero output weights the predicted log-std is exactly log(init_std)."""
    policy = MLPPolicy.gaussian(
        action_dim=2, hidden_sizes=(8,), state_dependent_std=True, init_std=0.3
    )
    params = _init(policy, jax.random.key(0), (4,))
    out_layer = sorted(k for k in params["mlp"])[-1]
    zeroed = jax.tree_util.tree_map(lambda x: x, params)
    zeroed["mlp"][out_layer] = jax.tree_util.tree_map(jnp.zeros_like, params["mlp"][out_layer])
    d = jax.jit(policy.dist)(zeroed, jnp.ones((3, 4)))
    np.testing.assert_allclose(np.exp(d.log_std), 0.3, rtol=1e-6)
    np.testing.assert_allclose(d.mean, 0.0, atol=1e-7)


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_gaussian_policy_sample_log_prob_consistent(state_dependent_std):
    policy = MLPPolicy.gaussian(
        action_dim=2, hidden_sizes=(8,), state_dependent_std=state_dependent_std
    )
    params = _init(policy, jax.random.key(3), (4,))
    obs = jax.random.normal(jax.random.key(4), (6, 4))
    action, log_prob = jax.jit(policy.sample)(params, obs, jax.random.key(5))
    assert action.shape == (6, 2) and log_prob.shape == (6,)
    np.testing.assert_allclose(
        log_prob, jax.jit(policy.log_prob)(params, obs, action), rtol=1e-5, atol=1e-5
    )
    d = jax.jit(policy.dist)(params, obs)
    np.testing.assert_allclose(
        log_prob,
        np_gauss_logpdf(np.asarray(action), np.asarray(d.mean), np.asarray(d.log_std)),
        rtol=1e-4,
        atol=1e-4,
    )
    mode, mode_lp = jax.jit(policy.deterministic)(params, obs, jax.random.key(0))
    np.testing.assert_allclose(mode, d.mean, rtol=1e-6)
    assert np.all(
        np.asarray(mode_lp) >= np.asarray(log_prob) - 1e-5
    )  # the mode is the density peak


def test_gaussian_policy_min_std_floor():
    policy = MLPPolicy.gaussian(action_dim=2, hidden_sizes=(4,), min_std=0.1, init_std=1.0)
    params = _init(policy, jax.random.key(0), (3,))
    params = {**params, "log_std": jnp.full((2,), -10.0)}
    d = jax.jit(policy.dist)(params, jnp.zeros(3))
    np.testing.assert_allclose(np.exp(d.log_std), 0.1, rtol=1e-6)


def test_categorical_policy_shapes():
    policy = MLPPolicy.categorical(num_actions=5, hidden_sizes=(16,))
    params = _init(policy, jax.random.key(0), (3,))
    obs = jax.random.normal(jax.random.key(1), (4, 3))
    d = jax.jit(policy.dist)(params, obs)
    assert d.logits.shape == (4, 5)
    action, log_prob = jax.jit(policy.sample)(params, obs, jax.random.key(2))
    assert action.shape == (4,) and action.dtype == jnp.int32 and log_prob.shape == (4,)
    assert np.all((np.asarray(action) >= 0) & (np.asarray(action) < 5))
    np.testing.assert_allclose(log_prob, jax.jit(policy.log_prob)(params, obs, action), rtol=1e-6)
    # Small output init: nearly uniform at the start.
    np.testing.assert_allclose(np.exp(np.asarray(log_prob)), 0.2, atol=0.05)


def test_value_mlp_shape():
    value = ValueMLP(hidden_sizes=(8, 8))
    params = _init(value, jax.random.key(0), (3,))
    out = jax.jit(value.apply)(params, jnp.ones((2, 7, 3)))
    assert out.shape == (2, 7)
    assert jax.jit(value.apply)(params, jnp.ones(3)).shape == ()


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLPPolicy.gaussian(action_dim=2, hidden_sizes=(4,), activation="sigmoidz"),
        lambda: MLPPolicy.categorical(num_actions=2, hidden_sizes=(4,), activation="nope"),
        lambda: ValueMLP(hidden_sizes=(4,), activation="nope"),
    ],
)
def test_bad_activation_raises(make):
    with pytest.raises(ConfigError) as info:
        make().init(jax.random.key(0), (3,))  # raises before compiling
    assert "relu" in str(info.value) and "tanh" in str(info.value)


def test_tanh_gaussian_log_prob_is_the_change_of_variables():
    """log p(a) = log N(atanh a) - sum log(1 - a^2), against the numpy formula and between the two paths."""
    mean = jnp.array([[0.3, -1.2], [2.5, 0.0]])
    log_std = jnp.array([[-0.5, 0.2], [0.1, -1.0]])
    dist = TanhGaussian(mean, log_std)
    action, log_prob = jax.jit(dist.sample_and_log_prob)(jax.random.key(3))
    assert action.shape == (2, 2) and log_prob.shape == (2,)
    assert np.all(np.abs(np.asarray(action)) < 1.0)
    u = np.arctanh(np.asarray(action, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    gauss = -0.5 * (((u - np.asarray(mean)) / std) ** 2 + 2 * np.log(std) + math.log(2 * math.pi)).sum(-1)
    want = gauss - np.log(1.0 - np.tanh(u) ** 2).sum(-1)
    np.testing.assert_allclose(np.asarray(log_prob), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(dist.log_prob(action)), np.asarray(log_prob), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(dist.mode()), np.tanh(np.asarray(mean)), rtol=1e-6)
    # Far in the tail the stable correction stays finite (the naive log(1 - tanh(u)^2) is -inf).
    far = TanhGaussian(jnp.array([30.0]), jnp.array([-5.0]))
    _, lp = far.sample_and_log_prob(jax.random.key(0))
    assert np.isfinite(float(lp))


def test_policy_for_picks_the_head_from_the_action_space():
    assert policy_for(Discrete(4)).head == "categorical"
    box = Box(-1.0, 1.0, (3,))
    assert policy_for(box).head == "gaussian" and policy_for(box).action_dim == 3
    squashed = policy_for(box, hidden_sizes=(8,), squash=True)
    params = _init(squashed, jax.random.key(0), (5,))
    action, log_prob = jax.jit(squashed.sample)(params, jnp.ones((7, 5)), jax.random.key(1))
    assert action.shape == (7, 3) and log_prob.shape == (7,) and np.all(np.abs(np.asarray(action)) < 1)
    with pytest.raises(ConfigError, match="squash"):
        policy_for(Discrete(4), squash=True)
    with pytest.raises(ConfigError, match="head"):
        MLPPolicy("beta", 2)
