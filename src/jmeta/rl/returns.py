"""Discounted returns and generalised advantage estimation, single-stream (vmap for batches).

All functions take one episode ([T] arrays) with a validity ``mask`` (1 for steps that happened).
Episodes are fixed-horizon: a step after the last valid one has mask 0, and the value after the
final step of the horizon is ``last_value`` (0 by default: no bootstrap, as in rllab).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def discounted_returns(
    rewards: jax.Array, mask: jax.Array, gamma: float | jax.Array, last_value: float | jax.Array = 0.0
) -> jax.Array:
    """Returns-to-go ``R_t = r_t + gamma * m_{t+1} * R_{t+1}``. [T] -> [T] (0 where masked)."""
    next_mask = jnp.concatenate([mask[1:], jnp.ones_like(mask[:1])])

    def backward(carry, inputs):
        reward, m, next_m = inputs
        ret = (reward + gamma * next_m * carry) * m
        return ret, ret

    init = jnp.asarray(last_value, rewards.dtype) * mask[-1]
    _, returns = jax.lax.scan(backward, init, (rewards, mask, next_mask), reverse=True)
    return returns


def gae(
    rewards: jax.Array,
    values: jax.Array,
    mask: jax.Array,
    gamma: float | jax.Array,
    lam: float | jax.Array,
    last_value: float | jax.Array = 0.0,
) -> jax.Array:
    """GAE(gamma, lambda) advantages. rewards, values, mask: [T] -> [T] (0 where masked).

    ``delta_t = r_t + gamma * m_{t+1} V_{t+1} - V_t``; ``A_t = delta_t + gamma lam m_{t+1} A_{t+1}``;
    ``V_T = last_value``. With ``lam = 1`` this is ``R_t - V_t``.
    """
    next_mask = jnp.concatenate([mask[1:], jnp.ones_like(mask[:1])])
    next_values = jnp.concatenate([values[1:], jnp.asarray(last_value, values.dtype)[None]])
    deltas = rewards + gamma * next_mask * next_values - values

    def backward(carry, inputs):
        delta, m, next_m = inputs
        adv = (delta + gamma * lam * next_m * carry) * m
        return adv, adv

    _, advantages = jax.lax.scan(
        backward, jnp.zeros((), rewards.dtype), (deltas, mask, next_mask), reverse=True
    )
    return advantages


def normalize(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Zero-mean, unit-std over the valid entries of ``x`` (any shape); 0 where masked."""
    count = jnp.maximum(mask.sum(), 1.0)
    mean = (x * mask).sum() / count
    var = (((x - mean) * mask) ** 2).sum() / count
    return (x - mean) / jnp.sqrt(var + eps) * mask
