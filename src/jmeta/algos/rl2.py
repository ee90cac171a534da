"""RL² (Duan et al. 2016; Wang et al. 2016): a recurrent policy that adapts inside its hidden state.

The agent is a GRU actor-critic (:class:`jmeta.networks.recurrent.RecurrentActorCritic`) whose
input at every step is (observation, previous action, previous reward, done flag). A *trial* is
``K`` consecutive episodes of one task; the GRU state starts at zero at the beginning of a trial
and is carried across its episodes, so what the agent learns about the task in one episode is
available in the next. The trial is one long episode of the meta-MDP: returns and GAE run across
the episode boundaries inside it (``gamma`` discounts over the whole trial).

One meta-iteration, all inside ``jax.jit``:
  1. sample ``meta_batch_size`` tasks; roll out ``trials_per_task`` trials of each
     (:func:`jmeta.rollout.rollout_trials`, leaves [N, R, K, T, ...]);
  2. replay the trials with the behaviour params for the values; GAE(gamma, lambda) over each
     flattened trial [K * T] (masked steps are transparent, :mod:`jmeta.rl.returns`);
  3. PPO: ``ppo_epochs`` passes, each over ``num_minibatches`` shuffled minibatches of whole
     trials; each minibatch replays its trials from the zero state with the current params
     (backpropagation through the whole trial, or truncated every ``bptt_truncation`` steps),
     clipped surrogate + value loss - entropy bonus, Adam with global-norm clipping.

Meta-test (:meth:`RL2.adapt_and_evaluate`): trials on the held-out tasks, the return of each
episode of the trial (``eval/return_episode{k}``, k = 0 for the first episode), averaged over
``eval_trials_per_task`` trials per task.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jmeta.config import RL2Config
from jmeta.envs.base import MetaEnv
from jmeta.networks.recurrent import RecurrentActorCritic
from jmeta.rl import returns as rl_returns
from jmeta.rl import surrogates
from jmeta.rl.surrogates import global_norm
from jmeta.rollout import rollout_trials
from jmeta.tasks import TaskDistribution, sample_tasks
from jmeta.types import Metrics, Params, Trajectory

#: Above this many episodes per trial, training logs only the first and last episode's return.
_MAX_LOGGED_EPISODES = 10


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


def flatten_trial_axis(x: jax.Array) -> jax.Array:
    """[..., K, T] -> [..., K * T] (one stream per trial)."""
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


def trial_gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma, lam) -> jax.Array:
    """GAE across the episodes of one trial. [K, T] arrays -> [K, T] advantages (0 where masked)."""
    adv = rl_returns.gae(flatten_trial_axis(rewards), flatten_trial_axis(values), flatten_trial_axis(mask), gamma, lam)
    return adv.reshape(rewards.shape)


@dataclasses.dataclass(frozen=True)
class RL2:
    """RL² meta-learner over ``env`` and ``task_dist``. See the module docstring."""

    env: MetaEnv
    task_dist: TaskDistribution
    config: RL2Config
    meta_batch_size: int
    name: str = "rl2"

    def __post_init__(self):
        self.config.validate("rl2", self.meta_batch_size)  # also when built from Python, not the CLI

    # ------------------------------------------------------------------ setup
    @property
    def network(self) -> RecurrentActorCritic:
        c = self.config
        return RecurrentActorCritic(
            self.env.spec.action_space, c.hidden_size, tuple(c.embed_sizes), tuple(c.head_sizes),
            c.activation, c.shared_core, c.init_std,
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
        return RL2State(params=params, opt_state=self.optimizer.init(params), iteration=jnp.zeros((), jnp.int32))

    def env_steps_per_iteration(self) -> int:
        return self.num_trials * self.episodes_per_trial * self.env.spec.horizon

    # ------------------------------------------------------------------ data
    def collect(self, params: Params, tasks: Any, key: jax.Array, trials_per_task: int, num_episodes: int,
                deterministic: bool = False) -> Trajectory:
        """Trials of each task under ``params``. Leaves [N, R, K, T, ...]."""
        net = self.network
        policy = net.deterministic if deterministic else net.sample
        return rollout_trials(self.env, policy, params, tasks, key, net.initial_carry(), trials_per_task, num_episodes)

    def trial_batch(self, params: Params, trials: Trajectory) -> TrialBatch:
        """Values of the behaviour params and GAE targets for trials with leaves [B, K, T, ...].

        Values and targets are in units of ``reward_scale * reward``."""
        c = self.config
        _, values, _ = jax.vmap(lambda t: self.network.unroll(params, t))(trials)
        rewards = trials.reward * c.reward_scale
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
        policy_objective = surrogates.ppo_clip_objective(log_prob, t.log_prob, adv, t.mask, c.clip_eps)
        value_error = (value - batch.targets) ** 2
        if c.value_clip_eps > 0:
            clipped = batch.old_values + jnp.clip(value - batch.old_values, -c.value_clip_eps, c.value_clip_eps)
            value_error = jnp.maximum(value_error, (clipped - batch.targets) ** 2)
        value_loss = 0.5 * surrogates.masked_mean(value_error, t.mask)
        mean_entropy = surrogates.masked_mean(entropy, t.mask)
        total = -policy_objective + c.value_coef * value_loss - c.entropy_coef * mean_entropy
        log_ratio = log_prob - t.log_prob
        info = {
            "train/policy_loss": -policy_objective,
            "train/value_loss": value_loss,
            "train/entropy": mean_entropy,
            "train/approx_kl": surrogates.masked_mean(jnp.exp(log_ratio) - 1.0 - log_ratio, t.mask),
            "train/clip_fraction": surrogates.masked_mean((jnp.abs(jnp.exp(log_ratio) - 1.0) > c.clip_eps).astype(jnp.float32), t.mask),
        }
        return total, info

    def _ppo_update(self, params: Params, opt_state: Any, batch: TrialBatch, key: jax.Array):
        c = self.config
        size = self.num_trials // c.num_minibatches

        def minibatch_step(carry, indices):
            params, opt_state = carry
            mb = jax.tree_util.tree_map(lambda x: x[indices], batch)
            (_, info), grads = jax.value_and_grad(self.loss, has_aux=True)(params, mb)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            info = {**info, "train/grad_norm": global_norm(grads)}
            return (optax.apply_updates(params, updates), opt_state), info

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, self.num_trials).reshape(c.num_minibatches, size)
            return jax.lax.scan(minibatch_step, carry, order)

        (params, opt_state), infos = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, c.ppo_epochs))
        first = jax.tree_util.tree_map(lambda x: x[0, 0], infos)  # first minibatch, before any update
        last = jax.tree_util.tree_map(lambda x: x[-1].mean(), infos)
        return params, opt_state, first, last

    # ------------------------------------------------------------------ meta-iteration
    def meta_step(self, state: RL2State, key: jax.Array) -> tuple[RL2State, Metrics]:
        c = self.config
        task_key, rollout_key, update_key = jax.random.split(key, 3)
        tasks = sample_tasks(self.task_dist, task_key, self.meta_batch_size)
        traj = self.collect(state.params, tasks, rollout_key, c.trials_per_task, self.episodes_per_trial)
        trials = jax.tree_util.tree_map(lambda x: x.reshape(self.num_trials, *x.shape[2:]), traj)  # [B, K, T]
        batch = self.trial_batch(state.params, trials)
        params, opt_state, first, last = self._ppo_update(state.params, state.opt_state, batch, update_key)

        episode_returns = trials.episode_return().mean(axis=0)  # [K]
        metrics = {
            "train/return_trial": episode_returns.sum(),
            "train/entropy": first["train/entropy"],
            "train/value_loss": first["train/value_loss"],
            "train/policy_loss": last["train/policy_loss"],
            "train/approx_kl": last["train/approx_kl"],
            "train/clip_fraction": last["train/clip_fraction"],
            "train/grad_norm": first["train/grad_norm"],
        }
        num_episodes = self.episodes_per_trial
        logged = range(num_episodes) if num_episodes <= _MAX_LOGGED_EPISODES else (0, num_episodes - 1)
        for k in logged:
            metrics[f"train/return_episode{k}"] = episode_returns[k]
        return RL2State(params=params, opt_state=opt_state, iteration=state.iteration + 1), metrics

    # ------------------------------------------------------------------ meta-test
    def adapt_and_evaluate(self, state: RL2State, tasks: Any, key: jax.Array) -> Metrics:
        """Return of each episode of a trial on each task, averaged over trials: [N] arrays."""
        c = self.config
        num_episodes = c.eval_episodes or self.episodes_per_trial
        traj = self.collect(state.params, tasks, key, c.eval_trials_per_task, num_episodes, c.eval_deterministic)
        per_episode = traj.episode_return().mean(axis=1)  # [N, K]
        return {f"eval/return_episode{k}": per_episode[:, k] for k in range(num_episodes)}
