"""PPO (Schulman et al. 2017): the clipped loss and the epoch/minibatch update loop.

The loss is written once over masked arrays of any shape (time last) with the paper's terms:
the clipped surrogate, a value loss optionally clipped around the behaviour values (as in
OpenAI baselines' ``ppo2``), and an entropy bonus; it also returns the usual diagnostics
(approximate KL ``E[r - 1 - log r]``, clip fraction). The update loop takes *any* loss function
``loss_fn(params, minibatch) -> (loss, info)`` and runs ``num_epochs`` passes of
``num_minibatches`` shuffled minibatches along the batch's leading axis, all in ``lax.scan``s.

    >>> params, opt_state, infos = update_minibatches(loss_fn, optax.adam(3e-4), params, opt_state,
    ...                                               batch, key, num_epochs=4, num_minibatches=4)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

from jmeta.rl.surrogates import global_norm, masked_mean, ppo_clip_objective
from jmeta.types import Metrics, Params

#: ``loss_fn(params, batch) -> (scalar loss, info dict of scalars)``.
LossFn = Callable[[Params, Any], tuple[jax.Array, Metrics]]


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array, mask: jax.Array,
               clip_eps: float | jax.Array = 0.0) -> jax.Array:
    """``0.5 * masked mean of (V - target)^2``; with ``clip_eps > 0`` (a static Python float) the
    pessimistic max with the error of ``old_value + clip(V - old_value, -eps, eps)``. [...] -> scalar."""
    chex.assert_equal_shape([value, old_value, target, mask])
    error = (value - target) ** 2
    if not isinstance(clip_eps, float | int) or clip_eps > 0:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        error = jnp.maximum(error, (clipped - target) ** 2)
    return 0.5 * masked_mean(error, mask)


def ppo_loss(log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, value: jax.Array,
             old_value: jax.Array, target: jax.Array, entropy: jax.Array, mask: jax.Array, *,
             clip_eps: float | jax.Array, value_clip_eps: float | jax.Array, value_coef: float | jax.Array,
             entropy_coef: float | jax.Array) -> tuple[jax.Array, Metrics]:
    """PPO's total loss (to minimise) and its diagnostics, over valid steps of arrays of one shape.

    ``loss = -clipped_surrogate + value_coef * value_loss - entropy_coef * mean_entropy``.
    Advantages are used as given (normalise them before if wanted). Info keys: policy_loss,
    value_loss, entropy, approx_kl, clip_fraction.
    """
    chex.assert_equal_shape([log_prob, old_log_prob, advantages, value, old_value, target, entropy, mask])
    policy_objective = ppo_clip_objective(log_prob, old_log_prob, advantages, mask, clip_eps)
    v_loss = value_loss(value, old_value, target, mask, value_clip_eps)
    mean_entropy = masked_mean(entropy, mask)
    total = -policy_objective + value_coef * v_loss - entropy_coef * mean_entropy
    log_ratio = log_prob - old_log_prob
    info = {
        "policy_loss": -policy_objective,
        "value_loss": v_loss,
        "entropy": mean_entropy,
        "approx_kl": masked_mean(jnp.exp(log_ratio) - 1.0 - log_ratio, mask),
        "clip_fraction": masked_mean((jnp.abs(jnp.exp(log_ratio) - 1.0) > clip_eps).astype(jnp.float32), mask),
    }
    return total, info


def gradient_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, params: Params, opt_state: Any,
                  batch: Any) -> tuple[Params, Any, Metrics]:
    """One optax step on ``loss_fn(params, batch)``; info gains ``loss`` and ``grad_norm``."""
    (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    info = {**info, "loss": loss, "grad_norm": global_norm(grads)}
    return optax.apply_updates(params, updates), opt_state, info


def update_epochs(loss_fn: LossFn, optimizer: optax.GradientTransformation, params: Params, opt_state: Any,
                  batch: Any, num_epochs: int) -> tuple[Params, Any, Metrics]:
    """``num_epochs`` full-batch gradient steps on the same batch. Infos stacked [num_epochs]."""

    def epoch(carry, _):
        params, opt_state, info = gradient_step(loss_fn, optimizer, *carry, batch)
        return (params, opt_state), info

    (params, opt_state), infos = jax.lax.scan(epoch, (params, opt_state), None, length=num_epochs)
    return params, opt_state, infos


def update_epochs_within_kl(loss_fn: LossFn, optimizer: optax.GradientTransformation, params: Params,
                            opt_state: Any, batch: Any, num_epochs: int, kl_fn: Callable[[Params], jax.Array],
                            max_kl: float | jax.Array) -> tuple[Params, Any, Metrics]:
    """As :func:`update_epochs`, with a trust region: each step is tried and kept only when
    ``kl_fn(candidate) <= max_kl`` (``kl_fn`` measures the candidate against the sampling policy);
    the first step that would leave the region is discarded with its optimiser state, and the
    remaining epochs do nothing. The result is never more than ``max_kl`` from the start, whatever
    the loss's curvature. Infos stacked [num_epochs], plus ``accepted`` (1.0 for each kept step) and
    ``candidate_kl`` (the KL of each step tried; after a rejection, of the last kept step)."""

    def epoch(carry, _):
        params, opt_state, inside = carry
        candidate, candidate_state, info = gradient_step(loss_fn, optimizer, params, opt_state, batch)
        kl = kl_fn(candidate)
        accept = inside & (kl <= max_kl)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, old)  # noqa: E731
        info = {**info, "accepted": accept.astype(jnp.float32), "candidate_kl": kl}
        return (keep(candidate, params), keep(candidate_state, opt_state), accept), info

    (params, opt_state, _), infos = jax.lax.scan(epoch, (params, opt_state, jnp.asarray(True)), None,
                                                 length=num_epochs)
    return params, opt_state, infos


def shuffle_groups(size: int, num_minibatches: int) -> int:
    """How many contiguous blocks of a batch's leading axis (``size``) a minibatch shuffle keeps apart:
    the size of the ``"tasks"`` axis of the mesh being traced under (``jax.set_mesh``; the trainer
    sets the run's mesh), so that every minibatch takes the same number of rows from every device's
    shard and no row crosses devices. 1 without a mesh, and when the shards cannot be split evenly
    into ``num_minibatches`` (the shuffle is then global: correct, with a cross-device gather)."""
    from jmeta.sharding import task_shards

    groups = task_shards()
    return groups if size % (groups * num_minibatches) == 0 else 1


def minibatch_order(key: jax.Array, size: int, num_minibatches: int, groups: int = 1) -> jax.Array:
    """Row indices of one epoch's minibatches, [num_minibatches, groups, size // (groups * num_minibatches)],
    local to each of ``groups`` contiguous blocks of ``size // groups`` rows: minibatch ``m`` takes rows
    ``g * size // groups + order[m, g]`` of every block ``g``. Each block is a fresh permutation; with
    ``groups=1`` this is ``jax.random.permutation(key, size)`` cut into minibatches."""
    per_group = size // groups
    if groups == 1:
        perms = jax.random.permutation(key, size)[None]
    else:
        perms = jax.vmap(lambda k: jax.random.permutation(k, per_group))(jax.random.split(key, groups))
    return perms.reshape(groups, num_minibatches, per_group // num_minibatches).transpose(1, 0, 2)


def update_minibatches(loss_fn: LossFn, optimizer: optax.GradientTransformation, params: Params, opt_state: Any,
                       batch: Any, key: jax.Array, num_epochs: int, num_minibatches: int
                       ) -> tuple[Params, Any, Metrics]:
    """``num_epochs`` passes, each over ``num_minibatches`` minibatches of a fresh permutation of the
    batch's leading axis (whose size ``num_minibatches`` must divide). Infos stacked
    [num_epochs, num_minibatches]; ``infos[0, 0]`` is measured before any update.

    Under a task mesh the permutation stays within each device's shard of the leading axis
    (:func:`shuffle_groups`, :func:`minibatch_order`): the minibatches are gathered where the rows
    are, and only the gradient means cross devices.
    """
    size = jax.tree_util.tree_leaves(batch)[0].shape[0]
    if size % num_minibatches:
        raise ValueError(f"num_minibatches={num_minibatches} must divide the batch size {size}")
    groups = shuffle_groups(size, num_minibatches)
    blocks = jax.tree_util.tree_map(lambda x: x.reshape(groups, size // groups, *x.shape[1:]), batch)

    def minibatch_step(carry, local_rows):  # local_rows [groups, rows per group]
        minibatch = jax.tree_util.tree_map(
            lambda x: jax.vmap(lambda block, rows: block[rows])(x, local_rows).reshape(local_rows.size, *x.shape[2:]),
            blocks)
        params, opt_state, info = gradient_step(loss_fn, optimizer, *carry, minibatch)
        return (params, opt_state), info

    def epoch(carry, epoch_key):
        return jax.lax.scan(minibatch_step, carry, minibatch_order(epoch_key, size, num_minibatches, groups))

    (params, opt_state), infos = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, num_epochs))
    return params, opt_state, infos
