"""Discounted returns, GAE and normalisation against plain Python-loop references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmeta.rl import returns as rl_returns

T = 12


def ref_returns(rewards, mask, gamma, last_value):
    """R_t = sum_{t'>=t} gamma^{t'-t} r_t' over the valid prefix, + bootstrap if valid to the end."""
    n = len(rewards)
    valid = int(np.sum(mask))
    out = np.zeros(n)
    for t in range(valid):
        total = 0.0
        for k in range(t, valid):
            total += gamma ** (k - t) * rewards[k]
        if valid == n:  # the episode ran to the horizon: bootstrap from last_value
            total += gamma ** (n - t) * last_value
        out[t] = total
    return out


def ref_gae(rewards, values, mask, gamma, lam, last_value):
    n = len(rewards)
    valid = int(np.sum(mask))
    deltas = np.zeros(n)
    for t in range(valid):
        if t + 1 < valid:
            next_v = values[t + 1]
        elif valid == n:
            next_v = last_value
        else:  # terminated at t: no bootstrap
            next_v = 0.0
        deltas[t] = rewards[t] + gamma * next_v - values[t]
    adv = np.zeros(n)
    for t in range(valid):
        adv[t] = sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, valid))
    return adv


def _episode(seed, valid):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=T).astype(np.float32)
    values = rng.normal(size=T).astype(np.float32)
    mask = (np.arange(T) < valid).astype(np.float32)
    return rewards, values, mask


CASES = [
    # (valid steps, gamma, lam, last_value)
    (T, 0.99, 0.95, 0.0),
    (T, 0.9, 0.97, 1.7),
    (5, 0.99, 0.95, 0.0),
    (5, 0.9, 1.0, 2.5),  # last_value ignored: terminated
    (1, 0.5, 0.3, -1.0),
    (T, 0.8, 1.0, -0.6),
    (8, 1.0, 0.0, 0.4),
    (T, 1.0, 1.0, 3.0),
]


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(("valid", "gamma", "lam", "last_value"), CASES)
def test_discounted_returns_matches_reference(valid, gamma, lam, last_value, use_jit):
    rewards, _, mask = _episode(valid * 7 + 1, valid)
    fn = jax.jit(rl_returns.discounted_returns) if use_jit else rl_returns.discounted_returns
    got = np.asarray(fn(jnp.asarray(rewards), jnp.asarray(mask), gamma, last_value))
    want = ref_returns(rewards, mask, gamma, last_value)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(got[valid:] == 0.0)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(("valid", "gamma", "lam", "last_value"), CASES)
def test_gae_matches_reference(valid, gamma, lam, last_value, use_jit):
    rewards, values, mask = _episode(valid * 11 + 3, valid)
    fn = jax.jit(rl_returns.gae) if use_jit else rl_returns.gae
    got = np.asarray(
        fn(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(mask), gamma, lam, last_value)
    )
    want = ref_gae(rewards, values, mask, gamma, lam, last_value)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.all(got[valid:] == 0.0)


@pytest.mark.parametrize(("valid", "last_value"), [(T, 0.0), (T, 2.0), (4, 0.0), (4, 5.0)])
def test_gae_lambda_one_is_returns_minus_values(valid, last_value):
    rewards, values, mask = _episode(valid + 100, valid)
    gamma = 0.95
    adv = rl_returns.gae(rewards, values, mask, gamma, 1.0, last_value)
    rets = rl_returns.discounted_returns(rewards, mask, gamma, last_value)
    np.testing.assert_allclose(adv[:valid], (rets - values)[:valid], rtol=1e-5, atol=1e-5)


def test_gae_lambda_zero_is_td_error():
    rewards, values, mask = _episode(5, T)
    adv = np.asarray(rl_returns.gae(rewards, values, mask, 0.9, 0.0, 1.5))
    next_v = np.append(values[1:], 1.5)
    np.testing.assert_allclose(adv, rewards + 0.9 * next_v - values, rtol=1e-5, atol=1e-6)


def test_returns_vmap_over_batch():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(4, T)).astype(np.float32)
    valid = [T, 3, 7, 1]
    mask = np.stack([(np.arange(T) < v).astype(np.float32) for v in valid])
    got = jax.jit(jax.vmap(rl_returns.discounted_returns, in_axes=(0, 0, None)))(rewards, mask, 0.9)
    for i in range(4):
        np.testing.assert_allclose(
            got[i], ref_returns(rewards[i], mask[i], 0.9, 0.0), rtol=1e-5, atol=1e-5
        )


def test_traced_gamma_and_lambda():
    rewards, values, mask = _episode(9, 9)
    fn = jax.jit(rl_returns.gae)
    got = fn(rewards, values, mask, jnp.float32(0.9), jnp.float32(0.8), jnp.float32(0.0))
    np.testing.assert_allclose(
        got, ref_gae(rewards, values, mask, 0.9, 0.8, 0.0), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_normalize(use_jit):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, T)) * 5 + 2).astype(np.float32)
    mask = np.stack([(np.arange(T) < v).astype(np.float32) for v in (T, 5, 9)])
    fn = jax.jit(rl_returns.normalize) if use_jit else rl_returns.normalize
    y = np.asarray(fn(jnp.asarray(x), jnp.asarray(mask)))
    valid = y[mask == 1]
    assert abs(valid.mean()) < 1e-5
    np.testing.assert_allclose(valid.std(), 1.0, rtol=1e-4)
    assert np.all(y[mask == 0] == 0.0)
    # Masked garbage does not influence the valid entries.
    x2 = np.where(mask == 1, x, 1e6).astype(np.float32)
    np.testing.assert_allclose(fn(jnp.asarray(x2), jnp.asarray(mask)), y, rtol=1e-5, atol=1e-5)
    # Same as the numpy standardisation over valid entries.
    xv = x[mask == 1]
    np.testing.assert_allclose(valid, (xv - xv.mean()) / xv.std(), rtol=1e-4, atol=1e-4)


def test_normalize_all_masked_is_zero():
    y = rl_returns.normalize(jnp.ones(5), jnp.zeros(5))
    assert np.all(np.asarray(y) == 0.0)


def _compress_reference(fn, rewards, values, mask, gamma, lam, last_value):
    """Reference for streams with masked gaps: run ``fn`` on the valid steps only, scatter back."""
    idx = np.flatnonzero(mask)
    ends_valid = mask[-1] > 0
    sub = fn(rewards[idx], values[idx], np.ones(len(idx)), gamma, lam, last_value if ends_valid else 0.0)
    out = np.zeros(len(rewards))
    out[idx] = sub
    return out


@pytest.mark.parametrize("last_value", [0.0, 1.3])
@pytest.mark.parametrize("gap_pattern", ["episode_gaps", "terminated_last"])
def test_masked_gaps_are_transparent_across_episode_boundaries(gap_pattern, last_value):
    """A flattened trial [K*T] whose episodes ended early: the discount runs over the valid steps."""
    rng = np.random.default_rng(3)
    k, t = 3, 6
    mask = np.ones((k, t), np.float32)
    mask[0, 4:] = 0  # episode 0 terminated after 4 steps
    mask[1, 2:] = 0  # episode 1 after 2 steps
    if gap_pattern == "terminated_last":
        mask[2, 5:] = 0
    mask = mask.reshape(-1)
    rewards = rng.normal(size=k * t).astype(np.float32)
    values = rng.normal(size=k * t).astype(np.float32)
    gamma, lam = 0.9, 0.8
    got = np.asarray(rl_returns.gae(rewards, values, mask, gamma, lam, last_value))
    want = _compress_reference(ref_gae, rewards, values, mask, gamma, lam, last_value)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got_r = np.asarray(rl_returns.discounted_returns(rewards, mask, gamma, last_value))
    want_r = _compress_reference(lambda r, v, m, g, lm, lv: ref_returns(r, m, g, lv), rewards, values, mask, gamma, lam, last_value)
    np.testing.assert_allclose(got_r, want_r, rtol=1e-5, atol=1e-5)
    # the last valid step of episode 0 bootstraps from the first step of episode 1
    delta = rewards[3] + gamma * values[6] - values[3]
    assert abs(got[3] - (delta + gamma * lam * got[6])) < 1e-5
