"""Recurrent (RL²-style) actor-critic: a GRU over (observation, previous action, previous reward,
done flag), with a policy head and a value head.

One step is ``step(params, carry, inputs) -> (carry, dist, value)``; the network is an actor of
:mod:`jmeta.rollout` (``initial_carry`` / ``episode_start`` / ``act``), so the trial rollout engine
drives it (:meth:`RecurrentActorCritic.deterministic_actor` acts with the mode), and
:meth:`RecurrentActorCritic.unroll` replays a recorded trial (the learner's forward pass), keeping the
carry unchanged on masked steps exactly as the rollout did, so replayed log-probabilities equal the
behaviour ones.

Carry: ``{"policy": [H]}`` with a shared core, ``{"policy": [H], "value": [H]}`` with a separate
value core (both float32, zeros at the start of every trial).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.networks.cnn import split_pixels
from jmeta.networks.distributions import Categorical, DiagGaussian
from jmeta.networks.mlp import MLP, hidden_layers
from jmeta.spaces import Box, Discrete, Space
from jmeta.types import Params, StepInputs, Trajectory

Carry = dict[str, jax.Array]


def encode_inputs(inputs: StepInputs, action_space: Space) -> jax.Array:
    """Flat float32 network input ``[obs, prev_action, prev_reward, prev_done]``.

    obs is flattened; a discrete previous action is one-hot encoded (-1, "no action yet", encodes
    as zeros); a continuous one is passed as is. Leading batch axes are kept: [..., D].
    """
    lead = inputs.prev_reward.shape
    obs = inputs.obs.astype(jnp.float32).reshape(*lead, -1)
    if isinstance(action_space, Discrete):
        action = jax.nn.one_hot(inputs.prev_action, action_space.n, dtype=jnp.float32)
    else:
        action = inputs.prev_action.astype(jnp.float32).reshape(*lead, -1)
    scalars = jnp.stack([inputs.prev_reward.astype(jnp.float32), inputs.prev_done.astype(jnp.float32)], axis=-1)
    return jnp.concatenate([obs, action, scalars], axis=-1)


class _Core(nn.Module):
    """(Pixel encoder,) input embedding MLP, then a GRU cell. ([H], [D]) -> ([H], [H]).

    With ``image_shape`` the first ``H*W*C`` input entries are an image, encoded by
    :class:`jmeta.networks.cnn.PixelEncoder` before the MLP."""

    hidden_size: int
    embed_sizes: Sequence[int]
    activation: str
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128
    context_size: int = 0
    context_embed: int = 64

    @nn.compact
    def __call__(self, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.context_size > 0:  # the last entries: a context with its own embedding
            x, context = x[..., : -self.context_size], x[..., -self.context_size :]
        if self.image_shape is not None:
            x = split_pixels(x, self.image_shape, self.pixel_embed_size)
        x = hidden_layers(x, self.embed_sizes, self.activation)
        if self.context_size > 0:
            context = hidden_layers(context, (self.context_embed,), self.activation)
            x = jnp.concatenate([x, context], axis=-1)
        return nn.GRUCell(self.hidden_size, name="gru")(carry, x)


class _ActorCriticNet(nn.Module):
    num_outputs: int
    discrete: bool
    hidden_size: int
    embed_sizes: Sequence[int]
    head_sizes: Sequence[int]
    activation: str
    shared_core: bool
    init_log_std: float
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128
    context_size: int = 0
    context_embed: int = 64

    @nn.compact
    def __call__(self, carry: Carry, x: jax.Array):
        core = (self.hidden_size, self.embed_sizes, self.activation, self.image_shape, self.pixel_embed_size,
                self.context_size, self.context_embed)
        policy_h, features = _Core(*core, name="core")(carry["policy"], x)
        new_carry = {"policy": policy_h}
        if self.shared_core:
            value_features = features
        else:
            value_h, value_features = _Core(*core, name="value_core")(
                carry["value"], x
            )
            new_carry["value"] = value_h
        out = MLP(self.head_sizes, self.num_outputs, self.activation, out_scale=0.01, name="policy_head")(features)
        value = MLP(self.head_sizes, 1, self.activation, name="value_head")(value_features)[..., 0]
        if self.discrete:
            return new_carry, out, None, value
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.num_outputs,))
        return new_carry, out, jnp.broadcast_to(log_std, out.shape), value


@dataclasses.dataclass(frozen=True)
class RecurrentActorCritic:
    """GRU actor-critic over :func:`encode_inputs`; categorical or diagonal-Gaussian actions.

    Attributes:
      action_space: the env's action space (Discrete -> categorical, Box -> Gaussian with a learned
        state-independent log-std, floored at ``log(min_std)``).
      hidden_size: GRU width H.
      embed_sizes: MLP layers applied to the input before the GRU (may be empty).
      head_sizes: hidden layers of the policy and value heads on top of the GRU output.
      shared_core: one GRU for policy and value (True) or a second GRU for the value (False).
      image_shape: ``(H, W, C)`` when the observation starts with an image (pixel envs,
        :func:`jmeta.networks.cnn.image_shape`): each core encodes it with a
        :class:`jmeta.networks.cnn.PixelEncoder` to ``pixel_embed_size`` features first.
      context_size: > 0 when the last ``context_size`` entries of each observation are a context
        (DREAM's task embedding): it gets its own ``context_embed``-wide layer, concatenated with the
        embedding of the rest before the GRU, so a small context is not drowned by a large observation.
    """

    action_space: Space
    hidden_size: int = 128
    embed_sizes: tuple[int, ...] = (64,)
    head_sizes: tuple[int, ...] = (64,)
    activation: str = "tanh"
    shared_core: bool = True
    init_std: float = 1.0
    min_std: float = 1e-6
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128
    context_size: int = 0
    context_embed: int = 64

    @property
    def _net(self) -> _ActorCriticNet:
        discrete = isinstance(self.action_space, Discrete)
        if not discrete and not isinstance(self.action_space, Box):
            raise TypeError(f"unsupported action space {self.action_space!r}")
        outputs = self.action_space.n if discrete else self.action_space.flat_dim
        return _ActorCriticNet(
            outputs, discrete, self.hidden_size, tuple(self.embed_sizes), tuple(self.head_sizes),
            self.activation, self.shared_core, math.log(self.init_std), self.image_shape, self.pixel_embed_size,
            self.context_size, self.context_embed,
        )

    privileged = False  # an actor of jmeta.rollout that sees only the observation and its inputs

    def initial_carry(self, params: Params | None = None, key: jax.Array | None = None) -> Carry:
        """The carry every trial starts from (zeros; ``params`` and ``key`` are unused)."""
        zeros = jnp.zeros((self.hidden_size,), jnp.float32)
        return {"policy": zeros} if self.shared_core else {"policy": zeros, "value": zeros}

    def init(self, key: jax.Array, input_size: int) -> Params:
        """Params for inputs of size ``input_size`` (the length of :func:`encode_inputs`' output)."""
        return self._net.init(key, self.initial_carry(), jnp.zeros((input_size,), jnp.float32))["params"]

    def input_size(self, observation_space: Space) -> int:
        obs = math.prod(observation_space.shape)
        action = self.action_space.n if isinstance(self.action_space, Discrete) else self.action_space.flat_dim
        return obs + action + 2

    def step(self, params: Params, carry: Carry, inputs: StepInputs) -> tuple[Carry, Any, jax.Array]:
        """One step: ``(carry [H], inputs) -> (carry, action distribution, value scalar)``."""
        if self.context_size > 0:  # move the context from the end of the observation to the end of the input
            obs, context = inputs.obs[..., : -self.context_size], inputs.obs[..., -self.context_size :]
            x = jnp.concatenate([encode_inputs(inputs.replace(obs=obs), self.action_space),
                                 context.astype(jnp.float32)], axis=-1)
        else:
            x = encode_inputs(inputs, self.action_space)
        new_carry, out, log_std, value = self._net.apply({"params": params}, carry, x)
        if log_std is None:
            return new_carry, Categorical(out), value
        return new_carry, DiagGaussian(out, jnp.maximum(log_std, math.log(self.min_std))), value

    def episode_start(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array) -> Carry:
        """The carry runs on across the episodes of a trial."""
        return carry

    def act(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array):
        """``(carry, action, log_prob, {})``: a sampled action (the trial engine records the inputs
        that :meth:`unroll` replays)."""
        new_carry, dist, _ = self.step(params, carry, inputs)
        action = dist.sample(key)
        return new_carry, action, dist.log_prob(action), {}

    def deterministic_actor(self) -> _ModeActor:
        """The same network acting with the mode of its action distribution."""
        return _ModeActor(self)

    def unroll(self, params: Params, trial: Trajectory, truncation: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Replays one recorded trial (leaves [K, T, ...]) from the initial carry.

        Returns ``(log_prob, value, entropy)``, each [K, T]. Masked steps leave the carry unchanged,
        as in :func:`jmeta.rollout.rollout_trial`. ``truncation > 0`` cuts the gradient through the
        carry every ``truncation`` steps of the flattened trial (truncated BPTT; the forward values
        are unchanged).
        """
        num_episodes, horizon = trial.mask.shape
        flat = jax.tree_util.tree_map(lambda x: x.reshape(num_episodes * horizon, *x.shape[2:]), trial)
        inputs = StepInputs(flat.obs, flat.extras["prev_action"], flat.extras["prev_reward"], flat.extras["prev_done"])
        index = jnp.arange(num_episodes * horizon)

        def body(carry, xs):
            step_inputs, action, mask, i = xs
            if truncation > 0:
                carry = jax.tree_util.tree_map(
                    lambda c: jnp.where(i % truncation == 0, jax.lax.stop_gradient(c), c), carry
                )
            new_carry, dist, value = self.step(params, carry, step_inputs)
            keep = mask > 0
            carry = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
            return carry, (dist.log_prob(action), value, dist.entropy())

        _, (log_prob, value, entropy) = jax.lax.scan(body, self.initial_carry(), (inputs, flat.action, flat.mask, index))
        shape = (num_episodes, horizon)
        return log_prob.reshape(shape), value.reshape(shape), entropy.reshape(shape)


@dataclasses.dataclass(frozen=True)
class _ModeActor:
    """A :class:`RecurrentActorCritic` acting with the mode of its distribution (meta-test option)."""

    net: RecurrentActorCritic
    privileged = False

    def initial_carry(self, params: Params, key: jax.Array) -> Carry:
        return self.net.initial_carry()

    def episode_start(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array) -> Carry:
        return carry

    def act(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array):
        new_carry, dist, _ = self.net.step(params, carry, inputs)
        action = dist.mode()
        return new_carry, action, dist.log_prob(action), {}
