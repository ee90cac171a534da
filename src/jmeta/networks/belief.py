"""Belief networks: a recurrent trial encoder giving a Gaussian posterior over a task latent at
every step, the decoders that train it (reward, state, task) and a policy on (state, belief).

VariBAD (Zintgraf et al. 2020) and task inference (Humplik et al. 2019) are built from these
parts; DREAM can reuse the encoder and decoders.

**Encoder** (:class:`TrialEncoder`). The input at step ``t`` of a trial is the rollout engine's
:class:`jmeta.types.StepInputs` (``obs_t``, ``a_{t-1}``, ``r_{t-1}``, the episode-start flag), each
part through its own ``relu(Dense)`` embedding (state, action, reward; an embedding of width 0 drops
its part), optional dense layers, a GRU cell, optional dense layers, then two linear heads giving
the posterior's mean and log-variance ``[latent]``. The trial's first belief is the *prior*: the
heads applied to the zero hidden state, before any input. A trial of ``L`` steps therefore has
``L + 1`` beliefs (:meth:`TrialEncoder.encode`): belief ``j`` is what the agent knows after ``j``
transitions, and the policy acts at step ``j`` on belief ``j``.

**Decoders** (each ``[..., latent] -> prediction``):

* :class:`RewardDecoder`: multi-head (``z -> [num_states]`` logits or values, one per discrete state,
  read at the index of the next state; VariBAD's grid world) or single-head (``z`` with embeddings
  of ``s'`` and optionally ``s`` and ``a``, VariBAD's MuJoCo and point-robot configs);
* :class:`StateDecoder`: ``(z, s, a) -> s'``;
* :class:`TaskDecoder`: ``z -> task features`` (Humplik et al.'s task inference).

**Policy** (:class:`BeliefActorCritic`): observation and context (belief mean and log-variance, or
the true task features for the belief-oracle baseline) each through ``tanh(Dense)``, then separate
actor and critic MLPs, as VariBAD's ``models/policy.py``.

:func:`gaussian_kl` and :func:`kl_to_previous` give the ELBO's KL terms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jmeta.networks.cnn import PixelEncoder, encode_image_part, split_pixels
from jmeta.networks.distributions import Categorical, DiagGaussian
from jmeta.networks.mlp import MLP, activation_fn
from jmeta.spaces import Box, Discrete, Space
from jmeta.types import Params, StepInputs


def gaussian_kl(mean_q: jax.Array, logvar_q: jax.Array, mean_p: jax.Array, logvar_p: jax.Array) -> jax.Array:
    """``KL(N(mean_q, exp(logvar_q)) || N(mean_p, exp(logvar_p)))`` of diagonal Gaussians. [..., Z] -> [...]."""
    chex.assert_equal_shape([mean_q, logvar_q, mean_p, logvar_p])
    return 0.5 * jnp.sum(logvar_p - logvar_q - 1.0 + jnp.exp(logvar_q - logvar_p)
                         + (mean_q - mean_p) ** 2 * jnp.exp(-logvar_p), axis=-1)


def kl_to_previous(means: jax.Array, logvars: jax.Array, to_standard_normal: bool = False) -> jax.Array:
    """The ELBO's KL term of every belief of a trial. means, logvars: [L + 1, Z] -> [L + 1].

    ``KL_0 = KL(q_0 || N(0, I))`` and ``KL_t = KL(q_t || q_{t-1})`` (VariBAD's default; gradients
    reach both beliefs); ``to_standard_normal`` gives ``KL(q_t || N(0, I))`` for every t."""
    chex.assert_rank([means, logvars], 2)
    if to_standard_normal:
        previous_mean, previous_logvar = jnp.zeros_like(means), jnp.zeros_like(logvars)
    else:
        zeros = jnp.zeros_like(means[:1])
        previous_mean = jnp.concatenate([zeros, means[:-1]])
        previous_logvar = jnp.concatenate([zeros, logvars[:-1]])
    return gaussian_kl(means, logvars, previous_mean, previous_logvar)


def flat_action(action: jax.Array, action_space: Space) -> jax.Array:
    """Float features of an action: one-hot for discrete (-1, "no action yet", is all zeros), the
    flattened vector for continuous. [..., *action_shape] -> [..., A]."""
    if isinstance(action_space, Discrete):
        return jax.nn.one_hot(action, action_space.n, dtype=jnp.float32)
    lead = action.shape[: action.ndim - len(action_space.shape)]
    return action.astype(jnp.float32).reshape(*lead, -1)


def action_features_size(action_space: Space) -> int:
    return action_space.n if isinstance(action_space, Discrete) else action_space.flat_dim


class _EncoderNet(nn.Module):
    latent_size: int
    hidden_size: int
    state_embed: int
    action_embed: int
    reward_embed: int
    layers_before: Sequence[int]
    layers_after: Sequence[int]
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128

    def setup(self):
        self.pixels = None if self.image_shape is None else PixelEncoder(self.pixel_embed_size)
        self.before = [nn.Dense(w) for w in self.layers_before]
        self.gru = nn.GRUCell(self.hidden_size, kernel_init=nn.initializers.orthogonal(),
                              recurrent_kernel_init=nn.initializers.orthogonal())
        self.after = [nn.Dense(w) for w in self.layers_after]
        self.mean_head = nn.Dense(self.latent_size)
        self.logvar_head = nn.Dense(self.latent_size)
        self.state_fc = nn.Dense(self.state_embed) if self.state_embed > 0 else None
        self.action_fc = nn.Dense(self.action_embed) if self.action_embed > 0 else None
        self.reward_fc = nn.Dense(self.reward_embed) if self.reward_embed > 0 else None

    def belief(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        for layer in self.after:
            h = nn.relu(layer(h))
        return self.mean_head(h), self.logvar_head(h)

    def __call__(self, h: jax.Array, state: jax.Array, action: jax.Array, reward: jax.Array):
        if self.pixels is not None:  # the state starts with the image
            state = encode_image_part(state, self.image_shape, self.pixels)
        parts = [nn.relu(fc(x)) for fc, x in ((self.state_fc, state), (self.action_fc, action), (self.reward_fc, reward))
                 if fc is not None]
        x = jnp.concatenate(parts, axis=-1)
        for layer in self.before:
            x = nn.relu(layer(x))
        h, _ = self.gru(h, x)
        return (h, *self.belief(h))


@dataclasses.dataclass(frozen=True)
class TrialEncoder:
    """GRU posterior over a task latent (module docstring). Hidden state [H]; beliefs [Z] each.

    Attributes: action_space; latent_size Z; hidden_size H; state/action/reward embedding widths
    (0 drops the part; the state part is the flattened observation plus the episode-start flag);
    layers_before / layers_after: dense ReLU layers around the GRU; image_shape: ``(H, W, C)`` for
    pixel observations (the image part goes through a :class:`jmeta.networks.cnn.PixelEncoder` first).
    """

    action_space: Space
    latent_size: int = 5
    hidden_size: int = 64
    state_embed: int = 8
    action_embed: int = 0
    reward_embed: int = 8
    layers_before: tuple[int, ...] = ()
    layers_after: tuple[int, ...] = ()
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128

    @property
    def _net(self) -> _EncoderNet:
        return _EncoderNet(self.latent_size, self.hidden_size, self.state_embed, self.action_embed, self.reward_embed,
                           tuple(self.layers_before), tuple(self.layers_after), self.image_shape,
                           self.pixel_embed_size)

    def features(self, inputs: StepInputs) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(state [.., D + 1], action [.., A], reward [.., 1]) features of step inputs with leading axes."""
        lead = inputs.prev_reward.shape
        obs = inputs.obs.astype(jnp.float32).reshape(*lead, -1)
        state = jnp.concatenate([obs, inputs.prev_done.astype(jnp.float32)[..., None]], axis=-1)
        action = flat_action(inputs.prev_action, self.action_space)
        return state, action, inputs.prev_reward.astype(jnp.float32)[..., None]

    def init(self, key: jax.Array, obs_size: int) -> Params:
        h = self.initial_hidden()
        state = jnp.zeros((obs_size + 1,), jnp.float32)
        action = jnp.zeros((action_features_size(self.action_space),), jnp.float32)
        return self._net.init(key, h, state, action, jnp.zeros((1,), jnp.float32))["params"]

    def initial_hidden(self) -> jax.Array:
        """The zero hidden state every trial starts from, [H]."""
        return jnp.zeros((self.hidden_size,), jnp.float32)

    def prior(self, params: Params) -> tuple[jax.Array, jax.Array]:
        """Belief before any input: ``(mean [Z], logvar [Z])`` from the zero hidden state."""
        return self._net.apply({"params": params}, self.initial_hidden(), method=_EncoderNet.belief)

    def step(self, params: Params, h: jax.Array, inputs: StepInputs) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Consumes one step's inputs: ``h [H] -> (h', mean [Z], logvar [Z])``."""
        return self._net.apply({"params": params}, h, *self.features(inputs))

    def encode(self, params: Params, inputs: StepInputs, valid: jax.Array, truncation: int = 0
               ) -> tuple[jax.Array, jax.Array]:
        """Every belief of a trial from its ``L`` consumed inputs (leaves [L, ...]) and their validity [L].

        Returns ``(means, logvars)``, each [L + 1, Z]: the prior, then the belief after each input.
        An invalid input (a masked step) leaves the hidden state and the belief unchanged.
        ``truncation > 0`` stops the gradient through the hidden state every that many inputs."""
        prior_mean, prior_logvar = self.prior(params)
        index = jnp.arange(valid.shape[0])

        def body(carry, xs):
            h, mean, logvar = carry
            step_inputs, ok, i = xs
            if truncation > 0:
                h = jnp.where(i % truncation == 0, jax.lax.stop_gradient(h), h)
            new_h, new_mean, new_logvar = self.step(params, h, step_inputs)
            keep = ok > 0
            carry = (jnp.where(keep, new_h, h), jnp.where(keep, new_mean, mean), jnp.where(keep, new_logvar, logvar))
            return carry, carry[1:]

        _, (means, logvars) = jax.lax.scan(body, (self.initial_hidden(), prior_mean, prior_logvar),
                                           (inputs, valid, index))
        return jnp.concatenate([prior_mean[None], means]), jnp.concatenate([prior_logvar[None], logvars])


class _RewardDecoderNet(nn.Module):
    multi_head: bool
    num_outputs: int
    layers: Sequence[int]
    state_embed: int
    action_embed: int
    input_prev_state: bool
    input_action: bool

    @nn.compact
    def __call__(self, z, next_state, state, action):
        if self.multi_head:
            x = z
        else:
            state_fc = nn.Dense(self.state_embed, name="state_fc")
            parts = [z, nn.relu(state_fc(next_state))]
            if self.input_prev_state:
                parts.append(nn.relu(state_fc(state)))
            if self.input_action:
                parts.append(nn.relu(nn.Dense(self.action_embed, name="action_fc")(action)))
            x = jnp.concatenate(parts, axis=-1)
        for w in self.layers:
            x = nn.relu(nn.Dense(w)(x))
        return nn.Dense(self.num_outputs, name="out")(x)


@dataclasses.dataclass(frozen=True)
class RewardDecoder:
    """``p(r | z, s[, s', a])``. Multi-head: ``z -> [num_states]`` outputs read at the next state's
    index (``state_index``); single-head: one output from ``z`` and embedded ``s'`` (plus ``s`` and
    ``a`` when asked). ``kind``: "bernoulli" (a logit of ``r > 0``) or "gaussian" (a mean, MSE)."""

    action_space: Space
    kind: str = "bernoulli"
    multi_head: bool = False
    num_states: int = 0
    layers: tuple[int, ...] = (32, 32)
    state_embed: int = 16
    action_embed: int = 16
    input_prev_state: bool = False
    input_action: bool = False

    @property
    def _net(self) -> _RewardDecoderNet:
        outputs = self.num_states if self.multi_head else 1
        return _RewardDecoderNet(self.multi_head, outputs, tuple(self.layers), self.state_embed, self.action_embed,
                                 self.input_prev_state, self.input_action)

    def init(self, key: jax.Array, latent_size: int, obs_size: int) -> Params:
        zeros = jnp.zeros((obs_size,), jnp.float32)
        action = jnp.zeros((action_features_size(self.action_space),), jnp.float32)
        return self._net.init(key, jnp.zeros((latent_size,), jnp.float32), zeros, zeros, action)["params"]

    def predict(self, params: Params, z: jax.Array, obs: jax.Array, action: jax.Array, next_obs: jax.Array,
                next_state_index: jax.Array | None) -> jax.Array:
        """The decoder's output for one transition: a logit (bernoulli) or a mean (gaussian). Leading
        axes of ``z`` broadcast against the transition's; obs [.., D]; action raw; -> [...]."""
        out = self._net.apply({"params": params}, z, next_obs, obs, flat_action(action, self.action_space))
        if self.multi_head:
            out = jnp.broadcast_to(out, (*next_state_index.shape, out.shape[-1]))
            return jnp.take_along_axis(out, next_state_index[..., None], axis=-1)[..., 0]
        return out[..., 0]

    def loss(self, prediction: jax.Array, reward: jax.Array) -> jax.Array:
        """Per-transition negative log-likelihood (up to constants): binary cross-entropy of
        ``1[r > 0]`` (bernoulli) or squared error (gaussian). [...] -> [...]."""
        if self.kind == "bernoulli":
            target = (reward > 0).astype(jnp.float32)
            return -(target * jax.nn.log_sigmoid(prediction) + (1.0 - target) * jax.nn.log_sigmoid(-prediction))
        return (prediction - reward) ** 2


class _StateDecoderNet(nn.Module):
    obs_size: int
    layers: Sequence[int]
    state_embed: int
    action_embed: int

    @nn.compact
    def __call__(self, z, state, action):
        parts = [z, nn.relu(nn.Dense(self.state_embed, name="state_fc")(state))]
        if self.action_embed > 0:
            parts.append(nn.relu(nn.Dense(self.action_embed, name="action_fc")(action)))
        x = jnp.concatenate(parts, axis=-1)
        for w in self.layers:
            x = nn.relu(nn.Dense(w)(x))
        return nn.Dense(self.obs_size, name="out")(x)


@dataclasses.dataclass(frozen=True)
class StateDecoder:
    """``(z, s, a) -> s'`` (deterministic, squared error averaged over the observation's entries)."""

    action_space: Space
    obs_size: int
    layers: tuple[int, ...] = (32, 32)
    state_embed: int = 16
    action_embed: int = 16

    @property
    def _net(self) -> _StateDecoderNet:
        return _StateDecoderNet(self.obs_size, tuple(self.layers), self.state_embed, self.action_embed)

    def init(self, key: jax.Array, latent_size: int) -> Params:
        action = jnp.zeros((action_features_size(self.action_space),), jnp.float32)
        return self._net.init(key, jnp.zeros((latent_size,), jnp.float32), jnp.zeros((self.obs_size,)), action)["params"]

    def loss(self, params: Params, z: jax.Array, obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
        """Mean squared error of the predicted next observation. -> [...]."""
        prediction = self._net.apply({"params": params}, z, obs, flat_action(action, self.action_space))
        return jnp.mean((prediction - next_obs) ** 2, axis=-1)


@dataclasses.dataclass(frozen=True)
class TaskDecoder:
    """``z -> task features`` [F] (Humplik et al.; VariBAD's ``task_description`` prediction)."""

    task_size: int
    layers: tuple[int, ...] = (32, 32)

    @property
    def _net(self) -> MLP:
        return MLP(tuple(self.layers), self.task_size, "relu")

    def init(self, key: jax.Array, latent_size: int) -> Params:
        return self._net.init(key, jnp.zeros((latent_size,), jnp.float32))["params"]

    def predict(self, params: Params, z: jax.Array) -> jax.Array:
        return self._net.apply({"params": params}, z)

    def loss(self, params: Params, z: jax.Array, task_features: jax.Array) -> jax.Array:
        """Mean squared error over the task features (VariBAD's ``task_description`` loss). -> [...]."""
        return jnp.mean((self.predict(params, z) - task_features) ** 2, axis=-1)


class _PolicyNet(nn.Module):
    num_outputs: int
    discrete: bool
    obs_embed: int
    context_embed: int
    layers: Sequence[int]
    activation: str
    init_log_std: float
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128

    @nn.compact
    def __call__(self, obs: jax.Array, context: jax.Array):
        if self.image_shape is not None:
            obs = split_pixels(obs, self.image_shape, self.pixel_embed_size)
        parts = [obs if self.obs_embed == 0 else jnp.tanh(nn.Dense(self.obs_embed, name="obs_embed")(obs))]
        if context.shape[-1] > 0:
            parts.append(context if self.context_embed == 0
                         else jnp.tanh(nn.Dense(self.context_embed, name="context_embed")(context)))
        x = jnp.concatenate(parts, axis=-1)
        out = MLP(self.layers, self.num_outputs, self.activation, out_scale=0.01, name="actor")(x)
        value = MLP(self.layers, 1, self.activation, name="critic")(x)[..., 0]
        if self.discrete:
            return out, None, value
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.num_outputs,))
        return out, jnp.broadcast_to(log_std, out.shape), value


@dataclasses.dataclass(frozen=True)
class BeliefActorCritic:
    """Feed-forward actor-critic on ``(observation [D], context [C])`` (module docstring).

    Categorical actions for a Discrete space, a diagonal Gaussian with a learned state-independent
    log-std for a Box. ``obs_embed`` / ``context_embed``: widths of the tanh embeddings (0: the raw
    input); ``image_shape``: pixel observations, encoded by a :class:`jmeta.networks.cnn.PixelEncoder`
    before the observation embedding."""

    action_space: Space
    obs_embed: int = 16
    context_embed: int = 16
    layers: tuple[int, ...] = (32,)
    activation: str = "tanh"
    init_std: float = 1.0
    min_std: float = 1e-6
    image_shape: tuple[int, int, int] | None = None
    pixel_embed_size: int = 128

    @property
    def _net(self) -> _PolicyNet:
        discrete = isinstance(self.action_space, Discrete)
        if not discrete and not isinstance(self.action_space, Box):
            raise TypeError(f"unsupported action space {self.action_space!r}")
        activation_fn(self.activation)
        return _PolicyNet(action_features_size(self.action_space), discrete, self.obs_embed, self.context_embed,
                          tuple(self.layers), self.activation, math.log(self.init_std), self.image_shape,
                          self.pixel_embed_size)

    def init(self, key: jax.Array, obs_size: int, context_size: int) -> Params:
        return self._net.init(key, jnp.zeros((obs_size,), jnp.float32), jnp.zeros((context_size,), jnp.float32))["params"]

    def __call__(self, params: Params, obs: jax.Array, context: jax.Array):
        """``(action distribution, value)`` for obs [.., D] and context [.., C]."""
        out, log_std, value = self._net.apply({"params": params}, obs, context)
        if log_std is None:
            return Categorical(out), value
        return DiagGaussian(out, jnp.maximum(log_std, math.log(self.min_std))), value
