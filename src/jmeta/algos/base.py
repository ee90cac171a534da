"""The Algorithm protocol every meta-learner implements, and the algorithm registry."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

from jmeta.types import Metrics

TrainState = Any  # a pytree (flax.struct dataclass) with at least ``params`` and ``iteration``


@runtime_checkable
class Algorithm(Protocol):
    """A meta-learner. All three methods are pure and jittable.

    ``meta_step`` is one whole meta-iteration (task sampling, rollouts, adaptation, outer update,
    metrics); ``adapt_and_evaluate`` runs the meta-test protocol on given tasks and returns
    per-task arrays named ``eval/return_step{k}`` or ``eval/return_episode{k}``.
    """

    name: str

    def init(self, key: jax.Array) -> TrainState: ...

    def meta_step(self, state: TrainState, key: jax.Array) -> tuple[TrainState, Metrics]: ...

    def adapt_and_evaluate(self, state: TrainState, tasks: Any, key: jax.Array) -> Metrics: ...

    def env_steps_per_iteration(self) -> int: ...
