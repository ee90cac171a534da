"""Policies and value functions as pure ``apply(params, obs)`` over a Flax params pytree.

One policy class, :class:`MLPPolicy`: an MLP torso and an action-distribution head chosen by the
action space (:func:`policy_for`): categorical for ``Discrete``, diagonal Gaussian for ``Box``
(or a tanh-squashed Gaussian for SAC-style agents). The object is a frozen dataclass of static
hyperparameters; ``init(key, obs_shape)`` returns the params pytree that ``jax.grad``, ``vmap``,
optax and orbax see.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.errors import ConfigError
from jmeta.networks.distributions import Categorical, DiagGaussian, TanhGaussian
from jmeta.networks.mlp import ACTIVATIONS, MLP, activation_fn
from jmeta.spaces import Box, Discrete, Space
from jmeta.types import Params

Head = Literal["gaussian", "categorical", "tanh_gaussian"]
HEADS: tuple[str, ...] = ("gaussian", "categorical", "tanh_gaussian")


class _GaussianHead(nn.Module):
    """obs [..., d] -> (mean [..., a], log_std [..., a])."""

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


class _CategoricalHead(nn.Module):
    """obs [..., d] -> logits [..., n] (small output init: near-uniform at the start)."""

    num_actions: int
    hidden_sizes: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, self.num_actions, self.activation, out_scale=0.01, name="mlp")(obs)


class DistPolicy:
    """``sample`` / ``log_prob`` / ``deterministic`` for any policy that defines ``dist(params, obs)``."""

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


@dataclasses.dataclass(frozen=True)
class MLPPolicy(DistPolicy):
    """MLP policy with a ``head``: "gaussian" | "categorical" | "tanh_gaussian".

    ``action_dim``: number of actions (categorical) or the action dimension (Gaussian heads).
    Gaussian heads learn one log-std vector (``state_dependent_std=False``, rllab/MAML) or predict
    it from the observation; the log-std is floored at ``log(min_std)`` (and, for the tanh head,
    clipped to ``[log_std_min, log_std_max]`` as SAC implementations do).
    """

    head: Head
    action_dim: int
    hidden_sizes: tuple[int, ...] = (100, 100)
    activation: str = "relu"
    state_dependent_std: bool = False
    init_std: float = 1.0
    min_std: float = 1e-6
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    def __post_init__(self):
        if self.head not in HEADS:
            raise ConfigError(f"policy head must be one of {', '.join(HEADS)}, got {self.head!r}")
        activation_fn(self.activation)  # unknown activations fail here, not at trace time

    @classmethod
    def gaussian(cls, action_dim: int, hidden_sizes: tuple[int, ...] = (100, 100), activation: str = "relu",
                 state_dependent_std: bool = False, init_std: float = 1.0, min_std: float = 1e-6) -> MLPPolicy:
        return cls("gaussian", action_dim, tuple(hidden_sizes), activation, state_dependent_std, init_std, min_std)

    @classmethod
    def categorical(cls, num_actions: int, hidden_sizes: tuple[int, ...] = (100, 100),
                    activation: str = "relu") -> MLPPolicy:
        return cls("categorical", num_actions, tuple(hidden_sizes), activation)

    @property
    def _net(self) -> nn.Module:
        if self.head == "categorical":
            return _CategoricalHead(self.action_dim, tuple(self.hidden_sizes), self.activation)
        return _GaussianHead(self.action_dim, tuple(self.hidden_sizes), self.activation,
                             self.state_dependent_std, math.log(self.init_std))

    def init(self, key: jax.Array, obs_shape: tuple[int, ...]) -> Params:
        return self._net.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]

    def dist(self, params: Params, obs: jax.Array) -> DiagGaussian | Categorical | TanhGaussian:
        """obs [..., obs_dim] -> the action distribution with batch shape [...]."""
        if self.head == "categorical":
            return Categorical(self._net.apply({"params": params}, obs.astype(jnp.float32)))
        mean, log_std = self._net.apply({"params": params}, obs)
        log_std = jnp.maximum(log_std, math.log(self.min_std))
        if self.head == "tanh_gaussian":
            return TanhGaussian(mean, jnp.clip(log_std, self.log_std_min, self.log_std_max))
        return DiagGaussian(mean, log_std)


def policy_for(action_space: Space, hidden_sizes: tuple[int, ...] = (100, 100), activation: str = "relu",
               init_std: float = 1.0, state_dependent_std: bool = False, squash: bool = False) -> MLPPolicy:
    """The MLP policy for ``action_space``: categorical for Discrete, Gaussian for Box (tanh-squashed
    into [-1, 1] with ``squash=True``, for SAC/PEARL; pair it with an action rescaling wrapper)."""
    if isinstance(action_space, Discrete):
        if squash:
            raise ConfigError("squash: a tanh-squashed policy needs a continuous (Box) action space")
        return MLPPolicy.categorical(action_space.n, tuple(hidden_sizes), activation)
    if isinstance(action_space, Box):
        head = "tanh_gaussian" if squash else "gaussian"
        return MLPPolicy(head, action_space.flat_dim, tuple(hidden_sizes), activation, state_dependent_std, init_std)
    raise TypeError(f"unsupported action space {action_space!r}")


@dataclasses.dataclass(frozen=True)
class ValueMLP:
    """State-value MLP: obs [..., obs_dim] -> [...]."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    def __post_init__(self):
        activation_fn(self.activation)

    @property
    def _net(self) -> MLP:
        return MLP(tuple(self.hidden_sizes), 1, self.activation)

    def init(self, key: jax.Array, obs_shape: tuple[int, ...]) -> Params:
        return self._net.init(key, jnp.zeros(obs_shape, jnp.float32))["params"]

    def apply(self, params: Params, obs: jax.Array) -> jax.Array:
        return self._net.apply({"params": params}, obs.astype(jnp.float32))[..., 0]



@dataclasses.dataclass(frozen=True)
class ContextPolicy(DistPolicy):
    """A policy over ``concat(obs, c)`` with a context vector ``c`` (CAVIA's adapted context, MAESN's
    latent). Its params are the weights ``theta`` (then ``c = 0``) or a pair ``(theta, c)``; ``c`` is
    float32[..., C], broadcast against the observation's batch axes (e.g. [E, 1, C] for one context
    per episode of obs [E, T, ...])."""

    base: MLPPolicy
    num_context_params: int

    def _split(self, params: Any) -> tuple[Params, jax.Array]:
        if isinstance(params, tuple):
            return params
        return params, jnp.zeros((self.num_context_params,), jnp.float32)

    def _inputs(self, obs: jax.Array, phi: jax.Array) -> jax.Array:
        obs = obs.astype(jnp.float32)
        return jnp.concatenate([obs, jnp.broadcast_to(phi, (*obs.shape[:-1], phi.shape[-1]))], axis=-1)

    def init(self, key: jax.Array, obs_shape: tuple[int, ...]) -> Params:
        return self.base.init(key, (*obs_shape[:-1], obs_shape[-1] + self.num_context_params))

    def dist(self, params: Any, obs: jax.Array):
        theta, phi = self._split(params)
        return self.base.dist(theta, self._inputs(obs, phi))


Policy = MLPPolicy

__all__ = ["ACTIVATIONS", "HEADS", "MLP", "ContextPolicy", "MLPPolicy", "Policy", "ValueMLP", "activation_fn",
           "policy_for"]
