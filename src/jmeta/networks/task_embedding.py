"""DREAM's two task embeddings (Liu et al. 2021; ezliu/dream ``embed.py``).

* :class:`TaskIdEmbedder`, ``f(mu)``: the task's feature vector (:func:`jmeta.envs.base.task_features`,
  e.g. the goal colour) through an MLP to an ``embed_size`` vector. The execution policy is trained on
  ``f(mu)`` plus Gaussian noise, with a penalty on ``||f(mu)||^2`` above a cutoff: an information
  bottleneck that keeps only what execution needs.
* :class:`TrajectoryEmbedder`, ``g(tau_{:t})``: a recurrent decoder over the exploration episode's
  transitions ``(s, a, s')`` (optionally also ``r``) that predicts ``f(mu)`` after every prefix,
  including the empty one. Each transition goes through per-part embeddings (a state MLP shared by
  ``s`` and ``s'``, or a :class:`jmeta.networks.cnn.PixelEncoder` on pixel envs; a linear action
  embedding), a 2-layer MLP, a GRU (DREAM: an LSTM) and an output MLP; the prediction before any
  transition comes from the zero hidden state. Masked steps (after the episode ended) leave the
  hidden state, and so the prediction, unchanged, so the last prediction is that of the whole episode.

The exploration reward is :func:`information_gain`: ``r_t = d_t - d_{t+1} - c`` with
``d_t = ||g(tau_{:t}) - sg(f(mu))||^2`` (ezliu/dream ``TrajectoryEmbedder.label_rewards``).
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.networks.cnn import PixelEncoder, encode_image_part
from jmeta.networks.mlp import MLP
from jmeta.spaces import Discrete, Space
from jmeta.types import Params


class _IdNet(nn.Module):
    hidden_sizes: tuple[int, ...]
    embed_size: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return MLP(self.hidden_sizes, self.embed_size, "relu")(features)


@dataclasses.dataclass(frozen=True)
class TaskIdEmbedder:
    """``f(mu)``: task features [..., F] -> embedding [..., embed_size]."""

    embed_size: int = 64
    hidden_sizes: tuple[int, ...] = (32,)

    @property
    def _net(self) -> _IdNet:
        return _IdNet(tuple(self.hidden_sizes), self.embed_size)

    def init(self, key: jax.Array, feature_size: int) -> Params:
        return self._net.init(key, jnp.zeros((feature_size,), jnp.float32))["params"]

    def __call__(self, params: Params, features: jax.Array) -> jax.Array:
        return self._net.apply({"params": params}, features.astype(jnp.float32))


class _TransitionNet(nn.Module):
    """(s, a, s'[, r]) -> transition features (ezliu/dream ``TransitionEmbedder``)."""

    state_embed: int
    action_embed: int
    transition_embed: int
    image_shape: tuple[int, int, int] | None
    pixel_embed_size: int

    def setup(self):
        self.pixels = None if self.image_shape is None else PixelEncoder(self.pixel_embed_size)
        self.state_mlp = nn.Dense(self.state_embed)
        self.action_dense = nn.Dense(self.action_embed)
        self.hidden = nn.Dense(128)
        self.out = nn.Dense(self.transition_embed)

    def state(self, x):
        if self.pixels is not None:
            x = encode_image_part(x, self.image_shape, self.pixels)
        return nn.relu(self.state_mlp(x))

    def __call__(self, obs, action, next_obs, reward):
        parts = [self.state(obs), self.action_dense(action), self.state(next_obs)]
        if reward is not None:
            parts.append(reward[..., None])
        return self.out(nn.relu(self.hidden(jnp.concatenate(parts, axis=-1))))


class _TrajectoryNet(nn.Module):
    state_embed: int
    action_embed: int
    transition_embed: int
    hidden_size: int
    embed_size: int
    image_shape: tuple[int, int, int] | None
    pixel_embed_size: int

    def setup(self):
        self.transition = _TransitionNet(self.state_embed, self.action_embed, self.transition_embed,
                                         self.image_shape, self.pixel_embed_size)
        self.gru = nn.GRUCell(self.hidden_size)
        self.head = nn.Dense(128)
        self.out = nn.Dense(self.embed_size)

    def embed(self, obs, action, next_obs, reward):
        return self.transition(obs, action, next_obs, reward)

    def cell(self, h, x):
        return self.gru(h, x)[0]

    def predict(self, h):
        return self.out(nn.relu(self.head(h)))

    def __call__(self, h, obs, action, next_obs, reward):  # used by init only
        return self.predict(self.cell(h, self.embed(obs, action, next_obs, reward)))


@dataclasses.dataclass(frozen=True)
class TrajectoryEmbedder:
    """``g``: the predictions ``g(tau_{:t})`` for t = 0..T of one exploration episode.

    action_space: the env's (a discrete action is one-hot encoded); use_reward: also feed ``r``
    (DREAM's shipped configs do not); image_shape: pixel observations (``(H, W, C)``) or None.
    """

    action_space: Space
    embed_size: int = 64
    hidden_size: int = 128
    state_embed: int = 64
    action_embed: int = 32
    transition_embed: int = 64
    use_reward: bool = False
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128

    @property
    def _net(self) -> _TrajectoryNet:
        return _TrajectoryNet(self.state_embed, self.action_embed, self.transition_embed, self.hidden_size,
                              self.embed_size, self.image_shape, self.pixel_embed_size)

    def _action(self, action: jax.Array) -> jax.Array:
        if isinstance(self.action_space, Discrete):
            return jax.nn.one_hot(action, self.action_space.n, dtype=jnp.float32)
        return action.astype(jnp.float32).reshape(*action.shape[: action.ndim - len(self.action_space.shape)], -1)

    def init(self, key: jax.Array, obs_size: int) -> Params:
        obs = jnp.zeros((obs_size,), jnp.float32)
        action = self._action(jnp.zeros(self.action_space.shape, jnp.dtype(self.action_space.dtype)))
        reward = jnp.zeros((), jnp.float32) if self.use_reward else None
        h = jnp.zeros((self.hidden_size,), jnp.float32)
        return self._net.init(key, h, obs, action, obs, reward)["params"]

    def contexts(self, params: Params, obs: jax.Array, action: jax.Array, next_obs: jax.Array, reward: jax.Array,
                 mask: jax.Array) -> jax.Array:
        """One episode: obs, next_obs [T, D]; action [T, ...]; reward, mask [T] -> predictions [T + 1, E].

        Row 0 is the prediction from no transition; row t + 1 after transitions 0..t. A masked step
        repeats the previous row."""
        chex.assert_rank(mask, 1)
        net, variables = self._net, {"params": params}
        reward = reward.astype(jnp.float32) if self.use_reward else None
        x = net.apply(variables, obs.astype(jnp.float32), self._action(action), next_obs.astype(jnp.float32),
                      reward, method=_TrajectoryNet.embed)  # [T, transition_embed]: all steps at once

        def body(h, xs):
            x_t, m = xs
            h = jnp.where(m > 0, net.apply(variables, h, x_t, method=_TrajectoryNet.cell), h)
            return h, h

        h0 = jnp.zeros((self.hidden_size,), jnp.float32)
        _, hs = jax.lax.scan(body, h0, (x, mask))
        hs = jnp.concatenate([h0[None], hs], axis=0)
        return net.apply(variables, hs, method=_TrajectoryNet.predict)


def squared_distances(contexts: jax.Array, target: jax.Array) -> jax.Array:
    """``d_t = ||contexts_t - target||^2``: contexts [..., T + 1, E], target [..., E] -> [..., T + 1]."""
    chex.assert_equal_shape([contexts[..., 0, :], target])
    return jnp.sum((contexts - target[..., None, :]) ** 2, axis=-1)


def information_gain(distances: jax.Array, mask: jax.Array, penalty: float | jax.Array) -> jax.Array:
    """DREAM's exploration reward ``r_t = (d_t - d_{t+1} - penalty) * mask_t``: [..., T + 1], [..., T] -> [..., T]."""
    chex.assert_equal_shape([distances[..., 1:], mask])
    return (distances[..., :-1] - distances[..., 1:] - penalty) * mask


def bottleneck_penalty(id_embedding: jax.Array, cutoff: float | jax.Array) -> jax.Array:
    """DREAM's ``mean(max(||f(mu)||^2, cutoff))``: [..., E] -> scalar (a gradient only above the cutoff)."""
    return jnp.mean(jnp.maximum(jnp.sum(id_embedding**2, axis=-1), cutoff))


def decoder_loss(distances: jax.Array, mask: jax.Array) -> jax.Array:
    """DREAM's transition-context loss: the mean of ``d_t`` over every valid prefix including the
    empty one. distances [..., T + 1] (computed against ``sg(f(mu))``), mask [..., T] -> scalar."""
    chex.assert_equal_shape([distances[..., 1:], mask])
    valid = jnp.concatenate([jnp.ones_like(mask[..., :1]), mask], axis=-1)
    return jnp.sum(distances * valid) / jnp.maximum(jnp.sum(valid), 1.0)


__all__ = ["TaskIdEmbedder", "TrajectoryEmbedder", "bottleneck_penalty", "decoder_loss",
           "information_gain", "squared_distances"]
