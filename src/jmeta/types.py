"""Core data types and the trajectory axis convention.

Axis convention: time is the last batch axis before the feature axes. A single episode has
leaves ``[T, ...]``; a batch of episodes ``[E, T, ...]``; a meta-batch ``[N, E, T, ...]`` (N tasks).
A trial of several episodes of one task is ``[K, T, ...]`` (K episodes of the trial).
"""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

Params = Any  # a pytree of arrays
Metrics = dict[str, jax.Array]


@struct.dataclass
class Trajectory:
    """Fixed-horizon transitions. Shapes for one episode (add leading batch axes as needed).

    obs: [T, *obs_shape], observation the action was taken from.
    action: [T, *action_shape], the raw policy action (before any env clipping).
    reward: [T], reward of the step; 0 where ``mask`` is 0.
    terminated: [T] bool, the step ended the episode in a terminal state.
    mask: [T] float32, 1 for steps that happened (the episode had not terminated before them).
    log_prob: [T], log-probability of ``action`` under the behaviour policy.
    time: [T] int32, step index within the episode.
    extras: dict of [T, ...] arrays (e.g. RL² inputs ``prev_action``, ``prev_reward``, ``prev_done``).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    mask: jax.Array
    log_prob: jax.Array
    time: jax.Array
    extras: dict[str, jax.Array] = struct.field(default_factory=dict)

    def episode_return(self) -> jax.Array:
        """Undiscounted return per episode: sums the last (time) axis of ``reward``."""
        return (self.reward * self.mask).sum(axis=-1)

    @property
    def num_steps(self) -> jax.Array:
        """Number of valid steps (sum of ``mask`` over all axes)."""
        return self.mask.sum()
