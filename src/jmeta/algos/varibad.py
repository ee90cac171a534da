"""VariBAD (Zintgraf et al. 2020): a variational belief over the task, and a policy on that belief.

A recurrent encoder (:class:`jmeta.networks.belief.TrialEncoder`) reads a trial step by step and
gives a Gaussian posterior ``q(m | tau_{:t})`` over a task latent at every step, starting from the
prior. Decoders reconstruct the trial from latent samples; their likelihood and a KL term form the
ELBO that trains encoder and decoders. The policy acts on ``(s_t, mean_t, logvar_t)``
(:class:`jmeta.networks.belief.BeliefActorCritic`) and is trained by PPO on the trial (the BAMDP
episode); by default its loss does not reach the encoder.

The ELBO of one trial of ``L`` steps (lmzintgraf/varibad ``vae.py``), with ``L + 1`` beliefs
``q_0`` (the prior) ... ``q_L`` and one sample ``z_t ~ q_t`` per belief::

    ELBO terms t = 0..L:  reconstruct *all* L transitions of the trial from z_t
                          (past and future: reward, optionally state and task)
    KL_0 = KL(q_0 || N(0, I)),  KL_t = KL(q_t || q_{t-1})

    loss = mean over trials [ rew_coef * sum_t sum_j NLL(r_j | z_t, ...) + state... + task... ]
           + kl_weight * sum over trials sum_t KL_t

(VariBAD sums the KL over the trials of a batch and averages the reconstruction; both sums over
``t`` and ``j`` are optionally subsampled: ``subsample_elbos`` terms x ``subsample_decodes``
transitions.)

One meta-iteration, all inside ``jax.jit``:
  1. sample ``meta_batch_size`` tasks, roll out ``trials_per_task`` trials of each with the belief
     actor (the encoder updates the belief at every step; leaves [N, R, K, T, ...]);
  2. PPO on the trials: values and GAE over each flattened trial, ``ppo_epochs`` x
     ``num_minibatches`` over whole trials, the recorded beliefs as the policy's inputs;
  3. the trials go into the VAE buffer (a ring of whole trials, :mod:`jmeta.rl.replay`);
     ``vae_updates`` gradient steps, each on ``vae_batch_trials`` trials drawn without replacement;
  4. the running statistics that normalise the policy's inputs take in this batch.

``policy_input="task"`` gives the policy the true task features instead of a belief (the belief
oracle of the issue, an upper reference); ``"none"`` gives it nothing (a non-adaptive PPO policy).
The task-inference variant (Humplik et al. 2019) is :mod:`jmeta.algos.task_inference`.

Meta-test (:meth:`VariBAD.evaluate`): trials on the held-out tasks from the prior, the return of
each episode (axis "episode"), plus the ELBO's terms on those trials as per-task extras.
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
from jmeta.algos.rl2 import MAZE_SMALL_RUN
from jmeta.envs.base import task_features
from jmeta.networks.belief import (
    BeliefActorCritic,
    RewardDecoder,
    StateDecoder,
    TaskDecoder,
    TrialEncoder,
    kl_to_previous,
)
from jmeta.networks.cnn import image_shape
from jmeta.networks.mlp import ACTIVATIONS
from jmeta.rl import ppo
from jmeta.rl import returns as rl_returns
from jmeta.rl.replay import ReplayBuffer, replay_init, replay_insert, replay_sample
from jmeta.rl.running_stats import (
    RunningStats,
    running_stats_init,
    running_stats_normalize,
    running_stats_update,
)
from jmeta.rl.surrogates import global_norm
from jmeta.rollout import rollout_trials
from jmeta.types import Metrics, Params, StepInputs, Trajectory
from jmeta.validation import check

#: Above this many episodes per trial, training logs only the first and last episode's return.
_MAX_LOGGED_EPISODES = 10


@dataclasses.dataclass(frozen=True)
class VariBADConfig:
    """VariBAD: a recurrent VAE belief over the task and a PPO policy on (state, belief)."""

    trials_per_task: int = 1
    """Trials sampled per task per meta-iteration."""
    episodes_per_trial: int | None = None
    """Episodes per trial during meta-training (None: the environment's)."""
    # ---------------------------------------------------------------- encoder
    latent_size: int = 5
    """Dimension of the task latent."""
    encoder_hidden_size: int = 64
    """GRU width of the encoder."""
    state_embed: int = 8
    """Encoder embedding width of the observation (plus the episode-start flag)."""
    action_embed: int = 0
    """Encoder embedding width of the previous action (0: the encoder does not see actions)."""
    reward_embed: int = 8
    """Encoder embedding width of the previous reward."""
    encoder_layers_before: tuple[int, ...] = ()
    """Dense ReLU layers between the embeddings and the GRU (may be empty)."""
    encoder_layers_after: tuple[int, ...] = ()
    """Dense ReLU layers between the GRU and the belief heads (may be empty)."""
    # ---------------------------------------------------------------- decoders
    decode_reward: bool = True
    """Train the belief by reconstructing rewards."""
    reward_decoder: Literal["bernoulli", "gaussian"] = "gaussian"
    """Reward likelihood: "bernoulli" (of r > 0, binary cross-entropy) or "gaussian" (squared error)."""
    reward_multi_head: bool = False
    """One output per discrete state, read at the next state (needs an env with ``state_index``)."""
    reward_decoder_layers: tuple[int, ...] = (64, 32)
    """Hidden layers of the reward decoder."""
    decoder_state_embed: int = 32
    """Embedding width of observations in the single-head reward and the state decoders."""
    decoder_action_embed: int = 16
    """Embedding width of actions in the single-head reward (input_action) and state decoders."""
    reward_input_prev_state: bool = True
    """Single-head reward decoder also sees the state the action was taken from."""
    reward_input_action: bool = True
    """Single-head reward decoder also sees the action."""
    decode_state: bool = False
    """Also reconstruct next observations (s, a -> s')."""
    state_decoder_layers: tuple[int, ...] = (64, 32)
    """Hidden layers of the state decoder."""
    decode_task: bool = False
    """Reconstruct the task features from the latent (task inference, Humplik et al.)."""
    task_decoder_layers: tuple[int, ...] = (64, 32)
    """Hidden layers of the task decoder."""
    reward_loss_coef: float = 1.0
    """Weight of the reward reconstruction."""
    state_loss_coef: float = 1.0
    """Weight of the state reconstruction."""
    task_loss_coef: float = 1.0
    """Weight of the task reconstruction."""
    kl_weight: float = 0.1
    """Weight of the KL term (summed over the trials of a VAE batch, as VariBAD)."""
    kl_to_standard_normal: bool = False
    """KL of every belief to N(0, I) instead of to the previous belief."""
    subsample_elbos: int = 0
    """ELBO terms drawn per trial per VAE step (0: all L + 1)."""
    subsample_decodes: int = 0
    """Transitions reconstructed per ELBO term (0: all L)."""
    encoder_truncation: int = 0
    """Truncated BPTT through the encoder in the VAE loss every this many steps (0: whole trial)."""
    vae_lr: float = 1e-3
    """Adam learning rate of encoder and decoders."""
    vae_max_grad_norm: float = 0.0
    """Global-norm clipping of the VAE gradient (0: off)."""
    vae_buffer_trials: int = 10_000
    """Capacity of the VAE buffer, in whole trials (oldest overwritten)."""
    vae_batch_trials: int = 25
    """Trials per VAE gradient step, drawn without replacement."""
    vae_updates: int = 3
    """VAE gradient steps per meta-iteration (after the PPO update; they start once the buffer holds
    vae_batch_trials trials, as VariBAD's precollection)."""
    # ---------------------------------------------------------------- policy
    policy_input: Literal["belief", "task", "none"] = "belief"
    """What the policy conditions on besides the state: the belief (mean, logvar), the true task
    features (belief oracle) or nothing (non-adaptive PPO)."""
    policy_layers: tuple[int, ...] = (128, 128)
    """Hidden layers of the actor and of the critic."""
    obs_embed: int = 64
    """tanh embedding width of the observation in the policy (0: the raw observation)."""
    context_embed: int = 64
    """tanh embedding width of the belief / task features in the policy (0: raw)."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "tanh"
    """Activation of the actor and critic MLPs."""
    normalize_policy_inputs: bool = True
    """Normalise observation and context by running mean and std before the policy."""
    rl_through_encoder: bool = False
    """Backpropagate the PPO loss into the encoder (re-encoding the trials with current params)."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy (continuous actions)."""
    # ---------------------------------------------------------------- PPO
    lr: float = 7e-4
    """Adam learning rate of the policy."""
    max_grad_norm: float = 0.5
    """Global-norm clipping of the policy gradient (0: off)."""
    ppo_epochs: int = 2
    """PPO passes per meta-iteration."""
    num_minibatches: int = 4
    """Minibatches of whole trials per epoch; must divide meta_batch_size * trials_per_task."""
    clip_eps: float = 0.1
    """PPO ratio clipping epsilon."""
    value_clip_eps: float = 0.1
    """Clip the value update around the old values (0: off; VariBAD clips with the ratio's epsilon)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    gamma: float = 0.97
    """Discount, across the episodes of a trial (the trial is one BAMDP episode)."""
    gae_lambda: float = 0.9
    """GAE lambda across the trial."""
    normalize_advantages: bool = True
    """Standardise advantages per minibatch."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this for the value targets (the VAE and logged returns see raw rewards)."""
    normalize_rewards: bool = False
    """Divide PPO's rewards by a running std of discounted returns, clipped to ±10 (VariBAD's
    norm_rew_for_policy; before reward_scale)."""
    pixel_embed_size: int = 128
    """Features of the convolutional image encoders of the trial encoder and the policy (pixel envs only:
    jmeta.networks.cnn)."""
    # ---------------------------------------------------------------- meta-test
    eval_trials_per_task: int = 4
    """Meta-test: trials per held-out task."""
    eval_episodes: int | None = None
    """Meta-test: episodes per trial (None: as in training)."""
    eval_deterministic: bool = False
    """Meta-test with the mode of the action distribution."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        positive = ("trials_per_task", "latent_size", "encoder_hidden_size", "vae_buffer_trials", "vae_batch_trials",
                    "vae_updates", "ppo_epochs", "num_minibatches", "eval_trials_per_task", "pixel_embed_size")
        for name in positive:
            check(getattr(self, name) >= 1, p + name, "must be >= 1", getattr(self, name))
        non_negative = ("state_embed", "action_embed", "reward_embed", "decoder_state_embed", "decoder_action_embed",
                        "reward_loss_coef", "state_loss_coef", "task_loss_coef", "kl_weight", "subsample_elbos",
                        "subsample_decodes", "encoder_truncation", "vae_max_grad_norm", "obs_embed",
                        "context_embed", "max_grad_norm", "value_clip_eps", "value_coef", "entropy_coef")
        for name in non_negative:
            check(getattr(self, name) >= 0, p + name, "must be >= 0", getattr(self, name))
        for name in ("episodes_per_trial", "eval_episodes"):
            value = getattr(self, name)
            check(value is None or value >= 1, p + name, "must be >= 1", value)
        for name in ("encoder_layers_before", "encoder_layers_after", "reward_decoder_layers", "state_decoder_layers",
                     "task_decoder_layers", "policy_layers"):
            check(all(w >= 1 for w in getattr(self, name)), p + name, "must be positive layer widths",
                  getattr(self, name))
        check(self.state_embed + self.action_embed + self.reward_embed > 0, p + "state_embed",
              "the encoder needs at least one of state_embed, action_embed, reward_embed > 0", self.state_embed)
        check(self.reward_decoder in ("bernoulli", "gaussian"), p + "reward_decoder",
              "must be 'bernoulli' or 'gaussian'", self.reward_decoder)
        check(self.policy_input in ("belief", "task", "none"), p + "policy_input",
              "must be 'belief', 'task' or 'none'", self.policy_input)
        check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        check(self.decode_reward or self.decode_state or self.decode_task, p + "decode_reward",
              "at least one of decode_reward, decode_state, decode_task must be on", self.decode_reward)
        check(not (self.rl_through_encoder and self.policy_input != "belief"), p + "rl_through_encoder",
              "needs policy_input='belief'", self.rl_through_encoder)
        for name in ("vae_lr", "lr", "init_std", "reward_scale"):
            check(getattr(self, name) > 0, p + name, "must be > 0", getattr(self, name))
        check(0 < self.clip_eps < 1, p + "clip_eps", "must be in (0, 1)", self.clip_eps)
        check(0 <= self.gamma <= 1, p + "gamma", "must be in [0, 1]", self.gamma)
        check(0 <= self.gae_lambda <= 1, p + "gae_lambda", "must be in [0, 1]", self.gae_lambda)
        if meta_batch_size is not None:
            trials = meta_batch_size * self.trials_per_task
            check(trials % self.num_minibatches == 0, p + "num_minibatches",
                  f"must divide meta_batch_size * trials_per_task = {trials}", self.num_minibatches)
            check(self.vae_batch_trials <= self.vae_buffer_trials, p + "vae_batch_trials",
                  f"must be <= vae_buffer_trials ({self.vae_buffer_trials})", self.vae_batch_trials)
            check(trials <= self.vae_buffer_trials, p + "vae_buffer_trials",
                  f"must hold one iteration's trials ({trials})", self.vae_buffer_trials)


#: Tiny settings for tests.
TINY = VariBADConfig(latent_size=2, encoder_hidden_size=8, state_embed=4, reward_embed=4, reward_decoder_layers=(8,),
                     decoder_state_embed=4, decoder_action_embed=4, state_decoder_layers=(8,), task_decoder_layers=(8,),
                     policy_layers=(8,), obs_embed=4, context_embed=4, num_minibatches=2, vae_buffer_trials=16,
                     vae_batch_trials=2, vae_updates=2, eval_trials_per_task=2)

_VB = "lmzintgraf/varibad config/{}.py"
PRESETS: dict[str, Preset] = {
    "grid_nav": Preset(
        run={"meta_iters": 2000, "meta_batch_size": 16, "chunk_size": 100, "eval_every": 500,
             "checkpoint_every": 500},
        algo={"latent_size": 5, "encoder_hidden_size": 64, "state_embed": 8, "action_embed": 0, "reward_embed": 8,
              "reward_decoder": "bernoulli", "reward_multi_head": True, "reward_decoder_layers": (32, 32),
              "kl_weight": 0.01, "vae_buffer_trials": 10_000, "vae_batch_trials": 25, "vae_updates": 3,
              "subsample_elbos": 20, "subsample_decodes": 20, "policy_layers": (64, 64), "obs_embed": 32,
              "context_embed": 32, "lr": 1e-3, "ppo_epochs": 4, "num_minibatches": 4, "clip_eps": 0.2,
              "value_clip_eps": 0.2, "entropy_coef": 0.01, "gamma": 0.95, "gae_lambda": 0.95},
        source=_VB.format("gridworld/args_grid_varibad") + " (16 processes x 60 steps per update = one 4-episode "
               "trial each, 2e7 frames, every ELBO term, policy [32] on 16-wide embeddings, PPO 2 epochs, clip "
               "0.05, lr 7e-4, a 100k-trajectory VAE buffer); scaled for CPU: 16 trials per iteration, 2,000 "
               "iterations (1.9M env steps, RL²'s grid_nav budget), 20 ELBO terms x 20 decodes per trial, a "
               "(64, 64) policy on 32-wide embeddings, PPO 4 epochs, clip 0.2, lr 1e-3, a 10k-trial buffer",
    ),
    "point_nav:sparse": Preset(
        run={"env_variant": "sparse", "meta_iters": 1000, "meta_batch_size": 16, "chunk_size": 50,
             "eval_every": 250, "checkpoint_every": 250},
        algo={"latent_size": 5, "encoder_hidden_size": 128, "state_embed": 32, "action_embed": 16,
              "reward_embed": 16, "reward_decoder": "gaussian", "reward_decoder_layers": (64, 32),
              "reward_input_prev_state": False, "reward_input_action": False, "kl_weight": 1.0,
              "vae_buffer_trials": 10_000, "vae_batch_trials": 15, "vae_updates": 3, "subsample_elbos": 50,
              "subsample_decodes": 50, "policy_layers": (128, 128, 128), "obs_embed": 64, "context_embed": 64,
              "lr": 7e-4, "ppo_epochs": 2, "num_minibatches": 8, "clip_eps": 0.1, "value_clip_eps": 0.1,
              "entropy_coef": 1e-3, "gamma": 0.99, "gae_lambda": 0.9, "normalize_rewards": True},
        source=_VB.format("pointrobot/args_pointrobot_varibad") + " (5e7 frames, every ELBO term and decode); 16 "
               "trials of 3 x 100 steps per iteration, 1,000 iterations (4.8M env steps, about a tenth of the "
               "authors' budget), 50 ELBO terms x 50 decodes per trial (as their MuJoCo configs) to fit a CPU",
    ),
    "cheetah_vel": Preset(
        run={"env_variant": "varibad", "meta_iters": 300, "meta_batch_size": 16, "chunk_size": 25,
             "eval_every": 100, "checkpoint_every": 100, "eval_tasks": 30},
        algo={"latent_size": 5, "encoder_hidden_size": 128, "state_embed": 32, "action_embed": 16,
              "reward_embed": 16, "reward_decoder": "gaussian", "reward_decoder_layers": (64, 32),
              "reward_input_prev_state": True, "reward_input_action": True, "kl_weight": 0.1,
              "vae_buffer_trials": 10_000, "vae_batch_trials": 10, "vae_updates": 1, "vae_max_grad_norm": 1.0,
              "subsample_elbos": 50, "subsample_decodes": 50, "encoder_truncation": 50,
              "policy_layers": (128, 128), "obs_embed": 64, "context_embed": 64, "lr": 7e-4, "ppo_epochs": 2,
              "num_minibatches": 8, "clip_eps": 0.1, "value_clip_eps": 0.1, "entropy_coef": 0.01, "gamma": 0.97,
              "gae_lambda": 0.9, "normalize_rewards": True},
        source=_VB.format("mujoco/args_cheetah_vel_varibad") + " (16 processes x 400 steps = one 2-episode trial "
               "each, 1e8 frames): 16 trials per iteration, 300 iterations (1.9M env steps, 2% of the authors' "
               "budget)",
    ),
    "maze2d:small": Preset(
        run=MAZE_SMALL_RUN,
        algo={"episodes_per_trial": 2, "latent_size": 5, "encoder_hidden_size": 64, "state_embed": 32,
              "action_embed": 8, "reward_embed": 8, "reward_decoder": "gaussian", "reward_multi_head": False,
              "reward_input_prev_state": True, "reward_input_action": True, "reward_decoder_layers": (64, 32),
              "kl_weight": 0.01, "vae_buffer_trials": 10000, "vae_batch_trials": 25, "vae_updates": 3,
              "subsample_elbos": 20, "subsample_decodes": 20, "policy_layers": (64, 64), "obs_embed": 32,
              "context_embed": 32, "lr": 1e-3, "ppo_epochs": 4, "num_minibatches": 4, "clip_eps": 0.2,
              "value_clip_eps": 0.2, "entropy_coef": 0.03, "gamma": 0.99, "gae_lambda": 0.95},
        source="the grid_nav preset's VAE and PPO settings (with DREAM's maze entropy bonus, 0.03) with a single-head Gaussian reward decoder on (s, a, s') "
               "(maze rewards are +1 / -1 / 0 and the maze has no state index) over 2-episode trials, at DREAM's "
               "maze2d:small budget (32 trials x 2 x 50 steps x 400 iterations), for the side-by-side",
    ),
}


@struct.dataclass
class VAETrial:
    """One trial as the VAE buffer stores it (leaves [L, ...] with L = K * T, task_features [F]).

    obs, action, reward, next_obs, mask: the flattened trial's transitions; prev_action,
    prev_reward, prev_done: the rollout's step inputs (what the encoder read when acting)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    mask: jax.Array
    prev_action: jax.Array
    prev_reward: jax.Array
    prev_done: jax.Array
    task_features: jax.Array


@struct.dataclass
class VariBADState:
    """params: {"policy", "encoder", and the decoders in use}; ppo_opt_state over params["policy"]
    (and "encoder" with rl_through_encoder); vae_opt_state over the encoder and decoders; norm:
    running statistics of the policy's observation and context; buffer: the VAE's trials."""

    params: Params
    ppo_opt_state: Any
    vae_opt_state: Any
    norm: dict[str, RunningStats]
    buffer: ReplayBuffer
    iteration: jax.Array


def consumed_inputs(trial: VAETrial) -> tuple[StepInputs, jax.Array]:
    """The L inputs the encoder consumes in a trial (leaves [L, ...]) and their validity [L].

    Input j is step j + 1's rollout inputs (the transition of step j, read when acting at step
    j + 1); the last one is the final transition ``(next_obs, action, reward)`` of step L - 1, which
    no action follows. An input counts only where its step was valid (masked steps of terminated
    episodes leave the belief unchanged, as in the rollout)."""
    def shift(x, last):
        return jnp.concatenate([x[1:], last[None]])

    inputs = StepInputs(
        obs=shift(trial.obs, trial.next_obs[-1]),
        prev_action=shift(trial.prev_action, trial.action[-1].astype(trial.prev_action.dtype)),
        prev_reward=shift(trial.prev_reward, trial.reward[-1]),
        prev_done=shift(trial.prev_done, jnp.zeros((), trial.prev_done.dtype)),
    )
    return inputs, shift(trial.mask, trial.mask[-1])


@dataclasses.dataclass(frozen=True)
class BeliefActor:
    """The rollout actor: the encoder's belief (or the true task features) and the policy.

    Params: {"policy", "encoder", "norm"}. Carry: {"h": [H], "started": bool}. The belief at the
    trial's first step is the prior; at every later step the encoder first consumes the step's
    inputs (the transition that led here). Records the policy's raw context in extras["context"]."""

    encoder: TrialEncoder
    policy: BeliefActorCritic
    policy_input: str
    normalize: bool
    deterministic: bool = False
    task_features_fn: Any = None

    @property
    def privileged(self) -> bool:
        return self.policy_input == "task"

    def initial_carry(self, params: Params, key: jax.Array):
        return {"h": self.encoder.initial_hidden(), "started": jnp.zeros((), bool)}

    def episode_start(self, params: Params, carry, inputs: StepInputs, key: jax.Array):
        return carry

    def context(self, params: Params, carry, inputs: StepInputs):
        """(new carry, context [C]) at one step."""
        if self.policy_input == "belief":
            h, mean, logvar = self.encoder.step(params["encoder"], carry["h"], inputs)
            prior_mean, prior_logvar = self.encoder.prior(params["encoder"])
            started = carry["started"]
            h = jnp.where(started, h, carry["h"])
            context = jnp.where(started, jnp.concatenate([mean, logvar]), jnp.concatenate([prior_mean, prior_logvar]))
            return {"h": h, "started": jnp.ones((), bool)}, context
        if self.policy_input == "task":
            return carry, self.task_features_fn(inputs.task)
        return carry, jnp.zeros((0,), jnp.float32)

    def act(self, params: Params, carry, inputs: StepInputs, key: jax.Array):
        carry, context = self.context(params, carry, inputs)
        dist, _ = self.policy(params["policy"], *normalized_policy_inputs(params["norm"], inputs.obs, context,
                                                                           self.normalize))
        action = dist.mode() if self.deterministic else dist.sample(key)
        return carry, action, dist.log_prob(action), {"context": context}


def normalized_policy_inputs(norm: dict[str, RunningStats], obs: jax.Array, context: jax.Array, normalize: bool
                             ) -> tuple[jax.Array, jax.Array]:
    """The policy's (observation [.., D], context [.., C]) inputs, normalised by the running stats if asked."""
    flat_obs = obs.astype(jnp.float32).reshape(*context.shape[:-1], -1)
    if not normalize:
        return flat_obs, context
    context = running_stats_normalize(norm["context"], context) if context.shape[-1] > 0 else context
    return running_stats_normalize(norm["obs"], flat_obs), context


@dataclasses.dataclass(frozen=True)
class VariBAD(MetaLearner[VariBADConfig, VariBADState]):
    """VariBAD meta-learner over ``env`` and ``task_dist``. See the module docstring."""

    name: ClassVar[str] = "varibad"
    Config: ClassVar[type] = VariBADConfig
    TINY: ClassVar[VariBADConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS
    EVAL_AXIS: ClassVar[str] = "episode"

    def __post_init__(self):
        super().__post_init__()
        c = self.config
        check(len(self.env.spec.observation_space.shape) <= 1 or not c.decode_state, self.name + ".decode_state",
              "needs vector observations", self.env.spec.observation_space)
        if c.decode_reward and c.reward_multi_head:
            check(hasattr(self.env, "state_index") and hasattr(self.env, "num_states"),
                  self.name + ".reward_multi_head",
                  f"needs an env with discrete states (state_index, num_states); {self.env.spec.name} has none", True)

    # ------------------------------------------------------------------ setup
    @property
    def obs_size(self) -> int:
        return math.prod(self.env.spec.observation_space.shape)

    @property
    def task_size(self) -> int:
        def features(key):
            return task_features(self.env, self.task_dist.sample(key))

        return int(jax.eval_shape(features, jax.random.PRNGKey(0)).shape[0])

    @property
    def context_size(self) -> int:
        return {"belief": 2 * self.config.latent_size, "task": self.task_size, "none": 0}[self.config.policy_input]

    @property
    def encoder(self) -> TrialEncoder:
        c = self.config
        return TrialEncoder(self.env.spec.action_space, c.latent_size, c.encoder_hidden_size, c.state_embed,
                            c.action_embed, c.reward_embed, tuple(c.encoder_layers_before),
                            tuple(c.encoder_layers_after), image_shape(self.env), c.pixel_embed_size)

    @property
    def reward_decoder(self) -> RewardDecoder:
        c = self.config
        num_states = int(self.env.num_states) if c.reward_multi_head else 0
        return RewardDecoder(self.env.spec.action_space, c.reward_decoder, c.reward_multi_head, num_states,
                             tuple(c.reward_decoder_layers), c.decoder_state_embed, c.decoder_action_embed,
                             c.reward_input_prev_state, c.reward_input_action)

    @property
    def state_decoder(self) -> StateDecoder:
        c = self.config
        return StateDecoder(self.env.spec.action_space, self.obs_size, tuple(c.state_decoder_layers),
                            c.decoder_state_embed, c.decoder_action_embed)

    @property
    def task_decoder(self) -> TaskDecoder:
        return TaskDecoder(self.task_size, tuple(self.config.task_decoder_layers))

    @property
    def policy(self) -> BeliefActorCritic:
        c = self.config
        return BeliefActorCritic(self.env.spec.action_space, c.obs_embed, c.context_embed, tuple(c.policy_layers),
                                 c.activation, c.init_std, image_shape=image_shape(self.env),
                                 pixel_embed_size=c.pixel_embed_size)

    def actor(self, deterministic: bool = False) -> BeliefActor:
        c = self.config
        return BeliefActor(self.encoder, self.policy, c.policy_input, c.normalize_policy_inputs, deterministic,
                           lambda task: task_features(self.env, task))

    @property
    def ppo_optimizer(self) -> optax.GradientTransformation:
        adam = optax.adam(self.config.lr, eps=1e-8)
        if self.config.max_grad_norm > 0:
            return optax.chain(optax.clip_by_global_norm(self.config.max_grad_norm), adam)
        return adam

    @property
    def vae_optimizer(self) -> optax.GradientTransformation:
        adam = optax.adam(self.config.vae_lr)
        if self.config.vae_max_grad_norm > 0:
            return optax.chain(optax.clip_by_global_norm(self.config.vae_max_grad_norm), adam)
        return adam

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes_per_trial or self.env.spec.episodes_per_trial

    @property
    def trial_length(self) -> int:
        return self.episodes_per_trial * self.env.spec.horizon

    @property
    def num_trials(self) -> int:
        return self.meta_batch_size * self.config.trials_per_task

    @property
    def vae_keys(self) -> tuple[str, ...]:
        c = self.config
        return ("encoder",) + tuple(name for name, on in (("reward_decoder", c.decode_reward),
                                                          ("state_decoder", c.decode_state),
                                                          ("task_decoder", c.decode_task)) if on)

    @property
    def ppo_keys(self) -> tuple[str, ...]:
        return ("policy", "encoder") if self.config.rl_through_encoder else ("policy",)

    def _example_trial(self) -> VAETrial:
        space = self.env.spec.action_space
        length = self.trial_length
        obs = jnp.zeros((length, self.obs_size), jnp.float32)
        action = jnp.zeros((length, *space.shape), jnp.dtype(space.dtype))
        scalars = jnp.zeros((length,), jnp.float32)
        return VAETrial(obs=obs, action=action, reward=scalars, next_obs=obs, mask=scalars, prev_action=action,
                        prev_reward=scalars, prev_done=scalars, task_features=jnp.zeros((self.task_size,), jnp.float32))

    def init(self, key: jax.Array) -> VariBADState:
        c = self.config
        keys = jax.random.split(key, 5)
        params = {
            "policy": self.policy.init(keys[0], self.obs_size, self.context_size),
            "encoder": self.encoder.init(keys[1], self.obs_size),
        }
        if c.decode_reward:
            params["reward_decoder"] = self.reward_decoder.init(keys[2], c.latent_size, self.obs_size)
        if c.decode_state:
            params["state_decoder"] = self.state_decoder.init(keys[3], c.latent_size)
        if c.decode_task:
            params["task_decoder"] = self.task_decoder.init(keys[4], c.latent_size)
        norm = {"obs": running_stats_init(self.obs_size), "context": running_stats_init(self.context_size)}
        if c.normalize_rewards:
            norm["return"] = running_stats_init(1)
        return VariBADState(
            params=params,
            ppo_opt_state=self.ppo_optimizer.init({k: params[k] for k in self.ppo_keys}),
            vae_opt_state=self.vae_optimizer.init({k: params[k] for k in self.vae_keys}),
            norm=norm,
            buffer=replay_init(self._example_trial(), num_buffers=1, capacity=c.vae_buffer_trials),
            iteration=jnp.zeros((), jnp.int32),
        )

    def env_steps_per_iteration(self) -> int:
        return self.num_trials * self.trial_length

    def headline(self) -> dict[str, str]:
        last = self.episodes_per_trial - 1
        return {"train/return_episode0": "ep0", f"train/return_episode{last}": f"ep{last}"}

    # ------------------------------------------------------------------ data
    def collect(self, params: Params, norm: dict[str, RunningStats], tasks: Any, key: jax.Array,
                trials_per_task: int, num_episodes: int, deterministic: bool = False,
                record_state: bool = False) -> Trajectory:
        """Trials of each task. Leaves [N, R, K, T, ...] with next_obs and extras["context"] (with
        ``record_state``, also extras["env_state"])."""
        actor_params = {"policy": params["policy"], "encoder": params["encoder"], "norm": norm}
        return rollout_trials(self.env, self.actor(deterministic), actor_params, tasks, key, trials_per_task,
                              num_episodes, next_obs=True, record_state=record_state)

    def vae_trials(self, traj: Trajectory, tasks: Any) -> VAETrial:
        """Trajectory [N, R, K, T, ...] of ``tasks`` [N] -> VAETrial leaves [N * R, L, ...]."""
        n, r, k, t = traj.mask.shape

        def flat(x):
            return x.reshape(n * r, k * t, *x.shape[4:])

        features = jax.vmap(lambda task: task_features(self.env, task))(tasks)
        obs = flat(traj.obs).reshape(n * r, k * t, -1).astype(jnp.float32)
        next_obs = flat(traj.next_obs).reshape(n * r, k * t, -1).astype(jnp.float32)
        return VAETrial(
            obs=obs, action=flat(traj.action), reward=flat(traj.reward), next_obs=next_obs, mask=flat(traj.mask),
            prev_action=flat(traj.extras["prev_action"]), prev_reward=flat(traj.extras["prev_reward"]),
            prev_done=flat(traj.extras["prev_done"]), task_features=jnp.repeat(features, r, axis=0),
        )

    # ------------------------------------------------------------------ VAE
    def trial_beliefs(self, encoder_params: Params, trial: VAETrial) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(means [L + 1, Z], logvars [L + 1, Z], valid [L + 1])`` of one trial (leaves [L, ...])."""
        inputs, valid_inputs = consumed_inputs(trial)
        means, logvars = self.encoder.encode(encoder_params, inputs, valid_inputs, self.config.encoder_truncation)
        valid = jnp.concatenate([jnp.ones((1,), jnp.float32), valid_inputs.astype(jnp.float32)])
        return means, logvars, valid

    def elbo_terms(self, params: Params, trial: VAETrial, key: jax.Array) -> dict[str, jax.Array]:
        """The negative ELBO's terms of one trial (leaves [L, ...]): reward / state / task
        reconstruction summed over ELBO terms and decoded transitions, and the KL summed over terms."""
        c = self.config
        means, logvars, valid = self.trial_beliefs(params["encoder"], trial)
        sample_key, elbo_key, decode_key = jax.random.split(key, 3)
        z = means + jnp.exp(0.5 * logvars) * jax.random.normal(sample_key, means.shape)
        kl = kl_to_previous(means, logvars, c.kl_to_standard_normal)
        length = self.trial_length
        if c.subsample_elbos > 0:
            chosen = jax.random.randint(elbo_key, (c.subsample_elbos,), 0, length + 1)
            z, kl, valid = z[chosen], kl[chosen], valid[chosen]
        num_elbos = z.shape[0]
        if c.subsample_decodes > 0:
            decodes = jax.random.randint(decode_key, (num_elbos, c.subsample_decodes), 0, length)
        else:
            decodes = jnp.broadcast_to(jnp.arange(length), (num_elbos, length))
        picked = {name: getattr(trial, name)[decodes] for name in ("obs", "action", "reward", "next_obs", "mask")}
        weight = picked["mask"] * valid[:, None]  # [E, D]
        z_rows = jnp.broadcast_to(z[:, None, :], (*decodes.shape, z.shape[-1]))
        terms = {"kl": (kl * valid).sum()}
        if c.decode_reward:
            index = self.env.state_index(picked["next_obs"]) if c.reward_multi_head else None
            decoder = self.reward_decoder
            prediction = decoder.predict(params["reward_decoder"], z_rows, picked["obs"], picked["action"],
                                         picked["next_obs"], index)
            terms["reward_loss"] = (decoder.loss(prediction, picked["reward"]) * weight).sum()
        if c.decode_state:
            loss = self.state_decoder.loss(params["state_decoder"], z_rows, picked["obs"], picked["action"],
                                           picked["next_obs"])
            terms["state_loss"] = (loss * weight).sum()
        if c.decode_task:
            loss = self.task_decoder.loss(params["task_decoder"], z, trial.task_features)
            terms["task_loss"] = (loss * valid).sum()
        return terms

    def vae_loss(self, vae_params: Params, trials: VAETrial, key: jax.Array) -> tuple[jax.Array, Metrics]:
        """VariBAD's loss over a batch of trials (leaves [B, L, ...]): reconstruction averaged over
        trials, KL summed over them."""
        c = self.config
        keys = jax.random.split(key, trials.mask.shape[0])
        terms = jax.vmap(self.elbo_terms, in_axes=(None, 0, 0))(vae_params, trials, keys)
        total = c.kl_weight * terms["kl"].sum()
        coefs = {"reward_loss": c.reward_loss_coef, "state_loss": c.state_loss_coef, "task_loss": c.task_loss_coef}
        for name, coef in coefs.items():
            if name in terms:
                total = total + coef * terms[name].mean()
        return total, {name: value.mean() for name, value in terms.items()}

    def vae_update(self, params: Params, opt_state: Any, buffer: ReplayBuffer, key: jax.Array
                   ) -> tuple[Params, Any, Metrics]:
        """``vae_updates`` gradient steps on batches drawn from the buffer (a ``lax.scan``)."""
        c = self.config
        optimizer = self.vae_optimizer

        def one(carry, step_key):
            vae_params, opt_state = carry
            sample_key, loss_key = jax.random.split(step_key)
            trials = jax.tree_util.tree_map(
                lambda x: x[0], replay_sample(buffer, sample_key, jnp.zeros((1,), jnp.int32), c.vae_batch_trials,
                                              replace=False))
            (loss, info), grads = jax.value_and_grad(self.vae_loss, has_aux=True)(vae_params, trials, loss_key)
            updates, opt_state = optimizer.update(grads, opt_state, vae_params)
            info = {**info, "loss": loss, "grad_norm": global_norm(grads)}
            return (optax.apply_updates(vae_params, updates), opt_state), info

        old = ({k: params[k] for k in self.vae_keys}, opt_state)
        new, infos = jax.lax.scan(one, old, jax.random.split(key, c.vae_updates))
        ready = buffer.size[0] >= c.vae_batch_trials  # no VAE step before the buffer holds one batch
        vae_params, opt_state = jax.tree_util.tree_map(lambda n, o: jnp.where(ready, n, o), new, old)
        return {**params, **vae_params}, opt_state, jax.tree_util.tree_map(lambda x: x.mean(), infos)

    # ------------------------------------------------------------------ PPO
    def policy_context(self, params: Params, trial: VAETrial, recorded: jax.Array) -> jax.Array:
        """The policy's context at each step [L, C]: re-encoded with ``params`` (rl_through_encoder) or
        the one recorded while acting."""
        if not self.config.rl_through_encoder:
            return recorded
        means, logvars, _ = self.trial_beliefs(params["encoder"], trial)
        return jnp.concatenate([means[:-1], logvars[:-1]], axis=-1)

    def ppo_loss(self, ppo_params: Params, norm: dict[str, RunningStats], batch: dict[str, Any]
                 ) -> tuple[jax.Array, Metrics]:
        """PPO loss of a minibatch of whole trials (leaves [B, L, ...])."""
        c = self.config
        trials: VAETrial = batch["trial"]
        context = jax.vmap(lambda t, ctx: self.policy_context(ppo_params, t, ctx))(trials, batch["context"])
        obs, context = normalized_policy_inputs(norm, trials.obs, context, c.normalize_policy_inputs)
        dist, value = self.policy(ppo_params["policy"], obs, context)
        log_prob = dist.log_prob(trials.action)
        adv = rl_returns.normalize(batch["advantages"], trials.mask) if c.normalize_advantages else batch["advantages"]
        return ppo.ppo_loss(log_prob, batch["log_prob"], adv, value, batch["old_values"], batch["targets"],
                            dist.entropy(), trials.mask, clip_eps=c.clip_eps, value_clip_eps=c.value_clip_eps,
                            value_coef=c.value_coef, entropy_coef=c.entropy_coef)

    def ppo_rewards(self, norm: dict[str, RunningStats], trials: VAETrial) -> tuple[jax.Array, RunningStats | None]:
        """PPO's rewards [B, L] and the updated return statistics (None unless normalize_rewards).

        With ``normalize_rewards``, as VariBAD's ``VecNormalize``: the discounted running return
        ``ret_t = gamma ret_{t-1} + r_t`` of every step enters the statistics, then rewards are
        divided by their std and clipped to ±10."""
        c = self.config
        if not c.normalize_rewards:
            return trials.reward * c.reward_scale, None

        def running_return(rewards, mask):
            def body(ret, xs):
                r, m = xs
                ret = jnp.where(m > 0, c.gamma * ret + r, ret)
                return ret, ret

            return jax.lax.scan(body, jnp.zeros(()), (rewards, mask))[1]

        returns = jax.vmap(running_return)(trials.reward, trials.mask)
        stats = running_stats_update(norm["return"], returns.reshape(-1, 1), trials.mask.reshape(-1))
        scaled = jnp.clip(trials.reward / jnp.sqrt(stats.var[0] + 1e-8), -10.0, 10.0)
        return scaled * c.reward_scale * trials.mask, stats

    def ppo_batch(self, params: Params, norm: dict[str, RunningStats], trials: VAETrial, context: jax.Array,
                  log_prob: jax.Array, rewards: jax.Array) -> dict[str, Any]:
        """Values of the behaviour params and GAE targets of ``rewards`` [B, L] over each flattened trial."""
        c = self.config
        obs, ctx = normalized_policy_inputs(norm, trials.obs, context, c.normalize_policy_inputs)
        _, values = self.policy(params["policy"], obs, ctx)
        adv = jax.vmap(rl_returns.gae, in_axes=(0, 0, 0, None, None))(rewards, values, trials.mask, c.gamma,
                                                                       c.gae_lambda)
        batch = {"trial": trials, "context": context, "log_prob": log_prob, "advantages": adv,
                 "targets": (adv + values) * trials.mask, "old_values": values}
        return jax.lax.stop_gradient(batch)

    # ------------------------------------------------------------------ meta-iteration
    def meta_step(self, state: VariBADState, key: jax.Array) -> tuple[VariBADState, Metrics]:
        c = self.config
        task_key, rollout_key, ppo_key, vae_key = jax.random.split(key, 4)
        tasks = self.sample_tasks(task_key)
        traj = self.collect(state.params, state.norm, tasks, rollout_key, c.trials_per_task, self.episodes_per_trial)
        trials = self.vae_trials(traj, tasks)
        b = self.num_trials

        def flat(x):
            return x.reshape(b, self.trial_length, *x.shape[4:])

        context, log_prob = flat(traj.extras["context"]), flat(traj.log_prob)

        # PPO on the policy (and the encoder with rl_through_encoder).
        rewards, return_stats = self.ppo_rewards(state.norm, trials)
        batch = self.ppo_batch(state.params, state.norm, trials, context, log_prob, rewards)
        ppo_params = {k: state.params[k] for k in self.ppo_keys}

        def loss_fn(p, minibatch):
            return self.ppo_loss(p, state.norm, minibatch)

        ppo_params, ppo_opt_state, infos = ppo.update_minibatches(loss_fn, self.ppo_optimizer, ppo_params,
                                                                  state.ppo_opt_state, batch, ppo_key, c.ppo_epochs,
                                                                  c.num_minibatches)
        params = {**state.params, **ppo_params}

        # The VAE on the buffer, which now holds this iteration's trials too.
        valid = jnp.ones((1, b), bool)
        buffer = replay_insert(state.buffer, jnp.zeros((1,), jnp.int32),
                               jax.tree_util.tree_map(lambda x: x[None], trials), valid)
        params, vae_opt_state, vae_info = self.vae_update(params, state.vae_opt_state, buffer, vae_key)

        # Normalisation statistics (used from the next iteration on, so PPO saw the behaviour's inputs).
        mask = trials.mask.reshape(-1)
        norm = {
            "obs": running_stats_update(state.norm["obs"], trials.obs.reshape(-1, self.obs_size), mask),
            "context": running_stats_update(state.norm["context"], context.reshape(-1, self.context_size), mask)
            if self.context_size > 0 else state.norm["context"],
        }
        if return_stats is not None:
            norm["return"] = return_stats

        first = jax.tree_util.tree_map(lambda x: x[0, 0], infos)
        last = jax.tree_util.tree_map(lambda x: x[-1].mean(), infos)
        episode_returns = traj.episode_return().mean(axis=(0, 1))  # [K]
        metrics = {
            "train/return_trial": episode_returns.sum(),
            "train/entropy": first["entropy"],
            "train/value_loss": first["value_loss"],
            "train/policy_loss": last["policy_loss"],
            "train/approx_kl": last["approx_kl"],
            "train/clip_fraction": last["clip_fraction"],
            "train/grad_norm": first["grad_norm"],
            **{f"train/vae_{name}": value for name, value in vae_info.items()},
        }
        logged = range(self.episodes_per_trial) if self.episodes_per_trial <= _MAX_LOGGED_EPISODES else (
            0, self.episodes_per_trial - 1)
        for k in logged:
            metrics[f"train/return_episode{k}"] = episode_returns[k]
        new_state = VariBADState(params=params, ppo_opt_state=ppo_opt_state, vae_opt_state=vae_opt_state, norm=norm,
                                 buffer=buffer, iteration=state.iteration + 1)
        return new_state, metrics

    # ------------------------------------------------------------------ meta-test
    def evaluate(self, state: VariBADState, tasks: Any, key: jax.Array) -> EvalOut:
        """Return of each episode of a trial [N, K] (mean over ``eval_trials_per_task`` trials), and the
        ELBO's terms on those trials per task ([N] extras ``vae_reward_loss``, ``vae_kl``, ...)."""
        c = self.config
        num_episodes = c.eval_episodes or self.episodes_per_trial
        rollout_key, elbo_key = jax.random.split(key)
        traj = self.collect(state.params, state.norm, tasks, rollout_key, c.eval_trials_per_task, num_episodes,
                            c.eval_deterministic)
        returns = traj.episode_return().mean(axis=1)
        extras = {}
        if num_episodes == self.episodes_per_trial:
            trials = self.vae_trials(traj, tasks)
            keys = jax.random.split(elbo_key, trials.mask.shape[0])
            terms = jax.vmap(self.elbo_terms, in_axes=(None, 0, 0))(state.params, trials, keys)
            num_tasks = returns.shape[0]
            extras = {f"vae_{name}": value.reshape(num_tasks, c.eval_trials_per_task).mean(axis=1)
                      for name, value in terms.items()}
        return EvalOut(returns=returns, axis="episode", extras=extras)

    def viewer_rollouts(self, state: VariBADState, tasks: Any, key: jax.Array) -> ViewerRollouts:
        """One meta-test trial per task with its env states: leaves [N, K, T, ...] (K episodes)."""
        c = self.config
        num_episodes = c.eval_episodes or self.episodes_per_trial
        traj = self.collect(state.params, state.norm, tasks, key, 1, num_episodes, c.eval_deterministic,
                            record_state=True)
        labels = tuple(f"episode {k} of the trial" for k in range(num_episodes))
        return ViewerRollouts(traj=jax.tree_util.tree_map(lambda x: x[:, 0], traj), labels=labels)
