"""Observation and action spaces: static descriptions (never traced)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Box:
    """A box ``[low, high]^shape`` of floats. ``low``/``high`` are scalars (same bound everywhere)."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: str = "float32"

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform sample of shape ``self.shape`` (infinite bounds are clipped to +-1)."""
        low = max(self.low, -1.0) if self.low == float("-inf") else self.low
        high = min(self.high, 1.0) if self.high == float("inf") else self.high
        return jax.random.uniform(key, self.shape, jnp.dtype(self.dtype), low, high)

    def contains(self, x: jax.Array) -> jax.Array:
        """Boolean scalar: ``x`` has the right shape and lies within the bounds."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high))

    @property
    def flat_dim(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size


@dataclasses.dataclass(frozen=True)
class Discrete:
    """``n`` actions or observations ``{0, ..., n-1}``, stored as int32 scalars."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: str = "int32"

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, jnp.int32)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return (x.shape == ()) & (x >= 0) & (x < self.n)

    @property
    def flat_dim(self) -> int:
        return self.n


Space = Box | Discrete
