"""Policies and value functions as pure ``apply(params, obs)`` over a Flax params pytree.

Each policy object is a frozen dataclass of static hyperparameters; ``init(key, obs_shape)``
returns the params pytree that ``jax.grad``, ``vmap``, optax and orbax see.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.errors import ConfigError
from jmeta.networks.distributions import Categorical, DiagGaussian
from jmeta.types import Params

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "swish": nn.swish,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {', '.join(sorted(ACTIVATIONS))}, got {name!r}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Fully connected torso. [..., in] -> [..., out_size]; the output layer is linear."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: str = "relu"
    out_scale: float = 1.0  # scale of the output layer's init (small for policy heads)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        for width in self.hidden_sizes:
            x = act(nn.Dense(width, kernel_init=nn.initializers.xavier_uniform())(x))
        init = nn.initializers.variance_scaling(self.out_scale, "fan_avg", "uniform")
        return nn.Dense(self.out_size, kernel_init=init)(x)


class _GaussianHead(nn.Module):
    action_dim: int
    hidden_sizes: Sequence[int]
    activation: str
    state_dependent_std: bool
    init_log_std: float

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.state_dependent_std:
            out = MLP(self.hidden_sizes, 2 * self.action_dim, self.activation, name="mlp")(obs)
            mean, raw = jnp.split(out, 2, axis=-1)
            log_std = raw + self.init_log_std
        else:
            mean = MLP(self.hidden_sizes, self.action_dim, self.activation, name="mlp")(obs)
            log_std_param = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
            log_std = jnp.broadcast_to(log_std_param, mean.shape)
        return mean, log_std


@dataclasses.dataclass(frozen=True)
class GaussianMLPPolicy:
    """Diagonal-Gaussian MLP policy.

    ``state_dependent_std=False`` learns one log-std vector (rllab/MAML); ``True`` predicts it.
    Log-std is floored at ``log(min_std)``.
    """

    action_dim: int
    hidden_sizes: tuple[int, ...] = (100, 100)
    activation: str = "relu"
    state_dependent_std: bool = False
    init_std: float = 1.0
    min_std: float = 1e-6

    @property
    def _net(self) -> _GaussianHead:
        return _GaussianHead(
            self.action_dim,
            tuple(self.hidden_sizes),
            self.activation,
            self.state_dependent_std,
            math.log(self.init_std),
        )

    def init(self, key: jax.Array, obs_shape: tuple[int, ...]) -> Params:
        return self._net.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]

    def dist(self, params: Params, obs: jax.Array) -> DiagGaussian:
        """obs [..., obs_dim] -> DiagGaussian with [..., action_dim] mean and log-std."""
        mean, log_std = self._net.apply({"params": params}, obs)
        return DiagGaussian(mean, jnp.maximum(log_std, math.log(self.min_std)))

    def sample(self, params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns ``(action, log_prob)``; matches :data:`jmeta.rollout.PolicyFn`."""
        d = self.dist(params, obs)
        action = d.sample(key)
        return action, d.log_prob(action)

    def log_prob(self, params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.dist(params, obs).log_prob(action)

    def deterministic(self, params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = self.dist(params, obs)
        action = d.mode()
        return action, d.log_prob(action)


class _CategoricalHead(nn.Module):
    num_actions: int
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, self.num_actions, self.activation, out_scale=0.01, name="mlp")(obs)


@dataclasses.dataclass(frozen=True)
class CategoricalMLPPolicy:
    """Categorical MLP policy over ``num_actions`` discrete actions."""

    num_actions: int
    hidden_sizes: tuple[int, ...] = (100, 100)
    activation: str = "relu"

    @property
    def _net(self) -> _CategoricalHead:
        return _CategoricalHead(self.num_actions, tuple(self.hidden_sizes), self.activation)

    def init(self, key: jax.Array, obs_shape: tuple[int, ...]) -> Params:
        return self._net.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]

    def dist(self, params: Params, obs: jax.Array) -> Categorical:
        return Categorical(self._net.apply({"params": params}, obs.astype(jnp.float32)))

    def sample(self, params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = self.dist(params, obs)
        action = d.sample(key)
        return action, d.log_prob(action)

    def log_prob(self, params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.dist(params, obs).log_prob(action)

    def deterministic(self, params: Params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        d = self.dist(params, obs)
        action = d.mode()
        return action, d.log_prob(action)


@dataclasses.dataclass(frozen=True)
class ValueMLP:
    """State-value MLP: obs [..., obs_dim] -> [...]."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    @property
    def _net(self) -> MLP:
        return MLP(tuple(self.hidden_sizes), 1, self.activation)

    def init(self, key: jax.Array, obs_shape: tuple[int, ...]) -> Params:
        return self._net.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]

    def apply(self, params: Params, obs: jax.Array) -> jax.Array:
        return self._net.apply({"params": params}, obs.astype(jnp.float32))[..., 0]


Policy = GaussianMLPPolicy | CategoricalMLPPolicy
