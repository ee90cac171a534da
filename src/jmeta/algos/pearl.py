"""PEARL (Rakelly et al. 2019): off-policy meta-RL with a probabilistic task context.

A context encoder turns a set of transitions ``c = {(s, a, r[, s'])}`` of one task into a posterior
``q(z | c)`` over a task latent (a product of per-transition Gaussian factors,
:mod:`jmeta.networks.encoders`); a soft actor-critic conditioned on ``z`` acts
(:mod:`jmeta.rl.sac`). The encoder is trained through the critic's Bellman error plus
``kl_lambda * sum_tasks KL(q(z|c) || N(0, I))``; the policy and the value network see ``z`` with
its gradient stopped (oyster ``sac.py``).

Data (oyster ``rl_algorithm.py``), one replay buffer and one "encoder" buffer per training task,
stacked as one pytree (:mod:`jmeta.rl.replay`):

* ``init``: for every training task, ``num_initial_steps`` with ``z`` drawn from the prior for
  every episode, into both buffers;
* every meta-iteration, for ``num_tasks_sample`` training tasks drawn with replacement
  (vmapped): the task's encoder buffer is cleared; ``num_steps_prior`` steps with ``z`` from the
  prior (both buffers); ``num_steps_posterior`` steps (both buffers) and then
  ``num_extra_rl_steps_posterior`` steps (replay only) with ``z`` drawn from the posterior of
  ``embedding_batch_size`` transitions sampled from the encoder buffer before each episode (the
  first episode of each of these two phases still uses the prior, as oyster's ``clear_z`` makes
  it). Step counts are rounded up to whole episodes;
* then ``num_train_steps_per_itr`` SAC steps (a ``lax.scan``), each on ``meta_batch_size`` training
  tasks drawn with replacement: ``batch_size`` transitions per task from the replay buffer and a
  context of ``embedding_batch_size`` transitions per task from the encoder buffer.

Meta-test (:meth:`PEARL.evaluate`, oyster ``collect_paths``): on each held-out task, a trial of
``eval_episodes`` episodes with deterministic actions; ``z`` is one prior draw for the first
``eval_exploration_episodes`` episodes, then after every episode a draw from the posterior of
all the transitions of the trial so far. The return of every episode is reported (axis
"episode"), averaged over ``eval_runs_per_task`` trials.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jmeta.algos.base import EvalOut, MetaLearner, Preset, ViewerRollouts
from jmeta.networks.encoders import ContextEncoder, GaussianPosterior
from jmeta.networks.mlp import ACTIVATIONS
from jmeta.networks.sac import CriticMLP, TanhGaussianActor
from jmeta.rl import sac
from jmeta.rl.replay import ReplayBuffer, replay_init, replay_insert, replay_sample
from jmeta.rollout import rollout_episode
from jmeta.tasks import TaskBank, training_task_set
from jmeta.types import Metrics, Params
from jmeta.validation import check

CRITICS = ("v", "target_q")


@dataclasses.dataclass(frozen=True)
class PEARLConfig:
    """PEARL (Rakelly et al. 2019): SAC on a task latent inferred by a product-of-Gaussians encoder.

    Defaults are oyster's ``configs/default.py``; the run field ``meta_batch_size`` is oyster's
    ``meta_batch`` (tasks per gradient step)."""

    latent_size: int = 5
    """Dimension of the task latent z."""
    hidden_sizes: tuple[int, ...] = (300, 300, 300)
    """Hidden layers of the policy, Q and V networks (oyster's net_size=300, 3 layers)."""
    encoder_sizes: tuple[int, ...] = (200, 200, 200)
    """Hidden layers of the context encoder."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "relu"
    """Activation of every network."""
    probabilistic: bool = True
    """The information bottleneck: z ~ product of Gaussians with a KL to N(0, I) (False: z = mean of the factor means)."""
    kl_lambda: float = 0.1
    """Weight of the KL term (summed over the meta-batch tasks)."""
    use_context: bool = True
    """False: the non-adaptive baseline, a multi-task SAC whose z is always 0 (no encoder, no KL)."""
    use_next_obs_in_context: bool = False
    """Context transitions are (s, a, r, s') instead of (s, a, r)."""
    dense_sac_reward: bool = True
    """When the env reports info['dense_reward'] (sparse variants), SAC trains on it while the context
    and the reported returns use the env's reward (oyster: 'rewards are always dense' for SAC)."""
    critic: Literal["v", "target_q"] = "v"
    """'v': twin Q + V network + target V (SAC v1, oyster); 'target_q': twin Q + target Qs (SAC v2)."""
    reward_scale: float = 5.0
    """Rewards are multiplied by this in the Bellman target (with alpha = 1 it sets the entropy trade-off)."""
    alpha: float = 1.0
    """Fixed entropy temperature (oyster: 1), or the initial one with auto_alpha."""
    auto_alpha: bool = False
    """Learn the temperature to reach target_entropy (SAC v2)."""
    target_entropy: float | None = None
    """Target policy entropy for auto_alpha (None: -action_dim)."""
    discount: float = 0.99
    """Discount gamma."""
    tau: float = 0.005
    """Polyak rate of the target network(s) (oyster's soft_target_tau)."""
    policy_lr: float = 3e-4
    """Adam learning rate of the policy."""
    qf_lr: float = 3e-4
    """Adam learning rate of the Q networks."""
    vf_lr: float = 3e-4
    """Adam learning rate of the V network."""
    context_lr: float = 3e-4
    """Adam learning rate of the encoder."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log(alpha) (auto_alpha)."""
    policy_mean_reg: float = 1e-3
    """Weight of mean(mu^2) in the policy loss."""
    policy_std_reg: float = 1e-3
    """Weight of mean(log_std^2) in the policy loss."""
    num_train_tasks: int = 100
    """Training tasks (one replay buffer each) when the env has no fixed train set; a fixed set is used as it is."""
    train_task_seed: int = 0
    """Seed of the training tasks drawn when the env has no fixed train set."""
    num_initial_steps: int = 2000
    """Steps collected per training task at initialisation (prior z)."""
    num_tasks_sample: int = 5
    """Training tasks collected from per meta-iteration."""
    num_steps_prior: int = 400
    """Steps per sampled task with z from the prior (replay and encoder buffers)."""
    num_steps_posterior: int = 0
    """Steps per sampled task with z from the posterior (replay and encoder buffers)."""
    num_extra_rl_steps_posterior: int = 400
    """Steps per sampled task with z from the posterior (replay buffer only)."""
    num_train_steps_per_itr: int = 2000
    """SAC gradient steps per meta-iteration."""
    batch_size: int = 256
    """SAC transitions per task per gradient step."""
    embedding_batch_size: int = 64
    """Context transitions per task (sampled with replacement from the encoder buffer)."""
    replay_capacity: int = 100_000
    """Transitions kept per training task (ring buffer; oyster keeps 1e6)."""
    eval_episodes: int | None = None
    """Meta-test: episodes per trial on a held-out task (None: the env's episodes_per_trial, and at least
    eval_exploration_episodes + 1 so that a posterior episode is reported)."""
    eval_exploration_episodes: int = 1
    """Meta-test: episodes that keep the first prior z before the posterior is used (oyster's num_exp_traj_eval)."""
    eval_runs_per_task: int = 2
    """Meta-test: trials per held-out task (oyster's num_evals)."""
    eval_deterministic: bool = True
    """Meta-test with tanh(mean) actions (oyster's eval_deterministic)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        check(self.latent_size >= 1, p + "latent_size", "must be >= 1", self.latent_size)
        for name in ("hidden_sizes", "encoder_sizes"):
            sizes = getattr(self, name)
            check(all(h >= 1 for h in sizes), p + name, "must be positive layer widths", sizes)
        check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        check(self.kl_lambda >= 0, p + "kl_lambda", "must be >= 0", self.kl_lambda)
        check(self.critic in CRITICS, p + "critic", f"must be one of {list(CRITICS)}", self.critic)
        check(self.reward_scale > 0, p + "reward_scale", "must be > 0", self.reward_scale)
        check(self.alpha > 0, p + "alpha", "must be > 0", self.alpha)
        check(0 <= self.discount <= 1, p + "discount", "must be in [0, 1]", self.discount)
        check(0 < self.tau <= 1, p + "tau", "must be in (0, 1]", self.tau)
        for name in ("policy_lr", "qf_lr", "vf_lr", "context_lr", "alpha_lr"):
            check(getattr(self, name) > 0, p + name, "must be > 0", getattr(self, name))
        for name in ("policy_mean_reg", "policy_std_reg"):
            check(getattr(self, name) >= 0, p + name, "must be >= 0", getattr(self, name))
        check(self.num_train_tasks >= 1, p + "num_train_tasks", "must be >= 1", self.num_train_tasks)
        check(self.num_initial_steps >= 1, p + "num_initial_steps", "must be >= 1", self.num_initial_steps)
        check(self.num_tasks_sample >= 1, p + "num_tasks_sample", "must be >= 1", self.num_tasks_sample)
        for name in ("num_steps_prior", "num_steps_posterior", "num_extra_rl_steps_posterior"):
            check(getattr(self, name) >= 0, p + name, "must be >= 0", getattr(self, name))
        collected = self.num_steps_prior + self.num_steps_posterior + self.num_extra_rl_steps_posterior
        check(collected >= 1, p + "num_steps_prior", "prior + posterior + extra steps must be >= 1", collected)
        check(self.num_train_steps_per_itr >= 1, p + "num_train_steps_per_itr", "must be >= 1", self.num_train_steps_per_itr)
        check(self.batch_size >= 1, p + "batch_size", "must be >= 1", self.batch_size)
        check(self.embedding_batch_size >= 1, p + "embedding_batch_size", "must be >= 1", self.embedding_batch_size)
        check(self.replay_capacity >= 1, p + "replay_capacity", "must be >= 1", self.replay_capacity)
        check(self.eval_episodes is None or self.eval_episodes >= 1, p + "eval_episodes", "must be >= 1", self.eval_episodes)
        check(self.eval_exploration_episodes >= 1, p + "eval_exploration_episodes", "must be >= 1",
              self.eval_exploration_episodes)
        check(self.eval_runs_per_task >= 1, p + "eval_runs_per_task", "must be >= 1", self.eval_runs_per_task)


#: Tiny settings for tests.
TINY = PEARLConfig(latent_size=2, hidden_sizes=(16,), encoder_sizes=(16,), num_train_tasks=6, num_initial_steps=20,
                   num_tasks_sample=2, num_steps_prior=10, num_extra_rl_steps_posterior=10, num_train_steps_per_itr=3,
                   batch_size=8, embedding_batch_size=8, replay_capacity=200, eval_runs_per_task=1)

_OYSTER = "katerakelly/oyster configs/{}.json over configs/default.py"
#: The CPU scaling shared by the point-robot presets and the learning test.
_CPU_SMALL = {"hidden_sizes": (64, 64), "encoder_sizes": (64, 64), "reward_scale": 5.0, "policy_lr": 1e-3,
              "qf_lr": 1e-3, "vf_lr": 1e-3, "context_lr": 1e-3, "num_train_steps_per_itr": 200, "batch_size": 64,
              "embedding_batch_size": 64}
PRESETS: dict[str, Preset] = {
    "point_nav": Preset(
        run={"env_variant": "pearl", "meta_iters": 300, "meta_batch_size": 8, "chunk_size": 25, "eval_every": 50,
             "checkpoint_every": 50, "eval_tasks": 20},
        algo={**_CPU_SMALL, "num_initial_steps": 200, "num_steps_prior": 200, "num_extra_rl_steps_posterior": 200,
              "replay_capacity": 20_000},
        source=_OYSTER.format("point-robot") + " (500 iterations x 1000 SAC steps, meta-batch 16 x 256, 3 x 300 "
               "networks, reward scale 100, Adam 3e-4); scaled for CPU: 300 iterations x 200 steps, meta-batch "
               "8 x 64, (64, 64) networks, reward scale 5 and Adam 1e-3 (oyster's scale and rate had not started "
               "to learn after 8k steps)",
    ),
    "point_nav:pearl_sparse": Preset(
        run={"env_variant": "pearl_sparse", "meta_iters": 300, "meta_batch_size": 8, "chunk_size": 25,
             "eval_every": 50, "checkpoint_every": 50, "eval_tasks": 20},
        algo={**_CPU_SMALL, "num_initial_steps": 200, "num_tasks_sample": 10, "num_steps_prior": 100,
              "num_steps_posterior": 900, "num_extra_rl_steps_posterior": 0, "embedding_batch_size": 256,
              "discount": 0.9, "kl_lambda": 1.0, "replay_capacity": 40_000, "eval_exploration_episodes": 5},
        source=_OYSTER.format("sparse-point-robot") + " (500 iterations x 1000 SAC steps, context 1024, reward "
               "scale 100, 3 x 300 networks); scaled for CPU as the point_nav preset, context 256",
    ),
    "cheetah_vel": Preset(
        run={"env_variant": "pearl", "meta_iters": 100, "meta_batch_size": 8, "chunk_size": 5, "eval_every": 25,
             "checkpoint_every": 25, "eval_tasks": 30},
        algo={"hidden_sizes": (128, 128), "encoder_sizes": (128, 128), "num_initial_steps": 2000,
              "num_steps_prior": 400, "num_extra_rl_steps_posterior": 600, "num_train_steps_per_itr": 500,
              "batch_size": 128, "embedding_batch_size": 100, "replay_capacity": 20_000,
              "eval_exploration_episodes": 2, "eval_runs_per_task": 1},
        source=_OYSTER.format("cheetah-vel") + " (500 iterations x 2000 SAC steps, meta-batch 16 x 256, 3 x 300 "
               "networks; 2.7M env steps); scaled for CPU: 100 iterations x 500 steps, meta-batch 8 x 128, "
               "(128, 128) networks (0.7M env steps)",
    ),
}


@struct.dataclass
class Transition:
    """One stored transition (leaves without batch axes; stacked [..., n, ...] in buffers).

    obs/next_obs: [obs_dim]; action: [action_dim] in (-1, 1) (the tanh policy's units);
    reward: the env's reward (what the context sees and returns report); sac_reward: the reward SAC
    trains on (the dense one for sparse variants); terminated: float32 0/1."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    sac_reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


@struct.dataclass
class PEARLState:
    """params: dict of network params (policy, qf1, qf2, encoder, [vf], log_alpha); target: target
    V params ("v" critic) or (qf1, qf2) target params ("target_q"); opt_state: dict of Adam states
    per params entry; replay / encoder_replay: per-training-task buffers; iteration: int32."""

    params: dict[str, Any]
    target: Any
    opt_state: dict[str, Any]
    replay: ReplayBuffer
    encoder_replay: ReplayBuffer
    iteration: jax.Array


@dataclasses.dataclass(frozen=True)
class PEARL(MetaLearner[PEARLConfig, PEARLState]):
    """PEARL meta-learner over ``env`` and ``task_dist``. See the module docstring."""

    name: ClassVar[str] = "pearl"
    Config: ClassVar[type] = PEARLConfig
    TINY: ClassVar[PEARLConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS
    EVAL_AXIS: ClassVar[str] = "episode"
    ACTION_SPACES: ClassVar[tuple[str, ...]] = ("continuous",)

    def __post_init__(self):
        super().__post_init__()
        space = self.env.spec.action_space
        check(bool(np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))), "pearl",
              "needs a bounded action space (its tanh policy is mapped onto the box)", space)
        obs_shape = self.env.spec.observation_space.shape
        check(len(obs_shape) == 1, "pearl", "needs vector observations (its networks take concat(obs, z))", obs_shape)
        most = self.horizon * max(self._episodes(self.config.num_initial_steps), len(self.episode_schedule[0]))
        check(self.config.replay_capacity >= most, "pearl.replay_capacity",
              f"must hold one collection per task ({most} steps: the initial one or one iteration's)",
              self.config.replay_capacity)

    # ------------------------------------------------------------------ setup
    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.env.spec.observation_space.shape))

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.env.spec.action_space.shape))

    @property
    def horizon(self) -> int:
        return self.env.spec.horizon

    @property
    def encoder(self) -> ContextEncoder:
        c = self.config
        return ContextEncoder(c.latent_size, tuple(c.encoder_sizes), c.activation, c.probabilistic)

    @property
    def actor_net(self) -> TanhGaussianActor:
        return TanhGaussianActor(self.action_dim, tuple(self.config.hidden_sizes), self.config.activation)

    @property
    def critic_net(self) -> CriticMLP:
        return CriticMLP(tuple(self.config.hidden_sizes), self.config.activation)

    @property
    def transition_size(self) -> int:
        """Length of one context vector (s, a, r[, s'])."""
        return self.obs_dim * (2 if self.config.use_next_obs_in_context else 1) + self.action_dim + 1

    @property
    def training_set(self) -> TaskBank:
        """The finite training tasks, one replay buffer each (:func:`jmeta.tasks.training_task_set`)."""
        return training_task_set(self.task_dist, self.config.num_train_tasks, self.config.train_task_seed)

    def _episodes(self, steps: int) -> int:
        """Whole episodes that cover ``steps`` (oyster collects whole trajectories until >= steps)."""
        return math.ceil(steps / self.horizon)

    @property
    def episode_schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """Per episode of one task's collection: (draw z from the posterior, add to the encoder buffer)."""
        c = self.config
        n_prior, n_post, n_extra = (self._episodes(s) for s in
                                    (c.num_steps_prior, c.num_steps_posterior, c.num_extra_rl_steps_posterior))
        posterior = [False] * n_prior + [i > 0 for i in range(n_post)] + [i > 0 for i in range(n_extra)]
        to_encoder = [True] * (n_prior + n_post) + [False] * n_extra
        return np.asarray(posterior, bool), np.asarray(to_encoder, bool)

    @property
    def encoder_capacity(self) -> int:
        """Transitions an encoder buffer holds: the larger of the initial collection and one iteration's."""
        posterior, to_encoder = self.episode_schedule
        return self.horizon * max(self._episodes(self.config.num_initial_steps), int(to_encoder.sum()), 1)

    @property
    def num_eval_episodes(self) -> int:
        """Episodes of a meta-test trial (``eval_episodes``, or the env's, at least one posterior episode)."""
        c = self.config
        return c.eval_episodes or max(self.env.spec.episodes_per_trial, c.eval_exploration_episodes + 1)

    @property
    def target_entropy(self) -> float:
        c = self.config
        return -float(self.action_dim) if c.target_entropy is None else c.target_entropy

    def _optimizers(self) -> dict[str, optax.GradientTransformation]:
        c = self.config
        lrs = {"policy": c.policy_lr, "qf1": c.qf_lr, "qf2": c.qf_lr, "encoder": c.context_lr, "vf": c.vf_lr,
               "log_alpha": c.alpha_lr}
        return {name: optax.adam(lr) for name, lr in lrs.items()}

    def env_steps_per_iteration(self) -> int:
        return self.config.num_tasks_sample * len(self.episode_schedule[0]) * self.horizon

    def headline(self) -> dict[str, str]:
        names = {"train/return_prior": "prior", "train/qf_loss": "qf"}
        if self.episode_schedule[0].any():
            names["train/return_posterior"] = "post"
        return names

    # ------------------------------------------------------------------ actions
    def _to_env(self, u: jax.Array) -> jax.Array:
        """tanh-policy units (-1, 1) -> the env's action box."""
        space = self.env.spec.action_space
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
        return low + (u + 1.0) * 0.5 * (high - low)

    def _from_env(self, a: jax.Array) -> jax.Array:
        space = self.env.spec.action_space
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
        return 2.0 * (a - low) / (high - low) - 1.0

    def _policy_fn(self, deterministic: bool):
        """``(params=(policy_params, z), obs, key) -> (env action, log_prob)``."""

        def policy(params, obs, key):
            policy_params, z = params
            dist = self.actor_net.dist(policy_params, jnp.concatenate([obs.astype(jnp.float32), z], axis=-1))
            if deterministic:
                u = dist.mode()
                return self._to_env(u), dist.log_prob(u)
            u, log_prob = dist.sample_and_log_prob(key)
            return self._to_env(u), log_prob

        return policy

    # ------------------------------------------------------------------ transitions and context
    def transitions(self, traj) -> Transition:
        """A trajectory with ``extras["info"]`` (leaves [..., T, ...]) -> transitions [..., T, ...]."""
        info = traj.extras.get("info", {})
        sac_reward = info["dense_reward"] if self.config.dense_sac_reward and "dense_reward" in info else traj.reward
        return Transition(obs=traj.obs.astype(jnp.float32), action=self._from_env(traj.action), reward=traj.reward,
                          sac_reward=sac_reward.astype(jnp.float32), next_obs=traj.next_obs.astype(jnp.float32),
                          terminated=traj.terminated.astype(jnp.float32))

    def context_vectors(self, t: Transition) -> jax.Array:
        """Transitions [..., ] -> context vectors [..., transition_size] (s, a, r[, s'])."""
        parts = [t.obs, t.action, t.reward[..., None]]
        if self.config.use_next_obs_in_context:
            parts.append(t.next_obs)
        return jnp.concatenate(parts, axis=-1)

    def posterior(self, encoder_params: Params, context: Transition, mask: jax.Array) -> GaussianPosterior:
        """q(z | context) for one task: context leaves [N, ...], mask [N] (a point mass at 0 without context)."""
        if not self.config.use_context:
            return self.prior()
        return self.encoder.posterior(encoder_params, self.context_vectors(context), mask)

    def prior(self) -> GaussianPosterior:
        """N(0, I) over z (a point mass at 0 for the non-adaptive baseline)."""
        prior = GaussianPosterior.prior(self.config.latent_size)
        return prior if self.config.use_context else prior.replace(variance=jnp.zeros_like(prior.variance))

    def _example_transition(self) -> Transition:
        zeros = jnp.zeros((), jnp.float32)
        obs = jnp.zeros((self.obs_dim,), jnp.float32)
        return Transition(obs, jnp.zeros((self.action_dim,), jnp.float32), zeros, zeros, obs, zeros)

    # ------------------------------------------------------------------ init
    def _init_params(self, key: jax.Array) -> dict[str, Any]:
        c = self.config
        keys = jax.random.split(key, 5)
        z_in = self.obs_dim + c.latent_size
        params = {
            "policy": self.actor_net.init(keys[0], z_in),
            "qf1": self.critic_net.init(keys[1], z_in + self.action_dim),
            "qf2": self.critic_net.init(keys[2], z_in + self.action_dim),
            "encoder": self.encoder.init(keys[3], self.transition_size),
        }
        if c.critic == "v":
            params["vf"] = self.critic_net.init(keys[4], z_in)
        if c.auto_alpha:
            params["log_alpha"] = jnp.asarray(math.log(c.alpha), jnp.float32)
        return params

    def _target(self, params: dict[str, Any]) -> Any:
        if self.config.critic == "v":
            return params["vf"]
        return (params["qf1"], params["qf2"])

    def _initial_target(self, params: dict[str, Any]) -> Any:
        """A copy of the online networks (separate buffers: the trainer donates the state)."""
        return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), self._target(params))

    def init(self, key: jax.Array) -> PEARLState:
        """Networks, optimisers and the buffers filled with ``num_initial_steps`` per training task (prior z)."""
        params_key, collect_key = jax.random.split(key)
        params = self._init_params(params_key)
        optimizers = self._optimizers()
        opt_state = {name: optimizers[name].init(p) for name, p in params.items()}
        train = self.training_set
        replay = replay_init(self._example_transition(), train.size, self.config.replay_capacity)
        encoder_replay = replay_init(self._example_transition(), train.size, self.encoder_capacity)
        n_initial = self._episodes(self.config.num_initial_steps)
        schedule = (np.zeros(n_initial, bool), np.ones(n_initial, bool))
        indices = jnp.arange(train.size, dtype=jnp.int32)
        replay, encoder_replay, _ = self._collect(params, train.tasks, indices, replay, encoder_replay, collect_key,
                                                  schedule)
        return PEARLState(params=params, target=self._initial_target(params), opt_state=opt_state, replay=replay,
                          encoder_replay=encoder_replay, iteration=jnp.zeros((), jnp.int32))

    # ------------------------------------------------------------------ data collection
    def _collect_task(self, params: dict[str, Any], task: Any, key: jax.Array, schedule: tuple[np.ndarray, np.ndarray]
                      ) -> tuple[Transition, jax.Array, ReplayBuffer, Any]:
        """One task's collection: episodes [K] following ``schedule`` (module docstring).

        Returns (transitions [K, T], valid [K, T], the task's new encoder buffer (one buffer of
        ``encoder_capacity``, cleared first), trajectories [K, T])."""
        posterior_flags, encoder_flags = (jnp.asarray(x) for x in schedule)
        policy = self._policy_fn(deterministic=False)
        local = replay_init(self._example_transition(), 1, self.encoder_capacity)
        zero = jnp.zeros((1,), jnp.int32)

        def episode(enc, args):
            use_posterior, to_encoder, k = args
            z_key, ctx_key, roll_key = jax.random.split(k, 3)
            context = jax.tree_util.tree_map(lambda x: x[0], replay_sample(enc, ctx_key, zero, self.config.embedding_batch_size))
            mask = jnp.broadcast_to((enc.size[0] > 0).astype(jnp.float32), (self.config.embedding_batch_size,))
            q = self.posterior(params["encoder"], context, mask)
            dist = jax.tree_util.tree_map(lambda a, b: jnp.where(use_posterior, a, b), q, self.prior())
            z = dist.sample(z_key)
            traj = rollout_episode(self.env, policy, (params["policy"], z), task, roll_key, record_info=True)
            trans = self.transitions(traj)
            valid = traj.mask > 0
            enc = replay_insert(enc, zero, jax.tree_util.tree_map(lambda x: x[None], trans),
                                (valid & to_encoder)[None])
            return enc, (trans, valid, traj)

        keys = jax.random.split(key, posterior_flags.shape[0])
        local, (trans, valid, traj) = jax.lax.scan(episode, local, (posterior_flags, encoder_flags, keys))
        return trans, valid, local, traj

    def _collect(self, params, tasks, indices, replay, encoder_replay, key, schedule):
        """Collects on ``tasks`` (leading axis B, buffer ``indices`` int32[B]) and stores the data.

        Returns (replay, encoder_replay, trajectories [B, K, T])."""
        num = indices.shape[0]
        trans, valid, local, traj = jax.vmap(lambda t, k: self._collect_task(params, t, k, schedule))(
            tasks, jax.random.split(key, num))
        flat = jax.tree_util.tree_map(lambda x: x.reshape(num, -1, *x.shape[3:]), trans)
        replay = replay_insert(replay, indices, flat, valid.reshape(num, -1))
        # Each collected task's encoder buffer is replaced by this collection's (cleared, then filled); a
        # task drawn twice keeps one of its two collections (the scatter does not order duplicates).
        encoder_replay = ReplayBuffer(
            data=jax.tree_util.tree_map(lambda d, x: d.at[indices].set(x[:, 0]), encoder_replay.data, local.data),
            insert_at=encoder_replay.insert_at.at[indices].set(local.insert_at[:, 0]),
            size=encoder_replay.size.at[indices].set(local.size[:, 0]),
        )
        return replay, encoder_replay, traj

    # ------------------------------------------------------------------ SAC
    def _alpha(self, params: dict[str, Any]) -> jax.Array:
        if self.config.auto_alpha:
            return jnp.exp(jax.lax.stop_gradient(params["log_alpha"]))
        return jnp.asarray(self.config.alpha, jnp.float32)

    def _with_z(self, x: jax.Array, z: jax.Array) -> jax.Array:
        """x [M, B, d], z [M, L] -> [M, B, d + L]."""
        return jnp.concatenate([x, jnp.broadcast_to(z[:, None, :], (*x.shape[:-1], z.shape[-1]))], axis=-1)

    def _q(self, params, obs, action, z):
        return self.critic_net.apply(params, self._with_z(jnp.concatenate([obs, action], axis=-1), z))

    def critic_loss(self, trainable: dict[str, Any], params: dict[str, Any], target: Any, batch: Transition,
                    context: Transition, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Q loss + kl_lambda * KL, differentiated w.r.t. ``trainable`` = {qf1, qf2, encoder}.

        batch: leaves [M, B, ...]; context: leaves [M, E, ...]. Returns (loss, aux with z [M, L])."""
        c = self.config
        z_key, next_key = jax.random.split(key)
        num_tasks, num_context = context.reward.shape
        q = jax.vmap(lambda ctx: self.posterior(trainable["encoder"], ctx, jnp.ones((num_context,), jnp.float32)))(context)
        z = q.sample(z_key)
        if c.probabilistic and c.use_context:
            kl = q.kl_to_standard_normal().sum()
        else:
            kl = jnp.zeros((), jnp.float32)
        q1 = self._q(trainable["qf1"], batch.obs, batch.action, z)
        q2 = self._q(trainable["qf2"], batch.obs, batch.action, z)
        z_target = jax.lax.stop_gradient(z)
        if c.critic == "v":
            next_value = self.critic_net.apply(target, self._with_z(batch.next_obs, z_target))
        else:
            dist = self.actor_net.dist(params["policy"], self._with_z(batch.next_obs, z_target))
            next_u, next_log_prob = dist.sample_and_log_prob(next_key)
            next_q1 = self._q(target[0], batch.next_obs, next_u, z_target)
            next_q2 = self._q(target[1], batch.next_obs, next_u, z_target)
            next_value = sac.soft_value(next_q1, next_q2, next_log_prob, self._alpha(params))
        y = sac.bellman_target(c.reward_scale * batch.sac_reward, batch.terminated, jax.lax.stop_gradient(next_value),
                               c.discount)
        qf_loss = sac.critic_loss(q1, q2, y)
        aux = {"z": z, "qf_loss": qf_loss, "kl": kl, "q1": q1.mean(), "z_variance": q.variance.mean()}
        return qf_loss + c.kl_lambda * kl, aux

    def actor_value_loss(self, trainable: dict[str, Any], params: dict[str, Any], batch: Transition, z: jax.Array,
                         key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Policy loss (+ V loss for the "v" critic), w.r.t. ``trainable`` = {policy[, vf][, log_alpha]};
        z is held fixed (oyster detaches it for the policy and V); Q uses ``params`` (already updated)."""
        c = self.config
        z = jax.lax.stop_gradient(z)
        dist = self.actor_net.dist(trainable["policy"], self._with_z(batch.obs, z))
        u, log_prob = dist.sample_and_log_prob(key)
        min_q = jnp.minimum(self._q(params["qf1"], batch.obs, u, z), self._q(params["qf2"], batch.obs, u, z))
        alpha = self._alpha(params)
        policy_loss = sac.actor_loss(log_prob, min_q, alpha)
        reg = c.policy_mean_reg * jnp.mean(dist.mean**2) + c.policy_std_reg * jnp.mean(dist.log_std**2)
        total = policy_loss + reg
        aux = {"policy_loss": policy_loss, "log_prob": log_prob.mean()}
        if c.critic == "v":
            value = self.critic_net.apply(trainable["vf"], self._with_z(batch.obs, z))
            vf_loss = sac.value_loss(value, min_q, log_prob, alpha)
            total = total + vf_loss
            aux["vf_loss"] = vf_loss
        if c.auto_alpha:
            alpha_loss = sac.temperature_loss(trainable["log_alpha"], log_prob, self.target_entropy)
            total = total + alpha_loss
        return total, aux

    def _apply(self, params, opt_state, grads):
        optimizers = self._optimizers()
        params, opt_state = dict(params), dict(opt_state)
        for name, g in grads.items():
            updates, opt_state[name] = optimizers[name].update(g, opt_state[name], params[name])
            params[name] = optax.apply_updates(params[name], updates)
        return params, opt_state

    def sac_step(self, carry, key: jax.Array):
        """One gradient step on ``meta_batch_size`` training tasks. carry = (params, target, opt_state, replay, encoder_replay)."""
        params, target, opt_state, replay, encoder_replay = carry
        c = self.config
        task_key, batch_key, ctx_key, critic_key, actor_key = jax.random.split(key, 5)
        indices = jax.random.randint(task_key, (self.meta_batch_size,), 0, replay.num_buffers)
        batch = replay_sample(replay, batch_key, indices, c.batch_size)
        context = replay_sample(encoder_replay, ctx_key, indices, c.embedding_batch_size)

        critic_names = ("qf1", "qf2", "encoder")
        (_, critic_aux), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(
            {n: params[n] for n in critic_names}, params, target, batch, context, critic_key)
        params, opt_state = self._apply(params, opt_state, grads)

        actor_names = ("policy",) + (("vf",) if c.critic == "v" else ()) + (("log_alpha",) if c.auto_alpha else ())
        (_, actor_aux), grads = jax.value_and_grad(self.actor_value_loss, has_aux=True)(
            {n: params[n] for n in actor_names}, params, batch, critic_aux["z"], actor_key)
        params, opt_state = self._apply(params, opt_state, grads)
        target = sac.polyak(target, self._target(params), c.tau)

        metrics = {
            "train/qf_loss": critic_aux["qf_loss"],
            "train/kl": critic_aux["kl"],
            "train/q": critic_aux["q1"],
            "train/z_variance": critic_aux["z_variance"],
            "train/policy_loss": actor_aux["policy_loss"],
            "train/log_prob": actor_aux["log_prob"],
            "train/alpha": self._alpha(params),
        }
        if "vf_loss" in actor_aux:
            metrics["train/vf_loss"] = actor_aux["vf_loss"]
        return (params, target, opt_state, replay, encoder_replay), metrics

    # ------------------------------------------------------------------ meta-iteration
    def collect(self, state: PEARLState, key: jax.Array) -> tuple[ReplayBuffer, ReplayBuffer, Any]:
        """One iteration's data collection: ``num_tasks_sample`` training tasks drawn with replacement,
        collected from in parallel and stored. Returns (replay, encoder_replay, trajectories [B, K, T])."""
        c = self.config
        task_key, collect_key = jax.random.split(key)
        train = self.training_set
        indices = jax.random.randint(task_key, (c.num_tasks_sample,), 0, train.size)
        tasks = jax.tree_util.tree_map(lambda x: x[indices], train.tasks)
        if self.task_sharding is not None:
            tasks = jax.lax.with_sharding_constraint(tasks, self.task_sharding)
        return self._collect(state.params, tasks, indices, state.replay, state.encoder_replay, collect_key,
                             self.episode_schedule)

    def train_steps(self, state: PEARLState, key: jax.Array, num_steps: int) -> tuple[PEARLState, Metrics]:
        """``num_steps`` SAC steps (a ``lax.scan``) on the state's buffers; metrics [num_steps] each."""
        carry = (state.params, state.target, state.opt_state, state.replay, state.encoder_replay)
        carry, metrics = jax.lax.scan(self.sac_step, carry, jax.random.split(key, num_steps))
        params, target, opt_state, replay, encoder_replay = carry
        return state.replace(params=params, target=target, opt_state=opt_state, replay=replay,
                             encoder_replay=encoder_replay), metrics

    def meta_step(self, state: PEARLState, key: jax.Array) -> tuple[PEARLState, Metrics]:
        c = self.config
        collect_key, train_key = jax.random.split(key)
        replay, encoder_replay, traj = self.collect(state, collect_key)
        state, step_metrics = self.train_steps(state.replace(replay=replay, encoder_replay=encoder_replay), train_key,
                                               c.num_train_steps_per_itr)
        returns = traj.episode_return()  # [B, K]
        posterior = np.asarray(self.episode_schedule[0])
        metrics = {name: values.mean() for name, values in step_metrics.items()}
        metrics["train/return_prior"] = returns[:, ~posterior].mean()
        if posterior.any():
            metrics["train/return_posterior"] = returns[:, posterior].mean()
        return state.replace(iteration=state.iteration + 1), metrics

    # ------------------------------------------------------------------ meta-test
    def trial(self, params: dict[str, Any], task: Any, key: jax.Array, num_episodes: int,
              record_state: bool = False) -> tuple[Any, jax.Array]:
        """One meta-test trial on ``task`` (module docstring). Returns (trajectories [K, T], z [K, L]);
        with ``record_state`` the trajectories hold the env states in extras["env_state"]."""
        c = self.config
        policy = self._policy_fn(deterministic=c.eval_deterministic)
        horizon = self.horizon
        store = replay_init(self._example_transition(), 1, num_episodes * horizon)
        zero = jnp.zeros((1,), jnp.int32)
        prior_key, trial_key = jax.random.split(key)
        first_z = self.prior().sample(prior_key)

        def episode(carry, args):
            store, z = carry
            k, index = args
            roll_key, z_key = jax.random.split(k)
            traj = rollout_episode(self.env, policy, (params["policy"], z), task, roll_key, record_info=True,
                                   record_state=record_state)
            store = replay_insert(store, zero, jax.tree_util.tree_map(lambda x: x[None], self.transitions(traj)),
                                  (traj.mask > 0)[None])
            # All the context so far: the first store.size slots (the store never wraps).
            context = jax.tree_util.tree_map(lambda x: x[0], store.data)
            mask = (jnp.arange(store.capacity) < store.size[0]).astype(jnp.float32)
            posterior_z = self.posterior(params["encoder"], context, mask).sample(z_key)
            next_z = jnp.where(index + 1 >= c.eval_exploration_episodes, posterior_z, z)
            return (store, next_z), (traj, z)

        keys = jax.random.split(trial_key, num_episodes)
        _, (traj, zs) = jax.lax.scan(episode, (store, first_z), (keys, jnp.arange(num_episodes)))
        return traj, zs

    def viewer_rollouts(self, state: PEARLState, tasks: Any, key: jax.Array) -> ViewerRollouts:
        """One meta-test trial per task (prior z for the exploration episodes, then the posterior):
        leaves [N, K, T, ...] with extras ``env_state`` and ``info``."""
        c = self.config
        num_episodes = self.num_eval_episodes
        keys = jax.random.split(key, jax.tree_util.tree_leaves(tasks)[0].shape[0])
        traj, _ = jax.vmap(lambda t, k: self.trial(state.params, t, k, num_episodes, record_state=True))(tasks, keys)
        labels = tuple(f"episode {k}, z from the {'prior' if k < max(1, c.eval_exploration_episodes) else 'posterior'}"
                       for k in range(num_episodes))
        return ViewerRollouts(traj=traj, labels=labels)

    def evaluate(self, state: PEARLState, tasks: Any, key: jax.Array) -> EvalOut:
        """Return of each episode of a trial on each task, averaged over trials: [N, K]."""
        c = self.config
        num_episodes = self.num_eval_episodes
        num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        keys = jax.random.split(key, (num_tasks, c.eval_runs_per_task))
        traj, _ = jax.vmap(jax.vmap(lambda t, k: self.trial(state.params, t, k, num_episodes), in_axes=(None, 0)))(tasks, keys)
        extras = {}
        info = traj.extras.get("info", {})
        if "success" in info:
            reached = (info["success"] * traj.mask).max(axis=-1)  # [N, R, K]
            extras["success"] = reached.mean(axis=1)
        return EvalOut(returns=traj.episode_return().mean(axis=1), axis="episode", extras=extras)
