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
Carry = Any  # an actor's recurrent state: a pytree of arrays (``()`` for feed-forward actors)


@struct.dataclass
class StepInputs:
    """What an actor sees at one step of a rollout (:mod:`jmeta.rollout`).

    obs: [*obs_shape], the current observation.
    prev_action: [*action_shape], the previous action of the trial (at its start: zeros for
      continuous actions, -1 for discrete ones, which ``jax.nn.one_hot`` encodes as all zeros).
    prev_reward: scalar float32, the previous reward of the trial (0 at its start).
    prev_done: scalar float32, 1 at the first step of every episode after the first one of a trial,
      so episode boundaries are visible to recurrent agents.
    time: scalar int32, step index within the episode.
    env_state, task: the privileged view (the env state and the task), filled only for actors that
      declare ``privileged = True`` (scripted oracles); ``None`` otherwise and in replays.
    """

    obs: jax.Array
    prev_action: jax.Array
    prev_reward: jax.Array
    prev_done: jax.Array
    time: jax.Array | None = None
    env_state: Any = None
    task: Any = None


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
    next_obs: [T, *obs_shape], the observation after the step (the terminal observation on the
      terminating step; equal to ``obs`` on masked steps), or ``None`` when the rollout was asked
      not to record it (``next_obs=False``: saves memory for on-policy methods).
    extras: dict of [T, ...] arrays the actor chose to record (e.g. RL²'s inputs ``prev_action``,
      ``prev_reward``, ``prev_done``).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    mask: jax.Array
    log_prob: jax.Array
    time: jax.Array
    next_obs: jax.Array | None = None
    extras: dict[str, jax.Array] = struct.field(default_factory=dict)

    def episode_return(self) -> jax.Array:
        """Undiscounted return per episode: sums the last (time) axis of ``reward``."""
        return (self.reward * self.mask).sum(axis=-1)

    @property
    def num_steps(self) -> jax.Array:
        """Number of valid steps (sum of ``mask`` over all axes)."""
        return self.mask.sum()
