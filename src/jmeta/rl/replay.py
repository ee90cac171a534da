"""Per-task replay: many fixed-capacity ring buffers stored as one pytree, jit-safe.

A :class:`ReplayBuffer` holds ``num_buffers`` ring buffers of ``capacity`` items each (one per
training task for PEARL), every leaf of ``data`` shaped ``[num_buffers, capacity, ...]``. All
operations are pure functions with static shapes: they run inside ``jax.jit``, ``lax.scan`` and
``vmap``, and the buffer is an ordinary pytree, so it is saved in checkpoints with the rest of
the state (its size is ``num_buffers * capacity * bytes per item``; the algorithm that owns it
states that cost).

Insertion takes a fixed-size batch of items with a ``valid`` mask and writes only the valid ones,
contiguously (masked steps of terminated episodes never enter the buffer); once a buffer is full
the oldest items are overwritten. Sampling is uniform with replacement over the items a buffer
holds (rlkit's ``random_batch``).

    >>> buf = replay_init(example_item, num_buffers=80, capacity=10_000)
    >>> buf = replay_insert(buf, task_indices, items, valid)          # items: [B, n, ...]
    >>> batch = replay_sample(buf, key, task_indices, batch_size=256) # [B, 256, ...]
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayBuffer:
    """``num_buffers`` ring buffers of ``capacity`` items.

    data: the item pytree with leaves [num_buffers, capacity, ...].
    insert_at: int32[num_buffers], the slot the next item of each buffer goes to.
    size: int32[num_buffers], how many items each buffer holds (<= capacity).
    """

    data: Any
    insert_at: jax.Array
    size: jax.Array

    @property
    def num_buffers(self) -> int:
        return int(self.size.shape[0])

    @property
    def capacity(self) -> int:
        return int(jax.tree_util.tree_leaves(self.data)[0].shape[1])

    def nbytes(self) -> int:
        """Bytes held by the buffers' storage (what a checkpoint of them costs)."""
        return sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(self.data))


def replay_init(example: Any, num_buffers: int, capacity: int) -> ReplayBuffer:
    """Empty buffers for items shaped like ``example`` (a pytree of arrays, one item, no batch axis)."""
    if num_buffers < 1 or capacity < 1:
        raise ValueError(f"replay needs num_buffers >= 1 and capacity >= 1, got {num_buffers} and {capacity}")
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((num_buffers, capacity, *jnp.shape(x)), jnp.asarray(x).dtype),
                                  example)
    # Two distinct arrays: a state holding one array twice cannot be donated to a compiled step.
    return ReplayBuffer(data=data, insert_at=jnp.zeros((num_buffers,), jnp.int32),
                        size=jnp.zeros((num_buffers,), jnp.int32))


def _insert_one(buffer: ReplayBuffer, index: jax.Array, items: Any, valid: jax.Array) -> ReplayBuffer:
    """Writes the valid entries of ``items`` (leaves [n, ...], ``valid`` bool[n]) into buffer ``index``."""
    capacity = buffer.capacity
    valid = valid.astype(bool)
    offset = jnp.cumsum(valid.astype(jnp.int32)) - 1  # position among the valid items
    slots = (buffer.insert_at[index] + offset) % capacity
    slots = jnp.where(valid, slots, capacity)  # out of bounds: dropped
    data = jax.tree_util.tree_map(lambda d, x: d.at[index, slots].set(x.astype(d.dtype), mode="drop"),
                                  buffer.data, items)
    count = valid.sum().astype(jnp.int32)
    return ReplayBuffer(
        data=data,
        insert_at=buffer.insert_at.at[index].set((buffer.insert_at[index] + count) % capacity),
        size=buffer.size.at[index].set(jnp.minimum(buffer.size[index] + count, capacity)),
    )


def _keep_split(buffer: ReplayBuffer) -> ReplayBuffer:
    """Under a task mesh (:func:`jmeta.sharding.task_shards`), the buffers stay split along their
    buffer axis as the trainer placed them (when it divides the device count)."""
    from jmeta.sharding import TASK_AXIS, task_shards

    shards = task_shards()
    if shards == 1 or buffer.num_buffers % shards:
        return buffer
    return jax.lax.with_sharding_constraint(buffer, jax.sharding.PartitionSpec(TASK_AXIS))


def replay_insert(buffer: ReplayBuffer, indices: jax.Array, items: Any, valid: jax.Array) -> ReplayBuffer:
    """Appends items to several buffers. indices: int32[B]; items: leaves [B, n, ...]; valid: [B, n].

    Buffers are written one after the other (a ``lax.scan`` over B), so a repeated index appends
    twice. ``n`` must not exceed the capacity (checked at trace time)."""
    chex.assert_rank(indices, 1)
    chex.assert_rank(valid, 2)
    if valid.shape[1] > buffer.capacity:
        raise ValueError(f"cannot insert {valid.shape[1]} items at once into buffers of capacity {buffer.capacity}")

    def body(buf, args):
        index, its, val = args
        return _insert_one(buf, index, its, val), None

    buffer, _ = jax.lax.scan(body, buffer, (indices, items, valid))
    return _keep_split(buffer)


def replay_clear(buffer: ReplayBuffer, indices: jax.Array) -> ReplayBuffer:
    """Empties buffers ``indices`` (int32[B]); their storage is left as it is and will be overwritten."""
    return _keep_split(buffer.replace(insert_at=buffer.insert_at.at[indices].set(0), size=buffer.size.at[indices].set(0)))


def replay_sample(buffer: ReplayBuffer, key: jax.Array, indices: jax.Array, batch_size: int,
                  replace: bool = True) -> Any:
    """``batch_size`` items drawn uniformly from each buffer in ``indices`` (int32[B]), with
    replacement (rlkit) or without (``replace=False``, VariBAD's trial buffer; the buffer must then
    hold at least ``batch_size`` items, else held slots repeat).

    Returns leaves [B, batch_size, ...]. An empty buffer yields its slot 0 (zeros): callers fill
    every buffer they sample from first."""
    chex.assert_rank(indices, 1)
    keys = jax.random.split(key, indices.shape[0])
    capacity = buffer.capacity

    def one(index, k):
        size = jnp.maximum(buffer.size[index], 1)
        if replace:
            slots = jax.random.randint(k, (batch_size,), 0, size)
        else:  # the top batch_size of random keys over the held slots (Gumbel-top-k of a uniform)
            scores = jnp.where(jnp.arange(capacity) < size, jax.random.uniform(k, (capacity,)), -1.0)
            slots = jax.lax.top_k(scores, batch_size)[1] % size
        return jax.tree_util.tree_map(lambda d: d[index, slots], buffer.data)

    return jax.vmap(one)(indices, keys)
