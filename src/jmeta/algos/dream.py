"""DREAM (Liu et al. 2021): decoupled reward-free exploration and execution for meta-RL.

A trial is one *exploration* episode followed by one *execution* episode of the same task. The two
are learned by separate recurrent policies, which breaks the chicken-and-egg problem of end-to-end
methods (exploring pays only once exploiting works, and vice versa):

* the **execution policy** ``pi_exec(a | s, z)`` is trained to solve the task given a task embedding
  ``z``. During meta-training ``z`` is the *task-id embedding* ``f(mu)`` (of the task's features,
  :func:`jmeta.envs.base.task_features`) plus Gaussian noise (std ``id_noise_std``), with the penalty
  ``mean(max(||f(mu)||^2, id_norm_cutoff))``: an information bottleneck, so ``f`` keeps only what
  execution needs (:class:`jmeta.networks.task_embedding.TaskIdEmbedder`);
* a **decoder** ``g`` (:class:`jmeta.networks.task_embedding.TrajectoryEmbedder`) reads the
  exploration episode and predicts ``f(mu)`` after every prefix ``tau_{:t}``, trained on the squared
  error to ``sg(f(mu))`` over all prefixes;
* the **exploration policy** ``pi_exp`` never sees the task's reward: its reward is the information
  gain ``r_t = d_t - d_{t+1} - penalty`` with ``d_t = ||g(tau_{:t}) - sg(f(mu))||^2``, i.e. how much
  step ``t`` moved the decoder's prediction towards the execution-relevant task embedding.

At meta-test the exploration policy runs one episode, ``z = g(tau^exp)`` (the prediction after the
whole episode) and the execution policy runs the execution episode on it; the reported return and
success are the execution episode's (axis "episode": 0 = exploration, 1 = execution).

This module is an **on-policy PPO variant** of the authors' off-policy recurrent double DQN (the
choice, and every other difference, is listed in ``docs/algorithms/dream.md``). One meta-iteration,
all inside ``jax.jit``:
  1. sample ``meta_batch_size`` tasks; roll out one exploration episode per task;
  2. decode it with the current ``g``; label the information-gain rewards;
  3. roll out one execution episode per task, conditioned on ``f(mu) + noise`` for a fraction
     ``1 - decoded_fraction`` of the tasks and on the decoded ``g(tau^exp)`` for the rest (the
     authors alternate the two per episode);
  4. GAE for both policies; ``ppo_epochs`` x ``num_minibatches`` minibatches of tasks, each step
     minimising the sum of the two PPO losses, the decoder loss and the bottleneck penalty (the
     execution loss recomputes ``z`` from the current ``f`` / ``g``, so it trains ``f``, and ``g``
     unless ``exec_grad_to_decoder`` is off).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jmeta.algos.base import EvalOut, MetaLearner, Preset, ViewerRollouts
from jmeta.algos.rl2 import MAZE_RUN, MAZE_SMALL_RUN, TrialBatch, trial_gae
from jmeta.envs.base import task_features
from jmeta.networks.cnn import image_shape
from jmeta.networks.mlp import ACTIVATIONS
from jmeta.networks.recurrent import RecurrentActorCritic
from jmeta.networks.task_embedding import (
    TaskIdEmbedder,
    TrajectoryEmbedder,
    bottleneck_penalty,
    decoder_loss,
    information_gain,
    squared_distances,
)
from jmeta.rl import ppo
from jmeta.rl import returns as rl_returns
from jmeta.rollout import rollout_trial
from jmeta.types import Metrics, Params, StepInputs, Trajectory
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class DreamConfig:
    """DREAM (Liu et al. 2021): decoupled exploration (information-gain reward) and execution (task-id embedding)."""

    embed_size: int = 64
    """Size of the task embedding z = f(mu) and of the decoder's prediction g(tau) (DREAM: 64)."""
    id_hidden_sizes: tuple[int, ...] = (32,)
    """Hidden layers of the task-id embedder f on the task features (DREAM: a 32-d id embedding, then linear)."""
    id_noise_std: float = 0.1
    """Std of the Gaussian noise added to f(mu) for the execution policy during training (DREAM: 0.1)."""
    id_norm_cutoff: float = 10.0
    """Bottleneck: mean(max(||f(mu)||^2, cutoff)) is added to the loss (DREAM: 10)."""
    penalty: float = 0.1
    """Per-step cost c in the exploration reward d_t - d_{t+1} - c (DREAM: 0.1; 0 on MiniWorld)."""
    decoder_hidden_size: int = 128
    """GRU width of the decoder g (DREAM: an LSTM of 128)."""
    decoder_state_embed: int = 64
    """State embedding of the decoder's transition embedder (DREAM: 64)."""
    decoder_action_embed: int = 32
    """Action embedding of the decoder's transition embedder (DREAM: 32)."""
    decoder_uses_reward: bool = False
    """Also feed the exploration episode's rewards to the decoder (DREAM's configs: no)."""
    decoded_fraction: float = 0.5
    """Fraction of training execution episodes conditioned on the decoded g(tau^exp) instead of f(mu) + noise
    (DREAM alternates: 0.5)."""
    exec_grad_to_decoder: bool = True
    """Let the execution loss train the decoder on the decoded episodes (as the authors' code does)."""
    hidden_size: int = 128
    """GRU width of each policy."""
    embed_sizes: tuple[int, ...] = (64,)
    """MLP layers before each policy's GRU (may be empty)."""
    context_embed: int = 64
    """Width of the execution policy's embedding of z, concatenated with its observation embedding before the GRU
    (DREAM: a 64-d trajectory embedding beside a 64-d observation embedding)."""
    head_sizes: tuple[int, ...] = (64,)
    """Hidden layers of the policy and value heads (may be empty)."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "relu"
    """Activation of the policies' MLPs."""
    pixel_embed_size: int = 128
    """Features of the convolutional image encoders (pixel envs only; DREAM on MiniWorld: 128)."""
    init_std: float = 1.0
    """Initial std of Gaussian policies (continuous actions)."""
    lr: float = 1e-3
    """Adam learning rate (one optimiser over all four networks)."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clipping (0: off)."""
    ppo_epochs: int = 4
    """PPO passes per meta-iteration."""
    num_minibatches: int = 4
    """Minibatches of tasks per pass; must divide meta_batch_size."""
    clip_eps: float = 0.2
    """PPO ratio clipping."""
    value_coef: float = 0.5
    """Weight of each value loss."""
    entropy_coef: float = 0.01
    """Entropy bonus of the execution policy."""
    explore_entropy_coef: float = 0.01
    """Entropy bonus of the exploration policy."""
    explore_reward_scale: float = 1.0
    """The information-gain rewards are multiplied by this for the exploration policy's values and advantages."""
    gamma: float = 0.99
    """Discount of both policies (DREAM: 0.99)."""
    gae_lambda: float = 0.95
    """GAE lambda of both policies."""
    normalize_advantages: bool = True
    """Standardise each policy's advantages per minibatch (PPO's usual choice). Off (the maze presets), they keep
    the reward's scale: once every execution episode succeeds they are near 0 instead of value-error noise blown up
    to unit variance, which drove the solved execution policy into collapses (docs/algorithms/dream.md)."""
    eval_trials_per_task: int = 4
    """Meta-test: exploration + execution trials per held-out task."""
    eval_deterministic: bool = False
    """Meta-test with the mode of both policies (DREAM tests with epsilon 0, i.e. greedily)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        for name in ("embed_size", "context_embed", "decoder_hidden_size", "decoder_state_embed", "decoder_action_embed",
                     "hidden_size", "pixel_embed_size", "ppo_epochs", "num_minibatches", "eval_trials_per_task"):
            check(getattr(self, name) >= 1, p + name, "must be >= 1", getattr(self, name))
        for name in ("id_hidden_sizes", "embed_sizes", "head_sizes"):
            check(all(h >= 1 for h in getattr(self, name)), p + name, "must be positive layer widths",
                  getattr(self, name))
        check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        for name in ("id_noise_std", "id_norm_cutoff", "penalty", "max_grad_norm", "value_coef", "entropy_coef",
                     "explore_entropy_coef"):
            check(getattr(self, name) >= 0, p + name, "must be >= 0", getattr(self, name))
        check(0 <= self.decoded_fraction <= 1, p + "decoded_fraction", "must be in [0, 1]", self.decoded_fraction)
        for name in ("init_std", "lr", "explore_reward_scale"):
            check(getattr(self, name) > 0, p + name, "must be > 0", getattr(self, name))
        check(0 < self.clip_eps < 1, p + "clip_eps", "must be in (0, 1)", self.clip_eps)
        check(0 <= self.gamma <= 1, p + "gamma", "must be in [0, 1]", self.gamma)
        check(0 <= self.gae_lambda <= 1, p + "gae_lambda", "must be in [0, 1]", self.gae_lambda)
        if meta_batch_size is not None:
            check(meta_batch_size % self.num_minibatches == 0, p + "num_minibatches",
                  f"must divide meta_batch_size = {meta_batch_size}", self.num_minibatches)


#: Tiny settings for tests.
TINY = DreamConfig(embed_size=8, context_embed=8, id_hidden_sizes=(8,), decoder_hidden_size=16, decoder_state_embed=8,
                   decoder_action_embed=4, hidden_size=16, embed_sizes=(8,), head_sizes=(8,), pixel_embed_size=16,
                   ppo_epochs=2, num_minibatches=2, eval_trials_per_task=2)

#: The maze presets' settings: ezliu/dream configs/default.json where it applies (noise 0.1, cutoff 10,
#: penalty 0.1, gamma 0.99), smaller networks for the CPU budget, the exploration episode's rewards
#: fed to the decoder, an execution entropy bonus of 0.03 and advantages at the reward's scale (see
#: docs/algorithms/dream.md, "Presets" and "Stability").
_MAZE = {"hidden_size": 64, "embed_size": 32, "decoder_uses_reward": True, "entropy_coef": 0.03,
         "normalize_advantages": False}
PRESETS: dict[str, Preset] = {
    "maze2d:small": Preset(
        run=MAZE_SMALL_RUN,
        algo=_MAZE,
        source="ezliu/dream configs/default.json (noise 0.1, cutoff 10, penalty 0.1, gamma 0.99; a recurrent DQN "
               "there) as PPO (4 x 4 minibatches, lr 1e-3, execution entropy 0.03, advantages not standardised), GRUs "
               "of 64, embedding 32 and the decoder reading the exploration episode's rewards too: 32 tasks x 2 episodes x 50 steps per iteration, 400 iterations "
               "(1.3M env steps)",
    ),
    "maze2d": Preset(
        run=MAZE_RUN,
        algo=_MAZE,
        source="the maze2d:small preset on the default layout: 32 tasks x 2 episodes x 200 steps, 600 iterations "
               "(7.7M env steps)",
    ),
    "grid_nav": Preset(
        run={"meta_iters": 1000, "meta_batch_size": 64, "chunk_size": 50, "eval_every": 250, "checkpoint_every": 250},
        algo={"embed_size": 32, "decoder_uses_reward": True},
        source="ezliu/dream configs/default.json (noise 0.1, cutoff 10, penalty 0.1, gamma 0.99) as PPO, the decoder "
               "reading rewards (the goal cell is seen only through the +1 on it): 64 tasks x (15 + 15) steps per "
               "iteration, 1,000 iterations (1.9M env steps, RL²'s grid_nav budget)",
    ),
    "visual_nav": Preset(
        run={"meta_iters": 2000, "meta_batch_size": 16, "chunk_size": 50, "eval_every": 500, "checkpoint_every": 250,
             "eval_tasks": 30},
        algo={"penalty": 0.0, "pixel_embed_size": 128, "embed_size": 64},
        source="ezliu/dream configs/default.json + miniworld.json (penalty 0, 128-wide image embedding, embedding 64; a "
               "recurrent DQN for 5e6 steps there) as PPO: 16 tasks x (20 + 20) steps per iteration, 2,000 iterations "
               "(1.3M env steps, a quarter of the authors' cap; GPU-sized: about 16 env steps/s on a 2-core CPU)",
    ),
}


@struct.dataclass
class DreamState:
    """params: ``{"explore", "exec", "task_id", "decoder"}`` pytrees; opt_state: optax state; iteration: int32."""

    params: Params
    opt_state: Any
    iteration: jax.Array


@struct.dataclass
class DreamBatch:
    """One meta-iteration's data, leading axis N tasks.

    explore / exec: the two policies' trials ([N, 1, T, ...]) with GAE targets; features: [N, F] task
    features; noise: [N, E] the noise added to f(mu); decoded: [N] bool, the execution episode was
    conditioned on g(tau^exp)."""

    explore: TrialBatch
    exec: TrialBatch
    features: jax.Array
    noise: jax.Array
    decoded: jax.Array


@dataclasses.dataclass(frozen=True)
class _ConditionedActor:
    """A recurrent actor-critic acting on ``[obs, z]``; its params are ``(net_params, z [E])``."""

    net: RecurrentActorCritic
    deterministic: bool = False
    privileged = False

    def initial_carry(self, params, key):
        return self.net.initial_carry()

    def episode_start(self, params, carry, inputs, key):
        return carry

    def act(self, params, carry, inputs: StepInputs, key):
        net_params, z = params
        new_carry, dist, _ = self.net.step(net_params, carry, with_embedding(inputs, z))
        action = dist.mode() if self.deterministic else dist.sample(key)
        return new_carry, action, dist.log_prob(action), {}


def append_embedding(obs: jax.Array, z: jax.Array) -> jax.Array:
    """``[obs, z]``: obs [..., D], z [E] -> [..., D + E] (z after any image, so pixel encoders are unaffected)."""
    obs = obs.astype(jnp.float32)
    return jnp.concatenate([obs, jnp.broadcast_to(z, (*obs.shape[:-1], z.shape[-1]))], axis=-1)


def with_embedding(inputs: StepInputs, z: jax.Array) -> StepInputs:
    """The step inputs with ``z`` appended to the observation (:func:`append_embedding`)."""
    return inputs.replace(obs=append_embedding(inputs.obs, z))


@dataclasses.dataclass(frozen=True)
class DREAM(MetaLearner[DreamConfig, DreamState]):
    """DREAM meta-learner over ``env`` and ``task_dist``. See the module docstring."""

    name: ClassVar[str] = "dream"
    Config: ClassVar[type] = DreamConfig
    TINY: ClassVar[DreamConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS
    EVAL_AXIS: ClassVar[str] = "episode"
    #: Discrete actions, as the authors' DQN (the PPO networks would take a Box too; not tested, so refused).
    ACTION_SPACES: ClassVar[tuple[str, ...]] = ("discrete",)

    # ------------------------------------------------------------------ networks
    def _policy(self, context_size: int = 0) -> RecurrentActorCritic:
        c = self.config
        return RecurrentActorCritic(self.env.spec.action_space, c.hidden_size, tuple(c.embed_sizes),
                                    tuple(c.head_sizes), c.activation, True, c.init_std,
                                    image_shape=image_shape(self.env), pixel_embed_size=c.pixel_embed_size,
                                    context_size=context_size, context_embed=c.context_embed)

    @property
    def explore_net(self) -> RecurrentActorCritic:
        return self._policy()

    @property
    def exec_net(self) -> RecurrentActorCritic:
        """Acts on ``[obs, z]``: z, the last ``embed_size`` entries, has its own embedding layer."""
        return self._policy(self.config.embed_size)

    @property
    def task_id(self) -> TaskIdEmbedder:
        return TaskIdEmbedder(self.config.embed_size, tuple(self.config.id_hidden_sizes))

    @property
    def decoder(self) -> TrajectoryEmbedder:
        c = self.config
        return TrajectoryEmbedder(self.env.spec.action_space, c.embed_size, c.decoder_hidden_size,
                                  state_embed=c.decoder_state_embed, action_embed=c.decoder_action_embed,
                                  use_reward=c.decoder_uses_reward, image_shape=image_shape(self.env),
                                  pixel_embed_size=c.pixel_embed_size)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        adam = optax.adam(self.config.lr)
        if self.config.max_grad_norm > 0:
            return optax.chain(optax.clip_by_global_norm(self.config.max_grad_norm), adam)
        return adam

    @property
    def horizon(self) -> int:
        return self.env.spec.horizon

    @property
    def num_decoded(self) -> int:
        """Training execution episodes per iteration conditioned on the decoded embedding (the last ones)."""
        return int(round(self.config.decoded_fraction * self.meta_batch_size))

    def _features(self, tasks: Any) -> jax.Array:
        return jax.vmap(lambda t: task_features(self.env, t))(tasks)

    def init(self, key: jax.Array) -> DreamState:
        k_exp, k_exec, k_id, k_dec = jax.random.split(key, 4)
        space = self.env.spec.observation_space
        obs_size = math.prod(space.shape)
        feature_size = self._feature_size()
        net = self.explore_net
        params = {
            "explore": net.init(k_exp, net.input_size(space)),
            "exec": self.exec_net.init(k_exec, net.input_size(space) + self.config.embed_size),
            "task_id": self.task_id.init(k_id, feature_size),
            "decoder": self.decoder.init(k_dec, obs_size),
        }
        return DreamState(params=params, opt_state=self.optimizer.init(params), iteration=jnp.zeros((), jnp.int32))

    def _feature_size(self) -> int:
        task = jax.eval_shape(self.task_dist.sample, jax.random.key(0))
        return jax.eval_shape(lambda t: task_features(self.env, t), task).shape[-1]

    def env_steps_per_iteration(self) -> int:
        return self.meta_batch_size * 2 * self.horizon

    def headline(self) -> dict[str, str]:
        return {"train/return_exec": "exec", "train/info_gain": "info"}

    # ------------------------------------------------------------------ data
    def explore(self, params: Params, tasks: Any, key: jax.Array, deterministic: bool = False,
                record_state: bool = False) -> Trajectory:
        """One exploration episode per task, as a one-episode trial. Leaves [N, 1, T, ...] with next_obs and info
        (and extras["env_state"] with ``record_state``)."""
        net = self.explore_net
        actor = net.deterministic_actor() if deterministic else net
        keys = jax.random.split(key, jax.tree_util.tree_leaves(tasks)[0].shape[0])
        return jax.vmap(lambda t, k: rollout_trial(self.env, actor, params, t, k, 1, record_info=True,
                                                   record_state=record_state)[0])(tasks, keys)

    def execute(self, params: Params, z: jax.Array, tasks: Any, key: jax.Array, deterministic: bool = False,
                record_state: bool = False) -> Trajectory:
        """One execution episode per task conditioned on z [N, E]. Leaves [N, 1, T, ...] with info."""
        actor = _ConditionedActor(self.exec_net, deterministic)
        keys = jax.random.split(key, z.shape[0])
        return jax.vmap(lambda zz, t, k: rollout_trial(self.env, actor, (params, zz), t, k, 1, next_obs=False,
                                                       record_info=True, record_state=record_state)[0])(z, tasks, keys)

    def decode(self, params: Params, explore_traj: Trajectory) -> jax.Array:
        """g's predictions after every prefix of each exploration episode: leaves [N, 1, T] -> [N, T + 1, E]."""
        t = jax.tree_util.tree_map(lambda x: x[:, 0], explore_traj)
        return jax.vmap(self.decoder.contexts, in_axes=(None, 0, 0, 0, 0, 0))(
            params, t.obs, t.action, t.next_obs, t.reward, t.mask)

    def _exec_unroll(self, params: Params, traj: Trajectory, z: jax.Array):
        """(log_prob, value, entropy) [1, T] of one execution trial [1, T] conditioned on z [E]."""
        return self.exec_net.unroll(params, traj.replace(obs=append_embedding(traj.obs, z)))

    def _targets(self, rewards: jax.Array, values: jax.Array, traj: Trajectory) -> TrialBatch:
        c = self.config
        adv = jax.vmap(trial_gae, in_axes=(0, 0, 0, None, None))(rewards, values, traj.mask, c.gamma, c.gae_lambda)
        return jax.lax.stop_gradient(TrialBatch(traj=traj, advantages=adv, targets=(adv + values) * traj.mask,
                                                old_values=values))

    # ------------------------------------------------------------------ loss
    def _ppo(self, log_prob, value, entropy, batch: TrialBatch, entropy_coef):
        c = self.config
        t = batch.traj
        adv = rl_returns.normalize(batch.advantages, t.mask) if c.normalize_advantages else batch.advantages
        return ppo.ppo_loss(log_prob, t.log_prob, adv, value, batch.old_values, batch.targets, entropy, t.mask,
                            clip_eps=c.clip_eps, value_clip_eps=0.0, value_coef=c.value_coef,
                            entropy_coef=entropy_coef)

    def loss(self, params: Params, batch: DreamBatch) -> tuple[jax.Array, Metrics]:
        """The sum of both PPO losses, the decoder loss and the bottleneck penalty on a minibatch of tasks."""
        c = self.config
        lp, v, ent = jax.vmap(lambda t: self.explore_net.unroll(params["explore"], t))(batch.explore.traj)
        explore_loss, explore_info = self._ppo(lp, v, ent, batch.explore, c.explore_entropy_coef)

        id_embedding = self.task_id(params["task_id"], batch.features)  # [B, E]
        contexts = self.decode(params["decoder"], batch.explore.traj)  # [B, T + 1, E]
        mask = batch.explore.traj.mask[:, 0]
        dec_loss = decoder_loss(squared_distances(contexts, jax.lax.stop_gradient(id_embedding)), mask)
        id_penalty = bottleneck_penalty(id_embedding, c.id_norm_cutoff)

        decoded = contexts[:, -1] if c.exec_grad_to_decoder else jax.lax.stop_gradient(contexts[:, -1])
        z = jnp.where(batch.decoded[:, None], decoded, id_embedding + batch.noise)
        lp, v, ent = jax.vmap(lambda t, zz: self._exec_unroll(params["exec"], t, zz))(batch.exec.traj, z)
        exec_loss, exec_info = self._ppo(lp, v, ent, batch.exec, c.entropy_coef)

        total = explore_loss + exec_loss + dec_loss + id_penalty
        info = {**{f"explore_{k}": x for k, x in explore_info.items()}, **{f"exec_{k}": x for k, x in exec_info.items()},
                "decoder_loss": dec_loss, "id_penalty": id_penalty}
        return total, info

    # ------------------------------------------------------------------ meta-iteration
    def meta_step(self, state: DreamState, key: jax.Array) -> tuple[DreamState, Metrics]:
        c = self.config
        task_key, explore_key, noise_key, exec_key, update_key = jax.random.split(key, 5)
        tasks = self.sample_tasks(task_key)
        params = state.params
        features = self._features(tasks)

        explore_traj = self.explore(params["explore"], tasks, explore_key)
        contexts = self.decode(params["decoder"], explore_traj)
        id_embedding = self.task_id(params["task_id"], features)
        distances = squared_distances(contexts, id_embedding)  # [N, T + 1]
        explore_rewards = information_gain(distances, explore_traj.mask[:, 0], c.penalty)  # [N, T]

        noise = c.id_noise_std * jax.random.normal(noise_key, id_embedding.shape)
        decoded = jnp.arange(self.meta_batch_size) >= self.meta_batch_size - self.num_decoded
        z = jnp.where(decoded[:, None], contexts[:, -1], id_embedding + noise)
        exec_traj = self.execute(params["exec"], z, tasks, exec_key)

        _, explore_values, _ = jax.vmap(lambda t: self.explore_net.unroll(params["explore"], t))(explore_traj)
        _, exec_values, _ = jax.vmap(lambda t, zz: self._exec_unroll(params["exec"], t, zz))(exec_traj, z)
        batch = DreamBatch(
            explore=self._targets(explore_rewards[:, None] * c.explore_reward_scale, explore_values, explore_traj),
            exec=self._targets(exec_traj.reward, exec_values, exec_traj),
            features=features, noise=noise, decoded=decoded,
        )
        new_params, opt_state, infos = ppo.update_minibatches(self.loss, self.optimizer, params, state.opt_state,
                                                              batch, update_key, c.ppo_epochs, c.num_minibatches)
        first = jax.tree_util.tree_map(lambda x: x[0, 0], infos)
        last = jax.tree_util.tree_map(lambda x: x[-1].mean(), infos)

        exec_returns = exec_traj.episode_return()[:, 0]  # [N]
        n_id = self.meta_batch_size - self.num_decoded
        metrics = {
            "train/return_exec": exec_returns.mean(),
            "train/return_explore": explore_traj.episode_return()[:, 0].mean(),
            "train/info_gain": explore_rewards.sum(axis=-1).mean(),
            "train/final_distance": distances[:, -1].mean(),
            "train/id_norm_sq": jnp.sum(id_embedding**2, axis=-1).mean(),
            "train/explore_length": explore_traj.mask.sum(axis=(1, 2)).mean(),
            "train/decoder_loss": first["decoder_loss"],
            "train/explore_entropy": first["explore_entropy"],
            "train/exec_entropy": first["exec_entropy"],
            "train/explore_value_loss": first["explore_value_loss"],
            "train/exec_value_loss": first["exec_value_loss"],
            "train/exec_approx_kl": last["exec_approx_kl"],
            "train/explore_approx_kl": last["explore_approx_kl"],
            "train/grad_norm": first["grad_norm"],
        }
        if n_id > 0:
            metrics["train/return_exec_task_id"] = exec_returns[:n_id].mean()
        if self.num_decoded > 0:
            metrics["train/return_exec_decoded"] = exec_returns[n_id:].mean()
        return DreamState(params=new_params, opt_state=opt_state, iteration=state.iteration + 1), metrics

    # ------------------------------------------------------------------ meta-test
    def viewer_rollouts(self, state: DreamState, tasks: Any, key: jax.Array) -> ViewerRollouts:
        """One trial per task: the exploration episode, then the execution episode on the embedding
        decoded from it. Leaves [N, 2, T, ...] with extras ``env_state`` and ``info``."""
        c = self.config
        explore_key, exec_key = jax.random.split(key)
        params = state.params
        explore = self.explore(params["explore"], tasks, explore_key, c.eval_deterministic, record_state=True)
        z = self.decode(params["decoder"], explore)[:, -1]
        execute = self.execute(params["exec"], z, tasks, exec_key, c.eval_deterministic, record_state=True)

        def kept(traj):  # the fields both episodes share, [N, T, ...]
            traj = jax.tree_util.tree_map(lambda x: x[:, 0], traj)
            return Trajectory(obs=traj.obs, action=traj.action, reward=traj.reward, terminated=traj.terminated,
                              mask=traj.mask, log_prob=traj.log_prob, time=traj.time,
                              extras={"env_state": traj.extras["env_state"], "info": traj.extras["info"]})

        both = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b], axis=1), kept(explore), kept(execute))
        return ViewerRollouts(traj=both, labels=("exploration episode", "execution episode (decoded embedding)"))

    def evaluate(self, state: DreamState, tasks: Any, key: jax.Array) -> EvalOut:
        """Exploration then execution on each task, ``eval_trials_per_task`` times: returns [N, 2]
        (0 = exploration episode, 1 = execution episode on the decoded embedding).

        extras: ``success`` [N, 2] where the env reports ``info["success"]``; ``exec_return_task_id``
        [N], the execution return on the noiseless task-id embedding f(mu) (what a perfect exploration
        and decoder would give: the execution policy's own ceiling)."""
        c = self.config
        num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        r = c.eval_trials_per_task
        repeated = jax.tree_util.tree_map(lambda x: jnp.repeat(x, r, axis=0), tasks)  # [N * R]
        explore_key, exec_key, id_key = jax.random.split(key, 3)
        params = state.params
        explore_traj = self.explore(params["explore"], repeated, explore_key, c.eval_deterministic)
        z = self.decode(params["decoder"], explore_traj)[:, -1]
        exec_traj = self.execute(params["exec"], z, repeated, exec_key, c.eval_deterministic)
        id_embedding = self.task_id(params["task_id"], self._features(repeated))
        id_traj = self.execute(params["exec"], id_embedding, repeated, id_key, c.eval_deterministic)

        def per_task(x):  # [N * R, ...] -> [N, ...] (mean over trials)
            return x.reshape(num_tasks, r, *x.shape[1:]).mean(axis=1)

        parts = (explore_traj, exec_traj)
        returns = per_task(jnp.concatenate([t.episode_return() for t in parts], axis=1))  # [N, 2]
        extras = {"exec_return_task_id": per_task(id_traj.episode_return()[:, 0])}
        if "success" in explore_traj.extras.get("info", {}):
            reached = [(t.extras["info"]["success"] * t.mask).max(axis=-1) > 0 for t in parts]  # [N * R, 1] each
            extras["success"] = per_task(jnp.concatenate(reached, axis=1).astype(jnp.float32))
        return EvalOut(returns=returns, axis="episode", extras=extras)
