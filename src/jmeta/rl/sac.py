"""Soft actor-critic (Haarnoja et al. 2018) as single-stream pure losses.

Two critic layouts are supported, both with twin Q functions (the minimum of the two is used
wherever a value is bootstrapped or maximised):

* **V-network** (SAC v1, rlkit, PEARL): a state-value network ``V(s)`` and its Polyak-averaged
  target; ``Q_target = r + (1 - done) * gamma * V_target(s')`` and
  ``V_target = min_i Q_i(s, a~pi) - alpha * log pi(a|s)``;
* **target Q** (SAC v2, brax, most JAX code): Polyak-averaged copies of both Q networks;
  ``Q_target = r + (1 - done) * gamma * (min_i Q_target_i(s', a'~pi) - alpha * log pi(a'|s'))``.

The entropy temperature ``alpha`` is either fixed (rlkit/PEARL fix it to 1 and scale the rewards
instead: ``reward_scale`` sets the trade-off) or learned to reach a target entropy
(:func:`temperature_loss`, SAC v2). Rewards are expected already scaled.

Every loss takes arrays of one shape ``[...]`` (any batch axes) and returns a scalar mean; targets
are wrapped in ``stop_gradient`` inside the losses.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jmeta.types import Params


def bellman_target(reward: jax.Array, terminated: jax.Array, next_value: jax.Array, discount: float | jax.Array
                   ) -> jax.Array:
    """``reward + (1 - terminated) * discount * next_value``; all [...] (``reward`` already scaled)."""
    chex.assert_equal_shape([reward, terminated, next_value])
    return reward + (1.0 - terminated.astype(reward.dtype)) * discount * next_value


def soft_value(q1: jax.Array, q2: jax.Array, log_prob: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """``min(q1, q2) - alpha * log_prob``: the soft value of a sampled action, [...]."""
    chex.assert_equal_shape([q1, q2, log_prob])
    return jnp.minimum(q1, q2) - alpha * log_prob


def critic_loss(q1: jax.Array, q2: jax.Array, target: jax.Array) -> jax.Array:
    """``mean((q1 - y)^2) + mean((q2 - y)^2)`` with ``y = stop_gradient(target)`` (rlkit's sum of two MSEs)."""
    chex.assert_equal_shape([q1, q2, target])
    y = jax.lax.stop_gradient(target)
    return jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)


def value_loss(value: jax.Array, min_q_new: jax.Array, log_prob: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """V-network loss ``mean((V(s) - stop_gradient(min Q(s, a~pi) - alpha log pi(a|s)))^2)``, [...] inputs."""
    chex.assert_equal_shape([value, min_q_new, log_prob])
    target = jax.lax.stop_gradient(min_q_new - alpha * log_prob)
    return jnp.mean((value - target) ** 2)


def actor_loss(log_prob: jax.Array, min_q_new: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """``mean(alpha * log pi(a|s) - min Q(s, a))`` for reparameterised ``a ~ pi``, [...] inputs."""
    chex.assert_equal_shape([log_prob, min_q_new])
    return jnp.mean(alpha * log_prob - min_q_new)


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """SAC v2's temperature loss ``-mean(log_alpha * stop_gradient(log pi + target_entropy))``:
    its gradient raises alpha while the policy entropy is below ``target_entropy``."""
    chex.assert_rank(log_alpha, 0)
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def polyak(target: Params, online: Params, tau: float | jax.Array) -> Params:
    """``target <- (1 - tau) * target + tau * online``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)
