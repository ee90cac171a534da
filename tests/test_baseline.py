"""rllab's linear feature baseline: feature layout and the ridge fit against numpy (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jmeta.networks import baseline


def _batch(seed, episodes=4, horizon=50, obs_dim=3, valid=(50, 30, 50, 12)):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(episodes, horizon, obs_dim)).astype(np.float32)
    time = np.broadcast_to(np.arange(horizon, dtype=np.int32), (episodes, horizon)).copy()
    mask = np.stack([(np.arange(horizon) < v).astype(np.float32) for v in valid])
    return obs, time, mask


def np_features(obs, time, mask):
    o = np.clip(obs.astype(np.float64), -10, 10)
    s = (time.astype(np.float64) / 100.0)[..., None]
    f = np.concatenate([o, o**2, s, s**2, s**3, np.ones_like(s)], axis=-1)
    return f * mask[..., None]


def test_features_layout():
    obs, time, mask = _batch(0)
    obs[0, 3] = [12.0, -15.0, 0.5]  # clipped to +-10
    f = np.asarray(baseline.features(jnp.asarray(obs), jnp.asarray(time), jnp.asarray(mask)))
    d = obs.shape[-1]
    assert f.shape == (4, 50, 2 * d + 4)
    # Hand-checked row: episode 0, t = 3.
    s = 0.03
    np.testing.assert_allclose(
        f[0, 3], [10.0, -10.0, 0.5, 100.0, 100.0, 0.25, s, s**2, s**3, 1.0], rtol=1e-6
    )
    # Column blocks.
    o = obs[1, 7]
    np.testing.assert_allclose(f[1, 7, :d], o, rtol=1e-6)
    np.testing.assert_allclose(f[1, 7, d : 2 * d], o**2, rtol=1e-6)
    np.testing.assert_allclose(f[1, 7, 2 * d :], [0.07, 0.07**2, 0.07**3, 1.0], rtol=1e-5)
    # Zero rows where masked (episode 1 has 30 valid steps, episode 3 has 12).
    assert np.all(f[1, 30:] == 0.0) and np.all(f[3, 12:] == 0.0)
    assert np.all(f[1, 29, -1] == 1.0)
    np.testing.assert_allclose(f, np_features(obs, time, mask), rtol=1e-5, atol=1e-6)


def test_features_flatten_image_like_obs():
    obs = np.ones((2, 5, 2, 3), np.float32)
    time = np.zeros((2, 5), np.int32)
    mask = np.ones((2, 5), np.float32)
    f = baseline.features(obs, time, mask)
    assert f.shape == (2, 5, 2 * 6 + 4)


def _returns(obs, time, mask, seed):
    """Targets with a linear part and noise (so the fit is not exact)."""
    rng = np.random.default_rng(seed)
    r = 2.0 * obs[..., 0] - obs[..., 1] ** 2 + 3.0 * time / 100.0 + rng.normal(size=time.shape)
    return (r * mask).astype(np.float32)


def test_fit_equals_numpy_ridge_normal_equations():
    obs, time, mask = _batch(1)
    rets = _returns(obs, time, mask, 2)
    reg = 0.5  # a well-conditioned system, so float32 and float64 agree closely
    coeffs = np.asarray(jax.jit(baseline.fit)(baseline.features(obs, time, mask), rets, mask, reg))
    F = np_features(obs, time, mask).reshape(-1, coeffs.shape[0])
    R = (rets * mask).reshape(-1).astype(np.float64)
    want = np.linalg.lstsq(F.T @ F + reg * np.eye(F.shape[1]), F.T @ R, rcond=None)[0]
    np.testing.assert_allclose(coeffs, want, rtol=1e-4, atol=1e-4)
    # Not the unregularised answer (reg matters at this size).
    unreg = np.linalg.lstsq(F, R, rcond=None)[0]
    assert np.abs(unreg - want).max() > 1e-2


def test_fit_tiny_reg_matches_least_squares_predictions():
    # Observations spread out and times over the whole [0, 1) range: a well-conditioned design.
    obs, time, mask = _batch(3, episodes=3, horizon=100, obs_dim=2, valid=(100, 100, 60))
    rets = _returns(obs, time, mask, 4)
    values = np.asarray(baseline.fit_predict(obs, time, mask, rets, reg=1e-8))
    F = np_features(obs, time, mask).reshape(-1, 2 * 2 + 4)
    R = rets.reshape(-1).astype(np.float64)
    coef = np.linalg.lstsq(F, R, rcond=None)[0]
    want = (F @ coef).reshape(rets.shape)
    scale = np.abs(want).max()
    np.testing.assert_allclose(values, want, atol=5e-4 * scale)
    assert np.all(values[2, 60:] == 0.0)
    # The fit explains the linear part: residual variance is close to the unit noise.
    resid = (rets - values)[mask == 1]
    assert 0.7 < resid.var() < 1.3


def test_fit_ignores_masked_steps():
    obs, time, mask = _batch(5)
    rets = _returns(obs, time, mask, 6)
    clean = baseline.fit_predict(obs, time, mask, rets)
    junk_obs = np.where(mask[..., None] == 1, obs, 1e3).astype(np.float32)
    junk_rets = np.where(mask == 1, rets, -1e3).astype(np.float32)
    dirty = baseline.fit_predict(junk_obs, time, mask, junk_rets)
    np.testing.assert_allclose(dirty, clean, rtol=1e-4, atol=1e-4)


def test_fit_vmaps_over_tasks():
    obs, time, mask = _batch(7)
    rets = _returns(obs, time, mask, 8)
    obs2, rets2 = obs[::-1].copy(), rets[::-1].copy()
    mask2 = mask[::-1].copy()
    batched = jax.vmap(baseline.fit_predict)(
        np.stack([obs, obs2]),
        np.stack([time, time]),
        np.stack([mask, mask2]),
        np.stack([rets, rets2]),
    )
    np.testing.assert_allclose(
        batched[0], baseline.fit_predict(obs, time, mask, rets), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        batched[1], baseline.fit_predict(obs2, time, mask2, rets2), rtol=1e-4, atol=1e-4
    )
