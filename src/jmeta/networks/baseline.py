"""rllab's linear feature baseline, fitted in closed form per task.

Features of a step at time t with observation o (o clipped to [-10, 10], s = t / 100):
``[o, o^2, s, s^2, s^3, 1]``. Coefficients minimise ``||F w - R||^2 + reg ||w||^2`` over the valid
steps of a batch of episodes of one task, where R are discounted returns-to-go. Source:
rll/rllab ``rllab/baselines/linear_feature_baseline.py`` (used by MAML and ProMP).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_REG = 1e-5


def features(obs: jax.Array, time: jax.Array, mask: jax.Array) -> jax.Array:
    """obs [..., T, d], time [..., T], mask [..., T] -> features [..., T, 2d + 4] (0 where masked)."""
    o = jnp.clip(obs.reshape(*obs.shape[: time.ndim], -1).astype(jnp.float32), -10.0, 10.0)
    s = (time.astype(jnp.float32) / 100.0)[..., None]
    f = jnp.concatenate([o, o**2, s, s**2, s**3, jnp.ones_like(s)], axis=-1)
    return f * mask[..., None]


def fit(feats: jax.Array, returns: jax.Array, mask: jax.Array, reg: float = DEFAULT_REG) -> jax.Array:
    """Ridge regression coefficients. feats [..., T, k] (masked), returns [..., T] -> [k].

    All leading axes are pooled (one fit per call; vmap over tasks for per-task baselines).
    """
    k = feats.shape[-1]
    f = feats.reshape(-1, k)
    r = (returns * mask).reshape(-1)
    gram = f.T @ f + reg * jnp.eye(k, dtype=f.dtype)
    coeffs, *_ = jnp.linalg.lstsq(gram, f.T @ r)
    return coeffs


def predict(coeffs: jax.Array, feats: jax.Array) -> jax.Array:
    """feats [..., T, k] -> values [..., T]."""
    return feats @ coeffs


def fit_predict(
    obs: jax.Array, time: jax.Array, mask: jax.Array, returns: jax.Array, reg: float = DEFAULT_REG
) -> jax.Array:
    """Fits on the batch and predicts its own values (what MAML does per task). Returns [..., T]."""
    feats = features(obs, time, mask)
    return predict(fit(feats, returns, mask, reg), feats) * mask
