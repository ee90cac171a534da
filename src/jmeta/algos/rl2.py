"""RL² (Duan et al. 2016; Wang et al. 2016): a recurrent policy that adapts inside its hidden state.

The agent is a GRU actor-critic (:class:`jmeta.networks.recurrent.RecurrentActorCritic`) whose
input at every step is (observation, previous action, previous reward, done flag). A *trial* is
``K`` consecutive episodes of one task; the GRU state starts at zero at the beginning of a trial
and is carried across its episodes, so what the agent learns about the task in one episode is
available in the next. The trial is one long episode of the meta-MDP: returns and GAE run across
the episode boundaries inside it (``gamma`` discounts over the whole trial).

One meta-iteration, all inside ``jax.jit``:
  1. sample ``meta_batch_size`` tasks; roll out ``trials_per_task`` trials of each
     (:func:`jmeta.rollout.rollout_trials` with the network as the actor, leaves [N, R, K, T, ...]);
  2. replay the trials with the behaviour params for the values; GAE(gamma, lambda) over each
     flattened trial [K * T] (masked steps are transparent, :mod:`jmeta.rl.returns`);
  3. PPO: ``ppo_epochs`` passes, each over ``num_minibatches`` shuffled minibatches of whole
     trials; each minibatch replays its trials from the zero state with the current params
     (backpropagation through the whole trial, or truncated every ``bptt_truncation`` steps),
     PPO's loss (:func:`jmeta.rl.ppo.ppo_loss`), Adam with global-norm clipping, through the shared
     epoch/minibatch loop (:func:`jmeta.rl.ppo.update_minibatches`).

Meta-test (:meth:`RL2.evaluate`): trials on the held-out tasks, the return of each episode of the
trial (axis "episode", k = 0 for the first episode), averaged over ``eval_trials_per_task`` trials
per task (and the success rate per episode where the env reports ``info["success"]``).

E-RL² (:class:`ERL2`, ``--algo erl2``; Stadie et al. 2018, as DREAM's baseline): the same agent
with ``first_optimized_episode = 1``: the first episode's rewards are observed but not optimised,
so the first episode is free to explore. On pixel envs (``env.image_shape``) the GRU's input goes
through :class:`jmeta.networks.cnn.PixelEncoder` first.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jmeta.algos.base import EvalOut, MetaLearner, Preset, ViewerRollouts
from jmeta.networks.cnn import image_shape
from jmeta.networks.mlp import ACTIVATIONS
from jmeta.networks.recurrent import RecurrentActorCritic
from jmeta.rl import ppo
from jmeta.rl import returns as rl_returns
from jmeta.rollout import rollout_trials
from jmeta.types import Metrics, Params, Trajectory
from jmeta.validation import check

#: Above this many episodes per trial, training logs only the first and last episode's return.
_MAX_LOGGED_EPISODES = 10


@dataclasses.dataclass(frozen=True)
class RL2Config:
    """RL² (Duan et al. 2016): a GRU policy over whole trials, trained with PPO."""

    trials_per_task: int = 1
    """Trials sampled per task per meta-iteration (each starts from a zero recurrent state)."""
    episodes_per_trial: int | None = None
    """Episodes per trial during meta-training (None: the environment's)."""
    hidden_size: int = 128
    """GRU width."""
    embed_sizes: tuple[int, ...] = (64,)
    """MLP layers applied to (obs, previous action, previous reward, done) before the GRU (may be empty: --rl2.embed-sizes)."""
    head_sizes: tuple[int, ...] = (64,)
    """Hidden layers of the policy and value heads on the GRU output (may be empty)."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "tanh"
    """Activation of the embedding and head MLPs."""
    shared_core: bool = True
    """One GRU for policy and value; --rl2.no-shared-core gives the value its own GRU."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy (continuous actions)."""
    lr: float = 3e-4
    """Adam learning rate."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clipping (0: off)."""
    ppo_epochs: int = 4
    """PPO passes over the meta-batch per meta-iteration."""
    num_minibatches: int = 4
    """Minibatches per epoch; whole trials are split, so it must divide meta_batch_size * trials_per_task."""
    clip_eps: float = 0.2
    """PPO ratio clipping epsilon."""
    value_clip_eps: float = 0.0
    """Clip the value update around the old values (0: no value clipping)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    gamma: float = 0.99
    """Discount, applied across the episodes of a trial (the trial is one RL² episode)."""
    gae_lambda: float = 0.95
    """GAE lambda, across episode boundaries within the trial."""
    normalize_advantages: bool = True
    """Standardise advantages per minibatch."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this for the value targets and advantages (logged returns are unscaled);
    keeps value losses O(1) when trial returns are large (e.g. tabular_mdp: 0.1)."""
    bptt_truncation: int = 0
    """Truncated BPTT: cut the gradient through the GRU state every this many steps of the trial (0: full trial)."""
    first_optimized_episode: int = 0
    """Rewards of the trial's episodes before this one are seen by the policy (as its previous-reward input) but
    not optimised (0: every episode counts). 1 gives E-RL² (Stadie et al. 2018; DREAM's baseline): the first
    episode is for exploration only."""
    pixel_embed_size: int = 128
    """Features of the convolutional image encoder (pixel envs only: jmeta.networks.cnn)."""
    eval_trials_per_task: int = 4
    """Meta-test: trials per held-out task (the per-episode return is averaged over them)."""
    eval_episodes: int | None = None
    """Meta-test: episodes per trial (None: as in training), e.g. longer to test generalisation."""
    eval_deterministic: bool = False
    """Meta-test with the mode of the action distribution instead of sampling."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        check(self.trials_per_task >= 1, p + "trials_per_task", "must be >= 1", self.trials_per_task)
        check(self.episodes_per_trial is None or self.episodes_per_trial >= 1, p + "episodes_per_trial", "must be >= 1", self.episodes_per_trial)
        check(self.hidden_size >= 1, p + "hidden_size", "must be >= 1", self.hidden_size)
        check(all(h >= 1 for h in self.embed_sizes), p + "embed_sizes", "must be positive layer widths", self.embed_sizes)
        check(all(h >= 1 for h in self.head_sizes), p + "head_sizes", "must be positive layer widths", self.head_sizes)
        check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        check(self.init_std > 0, p + "init_std", "must be > 0", self.init_std)
        check(self.lr > 0, p + "lr", "must be > 0", self.lr)
        check(self.max_grad_norm >= 0, p + "max_grad_norm", "must be >= 0", self.max_grad_norm)
        check(self.ppo_epochs >= 1, p + "ppo_epochs", "must be >= 1", self.ppo_epochs)
        check(self.num_minibatches >= 1, p + "num_minibatches", "must be >= 1", self.num_minibatches)
        if meta_batch_size is not None:
            trials = meta_batch_size * self.trials_per_task
            check(trials % self.num_minibatches == 0, p + "num_minibatches",
                   f"must divide meta_batch_size * trials_per_task = {trials}", self.num_minibatches)
        check(0 < self.clip_eps < 1, p + "clip_eps", "must be in (0, 1)", self.clip_eps)
        check(self.value_clip_eps >= 0, p + "value_clip_eps", "must be >= 0", self.value_clip_eps)
        check(self.value_coef >= 0, p + "value_coef", "must be >= 0", self.value_coef)
        check(self.entropy_coef >= 0, p + "entropy_coef", "must be >= 0", self.entropy_coef)
        check(0 <= self.gamma <= 1, p + "gamma", "must be in [0, 1]", self.gamma)
        check(0 <= self.gae_lambda <= 1, p + "gae_lambda", "must be in [0, 1]", self.gae_lambda)
        check(self.reward_scale > 0, p + "reward_scale", "must be > 0", self.reward_scale)
        check(self.bptt_truncation >= 0, p + "bptt_truncation", "must be >= 0", self.bptt_truncation)
        check(self.first_optimized_episode >= 0, p + "first_optimized_episode", "must be >= 0",
              self.first_optimized_episode)
        check(self.episodes_per_trial is None or self.first_optimized_episode < self.episodes_per_trial,
              p + "first_optimized_episode", f"must be < episodes_per_trial = {self.episodes_per_trial}",
              self.first_optimized_episode)
        check(self.pixel_embed_size >= 1, p + "pixel_embed_size", "must be >= 1", self.pixel_embed_size)
        check(self.eval_trials_per_task >= 1, p + "eval_trials_per_task", "must be >= 1", self.eval_trials_per_task)
        check(self.eval_episodes is None or self.eval_episodes >= 1, p + "eval_episodes", "must be >= 1", self.eval_episodes)


#: Run settings of the maze side-by-side (DREAM, E-RL², RL², VariBAD at one budget; docs/algorithms/dream.md).
MAZE_SMALL_RUN = {"env_variant": "small", "meta_iters": 400, "meta_batch_size": 32, "chunk_size": 25, "eval_every": 50,
                  "checkpoint_every": 100, "eval_tasks": 40}
MAZE_RUN = {"meta_iters": 600, "meta_batch_size": 32, "chunk_size": 25, "eval_every": 100, "checkpoint_every": 100,
            "eval_tasks": 40}
#: RL²'s settings in that side-by-side (also E-RL²'s): a GRU of 64 and DREAM's maze entropy bonus.
_MAZE_RL2 = {"hidden_size": 64, "lr": 1e-3, "num_minibatches": 4, "ppo_epochs": 4, "entropy_coef": 0.03,
             "episodes_per_trial": 2}

#: Tiny settings for tests.
TINY = RL2Config(hidden_size=16, embed_sizes=(8,), head_sizes=(8,), num_minibatches=2, ppo_epochs=2,
                 eval_trials_per_task=2)

PRESETS: dict[str, Preset] = {
    "grid_nav": Preset(
        run={"meta_iters": 500, "meta_batch_size": 64, "chunk_size": 25, "eval_every": 50, "checkpoint_every": 50},
        algo={"hidden_size": 128, "lr": 1e-3, "num_minibatches": 4, "ppo_epochs": 4, "entropy_coef": 0.01},
        source="VariBAD's GridNavi (4 episodes x 15 steps per trial). lmzintgraf/varibad "
               "config/gridworld/args_grid_rl2.py trains A2C with 16 processes for 1e8 frames (GRU 64, gamma "
               "0.95); here PPO over whole trials, 64 tasks per iteration, 500 iterations (1.9M steps)",
    ),
    "bandit": Preset(
        run={"meta_iters": 1000, "meta_batch_size": 128, "chunk_size": 50, "eval_every": 100,
             "checkpoint_every": 100, "eval_tasks": 200},
        algo={"hidden_size": 64, "embed_sizes": (32,), "head_sizes": (32,), "lr": 1e-3},
        source="RL² bandits (default variant: 5 arms, 10 pulls per trial); the learning test's setting run longer",
    ),
    "point_nav:pearl": Preset(
        run={"env_variant": "pearl", "meta_iters": 500, "meta_batch_size": 64, "chunk_size": 50, "eval_every": 100,
             "checkpoint_every": 100, "eval_tasks": 20},
        algo={"hidden_size": 128, "lr": 1e-3, "num_minibatches": 4, "ppo_epochs": 4},
        source="PEARL's point robot (oyster rlkit/envs/point_robot.py: 3 episodes of 20 steps per trial, the 20 "
               "held-out goals), for the side-by-side with PEARL; the grid_nav preset's PPO settings, 500 "
               "iterations x 64 trials (1.9M env steps)",
    ),
    "point_nav:sparse": Preset(
        run={"env_variant": "sparse", "meta_iters": 1000, "meta_batch_size": 16, "chunk_size": 50,
             "eval_every": 250, "checkpoint_every": 250},
        algo={"hidden_size": 128, "head_sizes": (128,), "lr": 7e-4, "ppo_epochs": 2, "num_minibatches": 8,
              "clip_eps": 0.1, "entropy_coef": 1e-3, "gamma": 0.99, "gae_lambda": 0.9},
        source="lmzintgraf/varibad config/pointrobot/args_pointrobot_rl2.py (GRU 128, one 128 layer, PPO 2 x 8, "
               "clip 0.1, 5e7 frames) for the side-by-side with VariBAD and task inference: 16 trials of 3 x 100 "
               "steps per iteration, 1,000 iterations (4.8M env steps)",
    ),
    "maze2d:small": Preset(
        run=MAZE_SMALL_RUN,
        algo=_MAZE_RL2,
        source="RL² over 2-episode trials (both optimised) at DREAM's maze2d:small budget and entropy bonus (0.03), "
               "for the side-by-side",
    ),
    "maze2d": Preset(
        run=MAZE_RUN,
        algo=_MAZE_RL2,
        source="RL² over 2-episode trials (both optimised) at DREAM's maze2d budget and entropy bonus, for the "
               "side-by-side",
    ),
    "tabular_mdp": Preset(
        run={"meta_iters": 500, "meta_batch_size": 64, "chunk_size": 25, "eval_every": 50, "checkpoint_every": 50},
        algo={"hidden_size": 128, "lr": 1e-3, "reward_scale": 0.1},
        source="RL² random tabular MDPs (10 states, 5 actions, 10 episodes of 10 steps per trial). Trial returns "
               "are about 100: rewards scaled by 0.1 for the value targets (unscaled, the value loss swamped the "
               "policy gradient under global-norm clipping and nothing was learned in 500 iterations)",
    ),
}


@struct.dataclass
class RL2State:
    """params: actor-critic params pytree; opt_state: optax state; iteration: int32 scalar."""

    params: Params
    opt_state: Any
    iteration: jax.Array


@struct.dataclass
class TrialBatch:
    """Whole trials with their PPO targets. Leaves [B, K, T, ...] (B trials, K episodes, T steps).

    advantages: GAE over the flattened trial; targets: value targets (advantages + old values);
    old_values: the behaviour params' values.
    """

    traj: Trajectory
    advantages: jax.Array
    targets: jax.Array
    old_values: jax.Array


def episode_success(traj: Trajectory) -> dict[str, jax.Array]:
    """``{"success": [N, K]}``, the fraction of each task's episodes (over the R trials of leaves
    [N, R, K, T]) in which the env's step info reported ``success``; ``{}`` when it reports none."""
    info = traj.extras.get("info", {})
    if "success" not in info:
        return {}
    reached = ((info["success"] * traj.mask).max(axis=-1) > 0).astype(jnp.float32)
    return {"success": reached.mean(axis=1)}


def flatten_trial_axis(x: jax.Array) -> jax.Array:
    """[..., K, T] -> [..., K * T] (one stream per trial)."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def trial_gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma, lam) -> jax.Array:
    """GAE across the episodes of one trial. [K, T] arrays -> [K, T] advantages (0 where masked)."""
    adv = rl_returns.gae(flatten_trial_axis(rewards), flatten_trial_axis(values), flatten_trial_axis(mask), gamma, lam)
    return adv.reshape(rewards.shape)


@dataclasses.dataclass(frozen=True)
class RL2(MetaLearner[RL2Config, RL2State]):
    """RL² meta-learner over ``env`` and ``task_dist``. See the module docstring."""

    name: ClassVar[str] = "rl2"
    Config: ClassVar[type] = RL2Config
    TINY: ClassVar[RL2Config] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS
    EVAL_AXIS: ClassVar[str] = "episode"

    def __post_init__(self):
        super().__post_init__()
        check(self.config.first_optimized_episode < self.episodes_per_trial, f"{self.name}.first_optimized_episode",
              f"must be < the episodes per trial ({self.episodes_per_trial}; set --{self.name}.episodes-per-trial)",
              self.config.first_optimized_episode)

    # ------------------------------------------------------------------ setup
    @property
    def network(self) -> RecurrentActorCritic:
        c = self.config
        return RecurrentActorCritic(
            self.env.spec.action_space, c.hidden_size, tuple(c.embed_sizes), tuple(c.head_sizes),
            c.activation, c.shared_core, c.init_std, image_shape=image_shape(self.env),
            pixel_embed_size=c.pixel_embed_size,
        )

    @property
    def optimizer(self) -> optax.GradientTransformation:
        adam = optax.adam(self.config.lr)
        if self.config.max_grad_norm > 0:
            return optax.chain(optax.clip_by_global_norm(self.config.max_grad_norm), adam)
        return adam

    @property
    def episodes_per_trial(self) -> int:
        return self.config.episodes_per_trial or self.env.spec.episodes_per_trial

    @property
    def num_trials(self) -> int:
        return self.meta_batch_size * self.config.trials_per_task

    def init(self, key: jax.Array) -> RL2State:
        net = self.network
        params = net.init(key, net.input_size(self.env.spec.observation_space))
        return RL2State(params=params, opt_state=self.optimizer.init(params), iteration=jax.numpy.zeros((), jax.numpy.int32))

    def env_steps_per_iteration(self) -> int:
        return self.num_trials * self.episodes_per_trial * self.env.spec.horizon

    def headline(self) -> dict[str, str]:
        last = self.episodes_per_trial - 1
        return {"train/return_episode0": "ep0", f"train/return_episode{last}": f"ep{last}"}

    # ------------------------------------------------------------------ data
    def collect(self, params: Params, tasks: Any, key: jax.Array, trials_per_task: int, num_episodes: int,
                deterministic: bool = False, record_info: bool = False, record_state: bool = False) -> Trajectory:
        """Trials of each task under ``params``. Leaves [N, R, K, T, ...]."""
        net = self.network
        actor = net.deterministic_actor() if deterministic else net
        return rollout_trials(self.env, actor, params, tasks, key, trials_per_task, num_episodes, next_obs=False,
                              record_info=record_info, record_state=record_state)

    def trial_batch(self, params: Params, trials: Trajectory) -> TrialBatch:
        """Values of the behaviour params and GAE targets for trials with leaves [B, K, T, ...].

        Values and targets are in units of ``reward_scale * reward``."""
        c = self.config
        _, values, _ = jax.vmap(lambda t: self.network.unroll(params, t))(trials)
        optimized = jnp.arange(trials.reward.shape[-2]) >= c.first_optimized_episode  # [K]
        rewards = trials.reward * c.reward_scale * optimized[:, None]
        adv = jax.vmap(trial_gae, in_axes=(0, 0, 0, None, None))(rewards, values, trials.mask, c.gamma, c.gae_lambda)
        batch = TrialBatch(traj=trials, advantages=adv, targets=(adv + values) * trials.mask, old_values=values)
        return jax.lax.stop_gradient(batch)

    # ------------------------------------------------------------------ loss
    def loss(self, params: Params, batch: TrialBatch) -> tuple[jax.Array, Metrics]:
        """PPO loss of a minibatch of whole trials (leaves [B, K, T, ...]) and its diagnostics."""
        c = self.config
        t = batch.traj
        log_prob, value, entropy = jax.vmap(lambda tr: self.network.unroll(params, tr, c.bptt_truncation))(t)
        adv = rl_returns.normalize(batch.advantages, t.mask) if c.normalize_advantages else batch.advantages
        return ppo.ppo_loss(log_prob, t.log_prob, adv, value, batch.old_values, batch.targets, entropy, t.mask,
                            clip_eps=c.clip_eps, value_clip_eps=c.value_clip_eps, value_coef=c.value_coef,
                            entropy_coef=c.entropy_coef)

    # ------------------------------------------------------------------ meta-iteration
    def meta_step(self, state: RL2State, key: jax.Array) -> tuple[RL2State, Metrics]:
        c = self.config
        task_key, rollout_key, update_key = jax.random.split(key, 3)
        tasks = self.sample_tasks(task_key)
        traj = self.collect(state.params, tasks, rollout_key, c.trials_per_task, self.episodes_per_trial)
        trials = jax.tree_util.tree_map(lambda x: x.reshape(self.num_trials, *x.shape[2:]), traj)  # [B, K, T]
        batch = self.trial_batch(state.params, trials)
        params, opt_state, infos = ppo.update_minibatches(self.loss, self.optimizer, state.params, state.opt_state,
                                                          batch, update_key, c.ppo_epochs, c.num_minibatches)
        first = jax.tree_util.tree_map(lambda x: x[0, 0], infos)  # first minibatch, before any update
        last = jax.tree_util.tree_map(lambda x: x[-1].mean(), infos)

        episode_returns = trials.episode_return().mean(axis=0)  # [K]
        metrics = {
            "train/return_trial": episode_returns.sum(),
            "train/entropy": first["entropy"],
            "train/value_loss": first["value_loss"],
            "train/policy_loss": last["policy_loss"],
            "train/approx_kl": last["approx_kl"],
            "train/clip_fraction": last["clip_fraction"],
            "train/grad_norm": first["grad_norm"],
        }
        num_episodes = self.episodes_per_trial
        logged = range(num_episodes) if num_episodes <= _MAX_LOGGED_EPISODES else (0, num_episodes - 1)
        for k in logged:
            metrics[f"train/return_episode{k}"] = episode_returns[k]
        return RL2State(params=params, opt_state=opt_state, iteration=state.iteration + 1), metrics

    # ------------------------------------------------------------------ meta-test
    def evaluate(self, state: RL2State, tasks: Any, key: jax.Array) -> EvalOut:
        """Return of each episode of a trial on each task, averaged over trials: [N, K]."""
        c = self.config
        num_episodes = c.eval_episodes or self.episodes_per_trial
        traj = self.collect(state.params, tasks, key, c.eval_trials_per_task, num_episodes, c.eval_deterministic,
                            record_info=True)
        return EvalOut(returns=traj.episode_return().mean(axis=1), axis="episode", extras=episode_success(traj))

    def viewer_rollouts(self, state: RL2State, tasks: Any, key: jax.Array) -> ViewerRollouts:
        """One meta-test trial per task with its env states: leaves [N, K, T, ...] (K episodes)."""
        c = self.config
        num_episodes = c.eval_episodes or self.episodes_per_trial
        traj = self.collect(state.params, tasks, key, 1, num_episodes, c.eval_deterministic, record_info=True,
                            record_state=True)
        labels = tuple(f"episode {k} of the trial" for k in range(num_episodes))
        return ViewerRollouts(traj=jax.tree_util.tree_map(lambda x: x[:, 0], traj), labels=labels)


@dataclasses.dataclass(frozen=True)
class ERL2Config(RL2Config):
    """E-RL² (Stadie et al. 2018; DREAM's baseline): RL² that optimises only the episodes after the first."""

    first_optimized_episode: int = 1
    """Rewards of the trial's episodes before this one are observed but not optimised (1: the first episode
    explores for free)."""
    episodes_per_trial: int | None = 2
    """Episodes per trial during meta-training (None: the environment's); 2 = exploration + execution."""


#: Tiny settings for tests.
ERL2_TINY = ERL2Config(**{**dataclasses.asdict(TINY), "first_optimized_episode": 1, "episodes_per_trial": 2})

ERL2_PRESETS: dict[str, Preset] = {
    "maze2d:small": Preset(
        run=MAZE_SMALL_RUN,
        algo=_MAZE_RL2,
        source="DREAM's E-RL² baseline (ezliu/dream configs/rl2.json: a recurrent DQN there) as PPO with RL²'s grid_nav "
               "settings, a GRU of 64 and DREAM's maze entropy bonus (0.03), for the side-by-side with DREAM at its maze2d:small budget (2 episodes x 50 "
               "steps x 32 tasks x 400 iterations)",
    ),
    "maze2d": Preset(
        run=MAZE_RUN,
        algo=_MAZE_RL2,
        source="the maze2d:small preset on the default layout (DREAM's budget there)",
    ),
}


@dataclasses.dataclass(frozen=True)
class ERL2(RL2):
    """E-RL² over ``env`` and ``task_dist`` (module docstring)."""

    name: ClassVar[str] = "erl2"
    Config: ClassVar[type] = ERL2Config
    TINY: ClassVar[ERL2Config] = ERL2_TINY
    PRESETS: ClassVar[dict[str, Preset]] = ERL2_PRESETS
    #: Discrete actions, as DREAM's E-RL² baseline (a recurrent DQN); RL² with
    #: ``--rl2.first-optimized-episode 1`` is the same agent for continuous actions.
    ACTION_SPACES: ClassVar[tuple[str, ...]] = ("discrete",)
