"""The meta-environment contract: a gymnax-shaped API with the task passed explicitly.

An environment is a stateless Python object holding only static configuration. Everything that
changes is a pytree: the task (sampled by a :class:`~jmeta.tasks.TaskDistribution`), the
environment state and the step output, so ``reset``/``step`` can be jitted once and vmapped over
tasks and episodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import jax
from flax import struct

from jmeta.spaces import Space

Task = Any  # a pytree of arrays
EnvState = Any  # a pytree of arrays


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of a task family.

    Attributes:
      name: registered name, e.g. ``"point_nav"``.
      variant: which published definition this instance follows (``"default"`` or a paper key).
      observation_space: per-step observation space.
      action_space: per-step action space.
      horizon: fixed episode length H (episodes that terminate earlier are masked, not reset).
      episodes_per_trial: episodes of one task that form a trial (RL²-style methods), >= 1.
      version: bumped whenever the definition changes in a way that changes returns.
      source: the reference implementation this definition was checked against.
    """

    name: str
    variant: str
    observation_space: Space
    action_space: Space
    horizon: int
    episodes_per_trial: int
    version: str
    source: str

    @property
    def env_id(self) -> str:
        return f"{self.name}/{self.variant}-v{self.version}"

    @classmethod
    def from_params(
        cls,
        name: str,
        variant: str,
        params: Any,
        *,
        observation_space: Space,
        action_space: Space,
        version: str,
        source: str | Mapping[str, str],
    ) -> EnvSpec:
        """The spec of ``name`` in ``variant``, built from the variant's params dataclass.

        ``horizon`` and ``episodes_per_trial`` are read from ``params`` (every env's params define
        both); ``source`` is one string or a ``{variant: source}`` table, where a variant without an
        entry (e.g. an override of ``default``) takes the ``"default"`` entry.
        """
        if not isinstance(source, str):
            source = source.get(variant, source["default"])
        return cls(
            name=name,
            variant=variant,
            observation_space=observation_space,
            action_space=action_space,
            horizon=params.horizon,
            episodes_per_trial=params.episodes_per_trial,
            version=version,
            source=source,
        )


@struct.dataclass
class StepOut:
    """Result of one environment step (all fields are arrays; batch axes lead when vmapped).

    obs: next observation, ``observation_space.shape``.
    state: next environment state pytree.
    reward: float32 scalar.
    terminated: bool scalar, the MDP reached a terminal state.
    truncated: bool scalar, the episode was cut by the horizon (set by the rollout engine).
    info: dict of extra float32 scalars (e.g. distance to goal).
    """

    obs: jax.Array
    state: EnvState
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: dict[str, jax.Array]


@runtime_checkable
class MetaEnv(Protocol):
    """What every jmeta environment implements."""

    spec: EnvSpec

    def reset(self, key: jax.Array, task: Task) -> tuple[jax.Array, EnvState]:
        """Starts an episode of ``task``. Returns ``(obs, state)``."""
        ...

    def step(self, key: jax.Array, state: EnvState, action: jax.Array, task: Task) -> StepOut:
        """Advances one step. Pure: the same key, state, action and task give the same output."""
        ...


def task_features(env: MetaEnv, task: Task) -> jax.Array:
    """The task as a float32 feature vector [F] (for task inference and the belief-oracle baseline).

    An env may define ``task_features(task)`` (e.g. to drop fields that do not vary); otherwise every
    leaf of the task pytree is flattened and concatenated in tree order (grid_nav: the goal cell
    ``(x, y)``; point_nav: the goal position; cheetah_vel: the target velocity)."""
    custom = getattr(env, "task_features", None)
    if custom is not None:
        return jax.numpy.asarray(custom(task), jax.numpy.float32).reshape(-1)
    leaves = [jax.numpy.asarray(x, jax.numpy.float32).reshape(-1) for x in jax.tree_util.tree_leaves(task)]
    return jax.numpy.concatenate(leaves) if leaves else jax.numpy.zeros((0,), jax.numpy.float32)
