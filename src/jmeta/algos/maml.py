"""MAML (Finn et al. 2017) with a correct second-order meta-gradient.

One meta-iteration, all inside ``jax.jit``:
  1. sample ``meta_batch_size`` tasks;
  2. per task (vmapped): for each of K inner steps, roll out ``episodes_per_task`` episodes
     with the current adapted params, fit the linear feature baseline, compute GAE advantages,
     take a VPG step (the inner surrogate is LVC by default, see :mod:`jmeta.rl.surrogates`);
     then roll out the post-adaptation batch;
  3. outer update on ``L(theta) = -mean_tasks E_post[pi_{theta'(theta)} / pi_old * A]`` where
     ``theta'(theta)`` re-applies the K inner steps to the stored (stop-gradient) batches, so the
     meta-gradient differentiates through the adaptation: TRPO (CG on Fisher-vector products of
     the post-adaptation KL, line search) or PPO-clip with Adam.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jmeta import adaptation
from jmeta.config import MAMLConfig
from jmeta.envs.base import MetaEnv
from jmeta.networks import baseline as linear_baseline
from jmeta.networks.policies import CategoricalMLPPolicy, GaussianMLPPolicy, Policy
from jmeta.rl import returns as rl_returns
from jmeta.rl import surrogates
from jmeta.rl.surrogates import global_norm
from jmeta.rl.trpo import gauss_newton_fvp, trpo_step
from jmeta.rollout import rollout_episodes
from jmeta.spaces import Box, Discrete
from jmeta.tasks import TaskDistribution, sample_tasks
from jmeta.types import Metrics, Params, Trajectory


@struct.dataclass
class MAMLState:
    """params: policy params pytree; opt_state: optax state (PPO outer; empty for TRPO);
    inner_lr: float32 scalar (an array, so changing it does not recompile);
    iteration: int32 scalar, completed meta-iterations."""

    params: Params
    opt_state: Any
    inner_lr: jax.Array
    iteration: jax.Array


@struct.dataclass
class PGBatch:
    """A task's batch of episodes with what the policy-gradient losses need. Leaves [E, T, ...]."""

    traj: Trajectory
    advantages: jax.Array  # GAE over the linear baseline (normalised if configured)
    baseline: jax.Array  # baseline values (for DiCE's variance-reduction term)


def make_policy(env: MetaEnv, cfg: MAMLConfig) -> Policy:
    space = env.spec.action_space
    if isinstance(space, Discrete):
        return CategoricalMLPPolicy(space.n, tuple(cfg.hidden_sizes), cfg.activation)
    if isinstance(space, Box):
        return GaussianMLPPolicy(
            space.flat_dim, tuple(cfg.hidden_sizes), cfg.activation, cfg.state_dependent_std, cfg.init_std
        )
    raise TypeError(f"unsupported action space {space!r}")


@dataclasses.dataclass(frozen=True)
class MAML:
    """MAML meta-learner over ``env`` and ``task_dist``. See the module docstring."""

    env: MetaEnv
    task_dist: TaskDistribution
    config: MAMLConfig
    meta_batch_size: int
    name: str = "maml"

    # ------------------------------------------------------------------ setup
    @property
    def policy(self) -> Policy:
        return make_policy(self.env, self.config)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.config.ppo_lr)

    def init(self, key: jax.Array) -> MAMLState:
        params = self.policy.init(key, self.env.spec.observation_space.shape)
        opt_state = self.optimizer.init(params) if self.config.outer == "ppo" else ()
        return MAMLState(
            params=params,
            opt_state=opt_state,
            inner_lr=jnp.asarray(self.config.inner_lr, jnp.float32),
            iteration=jnp.zeros((), jnp.int32),
        )

    def env_steps_per_iteration(self) -> int:
        c = self.config
        return self.meta_batch_size * c.episodes_per_task * self.env.spec.horizon * (c.num_inner_steps + 1)

    # ------------------------------------------------------------------ data
    def _pg_batch(self, traj: Trajectory) -> PGBatch:
        """Baseline fit and advantages for one task's episodes (leaves [E, T, ...])."""
        c = self.config
        rets = jax.vmap(rl_returns.discounted_returns, in_axes=(0, 0, None))(traj.reward, traj.mask, c.gamma)
        values = linear_baseline.fit_predict(traj.obs, traj.time, traj.mask, rets)
        adv = jax.vmap(rl_returns.gae, in_axes=(0, 0, 0, None, None))(
            traj.reward, values, traj.mask, c.gamma, c.gae_lambda
        )
        if c.normalize_advantages:
            adv = rl_returns.normalize(adv, traj.mask)
        return jax.lax.stop_gradient(PGBatch(traj=traj, advantages=adv, baseline=values))

    def inner_loss(self, params: Params, batch: PGBatch) -> jax.Array:
        """Negative inner surrogate of one task's batch (minimised by the inner step)."""
        t = batch.traj
        log_prob = self.policy.log_prob(params, t.obs, t.action)
        estimator = self.config.inner_estimator
        if estimator == "lvc":
            return -surrogates.lvc_objective(log_prob, batch.advantages, t.mask)
        if estimator == "vpg":
            return -surrogates.vpg_objective(log_prob, batch.advantages, t.mask)
        return -surrogates.dice_objective(log_prob, t.reward, batch.baseline, t.mask, self.config.gamma)

    def _collect_task(self, params: Params, inner_lr: jax.Array, task: Any, key: jax.Array, num_steps: int, num_episodes: int):
        """Inner-loop data for one task: K adaptation batches and the post-adaptation batch.

        Returns ``(inner_batches [K, E, T, ...], post_batch [E, T, ...], returns [K + 1])``.
        """
        keys = jax.random.split(key, num_steps + 1)

        def step(p, k):
            traj = rollout_episodes(self.env, self.policy.sample, p, task, k, num_episodes)
            batch = self._pg_batch(traj)
            p_next = adaptation.inner_step(self.inner_loss, p, batch, inner_lr, first_order=True)
            return jax.lax.stop_gradient(p_next), (batch, traj.episode_return().mean())

        adapted, (batches, step_returns) = jax.lax.scan(step, jax.lax.stop_gradient(params), keys[:-1])
        post_traj = rollout_episodes(self.env, self.policy.sample, adapted, task, keys[-1], num_episodes)
        post = self._pg_batch(post_traj)
        all_returns = jnp.concatenate([step_returns, post_traj.episode_return().mean()[None]])
        return batches, post, all_returns

    def adapt(self, params: Params, inner_lr: jax.Array, batches: PGBatch) -> Params:
        """Re-applies the inner steps on stored batches (differentiable w.r.t. ``params``)."""
        return adaptation.adapt(self.inner_loss, params, batches, inner_lr, self.config.first_order)

    # ------------------------------------------------------------------ outer objective
    def _post_log_probs(self, params: Params, inner_lr: jax.Array, batches: PGBatch, post: PGBatch) -> jax.Array:
        """Log-probs of the post-adaptation actions under each task's adapted policy. [N, E, T]."""

        def per_task(b, pb):
            adapted = self.adapt(params, inner_lr, b)
            return self.policy.log_prob(adapted, pb.traj.obs, pb.traj.action)

        return jax.vmap(per_task)(batches, post)

    def outer_loss(self, params: Params, inner_lr: jax.Array, batches: PGBatch, post: PGBatch) -> jax.Array:
        """TRPO surrogate loss (to minimise), averaged over tasks."""
        log_prob = self._post_log_probs(params, inner_lr, batches, post)
        t = post.traj
        per_task = jax.vmap(surrogates.importance_objective)(log_prob, t.log_prob, post.advantages, t.mask)
        return -per_task.mean()

    def ppo_loss(self, params: Params, inner_lr: jax.Array, batches: PGBatch, post: PGBatch) -> jax.Array:
        log_prob = self._post_log_probs(params, inner_lr, batches, post)
        t = post.traj
        per_task = jax.vmap(surrogates.ppo_clip_objective, in_axes=(0, 0, 0, 0, None))(
            log_prob, t.log_prob, post.advantages, t.mask, self.config.ppo_clip
        )
        return -per_task.mean()

    def post_dists(self, params: Params, inner_lr: jax.Array, batches: PGBatch, post: PGBatch) -> Any:
        """Action distributions of the adapted policies on the post-adaptation observations."""
        adapted = jax.vmap(self.adapt, in_axes=(None, None, 0))(params, inner_lr, batches)
        return jax.vmap(self.policy.dist)(adapted, post.traj.obs)

    def post_kl(self, params: Params, old_dist: Any, inner_lr: jax.Array, batches: PGBatch, post: PGBatch) -> jax.Array:
        """Mean KL(pi_old || pi_{theta'(params)}) over valid post-adaptation steps."""
        kl = old_dist.kl(self.post_dists(params, inner_lr, batches, post))
        return surrogates.masked_mean(kl, post.traj.mask)

    # ------------------------------------------------------------------ meta-iteration
    def meta_step(self, state: MAMLState, key: jax.Array) -> tuple[MAMLState, Metrics]:
        c = self.config
        task_key, rollout_key = jax.random.split(key)
        tasks = sample_tasks(self.task_dist, task_key, self.meta_batch_size)
        task_keys = jax.random.split(rollout_key, self.meta_batch_size)
        batches, post, step_returns = jax.vmap(
            lambda t, k: self._collect_task(state.params, state.inner_lr, t, k, c.num_inner_steps, c.episodes_per_task)
        )(tasks, task_keys)

        old_dist = jax.lax.stop_gradient(self.post_dists(state.params, state.inner_lr, batches, post))

        if c.outer == "trpo":
            new_params, info = trpo_step(
                lambda p: self.outer_loss(p, state.inner_lr, batches, post),
                lambda p: self.post_kl(p, old_dist, state.inner_lr, batches, post),
                state.params,
                max_kl=c.max_kl,
                cg_iters=c.cg_iters,
                cg_damping=c.cg_damping,
                backtrack_ratio=c.backtrack_ratio,
                max_backtracks=c.max_backtracks,
                fisher_vector_fn=gauss_newton_fvp(
                    lambda p: self.post_dists(p, state.inner_lr, batches, post), state.params, post.traj.mask
                ),
            )
            opt_state = state.opt_state
            extra = {
                "train/outer_loss": info.loss_after,
                "train/outer_loss_before": info.loss_before,
                "train/kl": info.kl_after,
                "train/step_fraction": info.step_fraction,
                "train/grad_norm": info.grad_norm,
            }
        else:
            loss_before = self.ppo_loss(state.params, state.inner_lr, batches, post)

            def epoch(carry, _):
                params, opt_state = carry
                loss, grads = jax.value_and_grad(self.ppo_loss)(params, state.inner_lr, batches, post)
                updates, opt_state = self.optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), (loss, global_norm(grads))

            (new_params, opt_state), (losses, grad_norms) = jax.lax.scan(
                epoch, (state.params, state.opt_state), None, length=c.ppo_epochs
            )
            extra = {
                "train/outer_loss": self.ppo_loss(new_params, state.inner_lr, batches, post),
                "train/outer_loss_before": loss_before,
                "train/kl": self.post_kl(new_params, old_dist, state.inner_lr, batches, post),
                "train/grad_norm": grad_norms[0],
            }

        mean_returns = step_returns.mean(axis=0)  # [K + 1]
        metrics = {
            "train/return_pre": mean_returns[0],
            "train/return_post": mean_returns[-1],
            "train/entropy": surrogates.masked_mean(
                self.policy.dist(state.params, batches.traj.obs[:, 0]).entropy(), batches.traj.mask[:, 0]
            ),
            "train/inner_lr": state.inner_lr,
            **extra,
        }
        for k in range(1, c.num_inner_steps):
            metrics[f"train/return_step{k}"] = mean_returns[k]
        new_state = MAMLState(
            params=new_params, opt_state=opt_state, inner_lr=state.inner_lr, iteration=state.iteration + 1
        )
        return new_state, metrics

    # ------------------------------------------------------------------ meta-test
    def adapt_and_evaluate(self, state: MAMLState, tasks: Any, key: jax.Array) -> Metrics:
        """Returns after 0..K inner steps (K = eval_adapt_steps) for each task: [N] arrays."""
        c = self.config
        num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        keys = jax.random.split(key, num_tasks)
        steps = c.eval_adapt_steps

        def per_task(task, k):
            if steps == 0:
                traj = rollout_episodes(self.env, self.policy.sample, state.params, task, k, c.eval_episodes_per_task)
                return traj.episode_return().mean()[None]
            _, _, rets = self._collect_task(state.params, state.inner_lr, task, k, steps, c.eval_episodes_per_task)
            return rets

        returns = jax.vmap(per_task)(tasks, keys)  # [N, K + 1]
        return {f"eval/return_step{k}": returns[:, k] for k in range(steps + 1)}
