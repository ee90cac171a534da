"""Policy-gradient surrogate objectives (to be maximised), over masked batches of any shape.

For the MAML inner loop the *second* derivative of the surrogate matters: the meta-gradient
differentiates through ``theta' = theta + alpha * grad J_inner(theta)``, so ``hess J_inner`` must
estimate the Hessian of the expected return, including the term from the sampling
distribution's dependence on ``theta`` (Rothfuss et al. 2019; Foerster et al. 2018).

* ``vpg``: ``sum log pi(a|s) A``. Correct gradient, but its Hessian lacks the
  ``grad log pi grad log pi^T A`` term: the original MAML estimator, biased meta-gradient.
* ``lvc``: ProMP's low-variance curvature, ``sum pi(a|s) / stop_grad(pi(a|s)) A``: the same
  gradient, and a Hessian with the per-step score-function term (biased only through cross-time
  terms, with low variance).
* ``dice``: DiCE with a baseline (Foerster 2018, Mao 2019): ``sum_t magic(sum_{t'<=t} log pi_t')
  gamma^t r_t + sum_t (1 - magic(log pi_t)) gamma^t b_t``; unbiased derivatives of every order.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

INNER_ESTIMATORS = ("lvc", "dice", "vpg")


def magic_box(x: jax.Array) -> jax.Array:
    """DiCE's MagicBox: equals 1 in value, ``d/dx magic(x) = magic(x)``."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def global_norm(tree) -> jax.Array:
    """L2 norm of all leaves of a pytree (local: optax renamed its helper across versions)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree)))


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def vpg_objective(log_prob: jax.Array, advantages: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over valid steps of ``log pi * A`` (advantages are treated as constants)."""
    chex.assert_equal_shape([log_prob, advantages, mask])
    return masked_mean(log_prob * jax.lax.stop_gradient(advantages), mask)


def lvc_objective(log_prob: jax.Array, advantages: jax.Array, mask: jax.Array) -> jax.Array:
    """ProMP's LVC: mean over valid steps of ``exp(log pi - stop_grad(log pi)) * A``."""
    chex.assert_equal_shape([log_prob, advantages, mask])
    return masked_mean(magic_box(log_prob) * jax.lax.stop_gradient(advantages), mask)


def dice_objective(
    log_prob: jax.Array, rewards: jax.Array, baseline: jax.Array, mask: jax.Array, gamma: float | jax.Array
) -> jax.Array:
    """DiCE with baseline. log_prob, rewards, baseline, mask: [..., T]; time is the last axis.

    Normalised by the number of episodes (not steps), so its gradient is the per-episode policy
    gradient ``E[sum_t grad log pi_t gamma^t (R_t - b_t)]``.
    """
    chex.assert_equal_shape([log_prob, rewards, baseline, mask])
    rewards = jax.lax.stop_gradient(rewards)
    baseline = jax.lax.stop_gradient(baseline)
    horizon = log_prob.shape[-1]
    discount = jnp.asarray(gamma, rewards.dtype) ** jnp.arange(horizon, dtype=rewards.dtype)
    cumulative = jnp.cumsum(log_prob * mask, axis=-1)
    main = (magic_box(cumulative) * discount * rewards * mask).sum(-1)
    correction = ((1.0 - magic_box(log_prob)) * discount * baseline * mask).sum(-1)
    return jnp.mean(main + correction)


def ppo_clip_objective(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, mask: jax.Array, clip_eps: float | jax.Array
) -> jax.Array:
    """PPO's clipped surrogate, mean over valid steps."""
    chex.assert_equal_shape([log_prob, old_log_prob, advantages, mask])
    ratio = jnp.exp(log_prob - jax.lax.stop_gradient(old_log_prob))
    adv = jax.lax.stop_gradient(advantages)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return masked_mean(jnp.minimum(ratio * adv, clipped * adv), mask)


def importance_objective(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, mask: jax.Array
) -> jax.Array:
    """TRPO's surrogate: mean over valid steps of ``pi / pi_old * A``."""
    chex.assert_equal_shape([log_prob, old_log_prob, advantages, mask])
    ratio = jnp.exp(log_prob - jax.lax.stop_gradient(old_log_prob))
    return masked_mean(ratio * jax.lax.stop_gradient(advantages), mask)
