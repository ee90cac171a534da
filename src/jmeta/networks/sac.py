"""The networks of off-policy actor-critics (SAC, PEARL), initialised as rlkit initialises them.

Built on :class:`jmeta.networks.mlp.RlkitMLP` (rlkit's initialisation; output layers uniform in
``±3e-3`` for critics and ``±1e-3`` for the policy's mean and log-std heads, as rlkit sets them).

* :class:`CriticMLP`: ``x [..., in] -> [...]`` (Q(s, a, z) on ``concat(s, a, z)``, V(s, z) on
  ``concat(s, z)``);
* :class:`TanhGaussianActor`: ``x [..., in] -> TanhGaussian`` with a state-dependent log-std head,
  clipped to [-20, 2] (rlkit's ``TanhGaussianPolicy``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jmeta.networks.distributions import TanhGaussian
from jmeta.networks.mlp import RlkitMLP, activation_fn
from jmeta.types import Params

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0


@dataclasses.dataclass(frozen=True)
class CriticMLP:
    """A scalar critic over one input vector: [..., in] -> [...] (Q on concat(s, a, z), V on concat(s, z))."""

    hidden_sizes: tuple[int, ...] = (300, 300, 300)
    activation: str = "relu"

    def __post_init__(self):
        activation_fn(self.activation)

    @property
    def _net(self) -> RlkitMLP:
        return RlkitMLP(tuple(self.hidden_sizes), 1, 1, self.activation, 3e-3)

    def init(self, key: jax.Array, input_size: int) -> Params:
        return self._net.init(key, jnp.zeros((input_size,), jnp.float32))["params"]

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        return self._net.apply({"params": params}, x)[0][..., 0]


@dataclasses.dataclass(frozen=True)
class TanhGaussianActor:
    """rlkit's ``TanhGaussianPolicy``: [..., in] -> ``TanhGaussian`` over ``action_dim`` actions in (-1, 1)."""

    action_dim: int
    hidden_sizes: tuple[int, ...] = (300, 300, 300)
    activation: str = "relu"

    def __post_init__(self):
        activation_fn(self.activation)

    @property
    def _net(self) -> RlkitMLP:
        return RlkitMLP(tuple(self.hidden_sizes), self.action_dim, 2, self.activation, 1e-3)

    def init(self, key: jax.Array, input_size: int) -> Params:
        return self._net.init(key, jnp.zeros((input_size,), jnp.float32))["params"]

    def dist(self, params: Params, x: jax.Array) -> TanhGaussian:
        mean, log_std = self._net.apply({"params": params}, x)
        return TanhGaussian(mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))
