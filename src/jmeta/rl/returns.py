"""Discounted returns and generalised advantage estimation, single-stream (vmap for batches).

All functions take one stream of steps ([T] arrays) with a validity ``mask`` (1 for steps that
happened). Masked steps are *transparent*: the step after a valid step is the next valid one, so

* a fixed-horizon episode that terminated at step t (mask 1 up to t, 0 after) gets no bootstrap
  after t, exactly as if it had been cut there;
* a flattened RL² trial ``[K * T]`` whose episodes terminated early (masked gaps between episodes)
  is one discounted stream across episode boundaries: the last valid step of episode k
  bootstraps from the first step of episode k + 1.

``last_value`` is the value after the final step of the stream and is used only if that final
step is valid (the stream was cut by the horizon, not by termination); 0 by default (rllab).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _bootstrap(mask: jax.Array, last_value: float | jax.Array, dtype) -> jax.Array:
    return jnp.asarray(last_value, dtype) * mask[-1]


def discounted_returns(
    rewards: jax.Array, mask: jax.Array, gamma: float | jax.Array, last_value: float | jax.Array = 0.0
) -> jax.Array:
    """Returns-to-go over the valid steps: ``R_t = r_t + gamma R_next(t)``. [T] -> [T] (0 where masked)."""
    chex.assert_rank([rewards, mask], 1)
    chex.assert_equal_shape([rewards, mask])

    def backward(next_return, inputs):
        reward, m = inputs
        ret = reward + gamma * next_return
        valid = m > 0
        return jnp.where(valid, ret, next_return), ret * m

    _, returns = jax.lax.scan(backward, _bootstrap(mask, last_value, rewards.dtype), (rewards, mask), reverse=True)
    return returns


def gae(
    rewards: jax.Array,
    values: jax.Array,
    mask: jax.Array,
    gamma: float | jax.Array,
    lam: float | jax.Array,
    last_value: float | jax.Array = 0.0,
) -> jax.Array:
    """GAE(gamma, lambda) advantages over the valid steps. rewards, values, mask: [T] -> [T] (0 where masked).

    With ``next(t)`` the next valid step after t: ``delta_t = r_t + gamma V_next(t) - V_t`` and
    ``A_t = delta_t + gamma lam A_next(t)``; after the last valid step ``V = last_value`` if it is the
    final step of the stream, else 0 (terminated). With ``lam = 1`` this is ``R_t - V_t``.
    """
    chex.assert_rank([rewards, values, mask], 1)
    chex.assert_equal_shape([rewards, values, mask])

    def backward(carry, inputs):
        next_value, next_adv = carry
        reward, value, m = inputs
        adv = reward + gamma * next_value - value + gamma * lam * next_adv
        valid = m > 0
        carry = (jnp.where(valid, value, next_value), jnp.where(valid, adv, next_adv))
        return carry, adv * m

    init = (_bootstrap(mask, last_value, values.dtype), jnp.zeros((), values.dtype))
    _, advantages = jax.lax.scan(backward, init, (rewards, values, mask), reverse=True)
    return advantages


def normalize(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Zero-mean, unit-std over the valid entries of ``x`` (any shape); 0 where masked."""
    chex.assert_equal_shape([x, mask])
    count = jnp.maximum(mask.sum(), 1.0)
    mean = (x * mask).sum() / count
    var = (((x - mean) * mask) ** 2).sum() / count
    return (x - mean) / jnp.sqrt(var + eps) * mask
