"""Running mean and variance of a feature vector (VariBAD's ``RunningMeanStd``), as a pytree.

The statistics merge batches exactly (Chan et al.'s parallel update), so the result does not
depend on how the data was split; they live in the algorithm's state and its checkpoints.

    >>> stats = running_stats_init(4)
    >>> stats = running_stats_update(stats, x, mask)   # x: [N, 4], mask: [N]
    >>> y = running_stats_normalize(stats, x)
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

#: The count the statistics start from (a tiny prior at mean 0, variance 1, as baselines' RunningMeanStd).
INITIAL_COUNT = 1e-4


@struct.dataclass
class RunningStats:
    """mean, var: [D] float32; count: float32 scalar (the number of rows merged so far)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def running_stats_init(size: int) -> RunningStats:
    """Statistics of a ``size``-vector before any data: mean 0, variance 1."""
    return RunningStats(jnp.zeros((size,), jnp.float32), jnp.ones((size,), jnp.float32),
                        jnp.asarray(INITIAL_COUNT, jnp.float32))


def running_stats_update(stats: RunningStats, x: jax.Array, mask: jax.Array) -> RunningStats:
    """Merges the rows of ``x`` [N, D] where ``mask`` [N] is 1 into ``stats``."""
    chex.assert_rank([x, mask], [2, 1])
    mask = mask.astype(jnp.float32)
    batch_count = mask.sum()
    safe = jnp.maximum(batch_count, 1.0)
    batch_mean = (x * mask[:, None]).sum(axis=0) / safe
    batch_var = (((x - batch_mean) ** 2) * mask[:, None]).sum(axis=0) / safe
    total = stats.count + batch_count
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * batch_count / total
    m2 = stats.var * stats.count + batch_var * batch_count + delta**2 * stats.count * batch_count / total
    return RunningStats(mean=mean, var=m2 / total, count=total)


def running_stats_normalize(stats: RunningStats, x: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
    """``clip((x - mean) / sqrt(var + eps), ±clip)``, [..., D] -> [..., D] (gradients stop at the stats)."""
    stats = jax.lax.stop_gradient(stats)
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + eps), -clip, clip)
