"""The gradient-based family's skeleton: inner policy-gradient steps per task, re-adaptation on the
stored batches, and an outer TRPO or PPO-clip update through the adaptation.

One meta-iteration, all inside ``jax.jit``:
  1. sample ``meta_batch_size`` tasks;
  2. per task (vmapped): for each of K inner steps, roll out ``episodes_per_task`` episodes with the
     current adapted params, build the policy-gradient batch (:func:`jmeta.rl.pg.pg_batch`: linear
     feature baseline, GAE advantages) and take an inner step on :meth:`GradientMetaLearner.inner_loss`;
     then roll out the post-adaptation batch;
  3. outer update on ``L(theta) = -mean_tasks E_post[pi_{theta'(theta)} / pi_old * A]`` where
     ``theta'(theta)`` re-applies the K inner steps to the stored (stop-gradient) batches, so the
     meta-gradient differentiates through the adaptation (unless ``first_order``): TRPO (CG on
     Fisher-vector products of the post-adaptation KL, line search) or PPO-clip epochs with Adam.

A family member subclasses :class:`GradientMetaLearner` with its ``Config`` (a
:class:`GradientConfig` subclass) and overrides what differs: the inner loss, which parameters
adapt (:meth:`GradientMetaLearner.adapt`), the outer objective.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jmeta import adaptation
from jmeta.algos.base import EvalOut, MetaLearner, ViewerRollouts
from jmeta.networks.mlp import ACTIVATIONS
from jmeta.networks.policies import MLPPolicy, policy_for
from jmeta.rl import ppo, surrogates
from jmeta.rl.pg import PGBatch, pg_batch
from jmeta.rl.surrogates import INNER_ESTIMATORS
from jmeta.rl.trpo import gauss_newton_fvp, trpo_step
from jmeta.rollout import rollout_episodes
from jmeta.types import Metrics, Params
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class GradientConfig:
    """Settings shared by the gradient-based family: VPG inner steps, a TRPO or PPO-clip outer update."""

    episodes_per_task: int = 20
    """Episodes sampled per task for each inner step and for the post-adaptation batch."""
    num_inner_steps: int = 1
    """Inner VPG steps during meta-training (>= 1)."""
    inner_lr: float = 0.1
    """Inner-loop step size alpha (an array at run time: changing it does not recompile)."""
    first_order: bool = False
    """Treat the inner gradient as a constant (first-order MAML)."""
    inner_estimator: Literal["lvc", "dice", "vpg"] = "lvc"
    """Inner surrogate: 'lvc' (ProMP), 'dice' (unbiased, higher variance) or 'vpg' (original MAML, biased meta-gradient)."""
    outer: Literal["trpo", "ppo"] = "trpo"
    """Outer update: TRPO (conjugate gradient + line search) or PPO's clipped objective with Adam."""
    max_kl: float = 0.01
    """TRPO: mean-KL trust region of the post-adaptation policies."""
    cg_iters: int = 10
    """TRPO: conjugate-gradient iterations."""
    cg_damping: float = 1e-5
    """TRPO: damping added to the Fisher-vector product."""
    backtrack_ratio: float = 0.8
    """TRPO: line-search shrink factor."""
    max_backtracks: int = 15
    """TRPO: line-search candidates before the step is rejected."""
    ppo_epochs: int = 5
    """PPO outer: gradient steps per meta-iteration on the same post-adaptation batch."""
    ppo_lr: float = 1e-3
    """PPO outer: Adam learning rate."""
    ppo_clip: float = 0.2
    """PPO outer: ratio clipping epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda over the linear feature baseline (1.0: returns minus baseline)."""
    normalize_advantages: bool = True
    """Standardise advantages per task batch (rllab's center_adv)."""
    hidden_sizes: tuple[int, ...] = (100, 100)
    """Policy MLP hidden layer sizes."""
    activation: Literal["relu", "tanh", "elu", "gelu", "swish"] = "relu"
    """Policy MLP activation."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy."""
    state_dependent_std: bool = False
    """Predict the log-std from the observation instead of learning one vector."""
    eval_adapt_steps: int = 3
    """Meta-test: inner steps K; returns are reported after 0..K steps."""
    eval_episodes_per_task: int = 20
    """Meta-test: episodes per task per adaptation step."""
    eval_lr_scale_after_first: float = 1.0
    """Meta-test: inner steps 2..K use the step size times this (the MAML authors' test scripts take
    the first step at the full size and every later one at half: 0.5)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        p = prefix + "."
        check(self.episodes_per_task >= 1, p + "episodes_per_task", "must be >= 1", self.episodes_per_task)
        check(self.num_inner_steps >= 1, p + "num_inner_steps", "must be >= 1", self.num_inner_steps)
        check(self.inner_lr > 0, p + "inner_lr", "must be > 0", self.inner_lr)
        check(self.inner_estimator in INNER_ESTIMATORS, p + "inner_estimator", f"must be one of {INNER_ESTIMATORS}", self.inner_estimator)
        check(self.outer in ("trpo", "ppo"), p + "outer", "must be 'trpo' or 'ppo'", self.outer)
        check(self.max_kl > 0, p + "max_kl", "must be > 0", self.max_kl)
        check(self.cg_iters >= 1, p + "cg_iters", "must be >= 1", self.cg_iters)
        check(self.cg_damping >= 0, p + "cg_damping", "must be >= 0", self.cg_damping)
        check(0 < self.backtrack_ratio < 1, p + "backtrack_ratio", "must be in (0, 1)", self.backtrack_ratio)
        check(self.max_backtracks >= 1, p + "max_backtracks", "must be >= 1", self.max_backtracks)
        check(self.ppo_epochs >= 1, p + "ppo_epochs", "must be >= 1", self.ppo_epochs)
        check(self.ppo_lr > 0, p + "ppo_lr", "must be > 0", self.ppo_lr)
        check(0 < self.ppo_clip < 1, p + "ppo_clip", "must be in (0, 1)", self.ppo_clip)
        check(0 <= self.gamma <= 1, p + "gamma", "must be in [0, 1]", self.gamma)
        check(0 <= self.gae_lambda <= 1, p + "gae_lambda", "must be in [0, 1]", self.gae_lambda)
        check(self.eval_lr_scale_after_first > 0, p + "eval_lr_scale_after_first", "must be > 0",
              self.eval_lr_scale_after_first)
        check(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes), p + "hidden_sizes", "must be positive layer widths", self.hidden_sizes)
        check(self.activation in ACTIVATIONS, p + "activation", f"must be one of {sorted(ACTIVATIONS)}", self.activation)
        check(self.init_std > 0, p + "init_std", "must be > 0", self.init_std)
        check(self.eval_adapt_steps >= 0, p + "eval_adapt_steps", "must be >= 0", self.eval_adapt_steps)
        check(self.eval_episodes_per_task >= 1, p + "eval_episodes_per_task", "must be >= 1", self.eval_episodes_per_task)


@struct.dataclass
class GradientState:
    """params: policy params pytree; opt_state: optax state (PPO outer; empty for TRPO);
    inner_lr: float32 scalar (an array, so changing it does not recompile);
    iteration: int32 scalar, completed meta-iterations."""

    params: Params
    opt_state: Any
    inner_lr: jax.Array
    iteration: jax.Array


@dataclasses.dataclass(frozen=True)
class GradientMetaLearner(MetaLearner[GradientConfig, GradientState]):
    """The gradient-based family over ``env`` and ``task_dist``. See the module docstring."""

    EVAL_AXIS = "step"

    # ------------------------------------------------------------------ setup
    @property
    def mlp_policy(self) -> MLPPolicy:
        """The MLP policy the config describes, for the env's action space."""
        c = self.config
        return policy_for(self.env.spec.action_space, tuple(c.hidden_sizes), c.activation, c.init_std,
                          c.state_dependent_std)

    @property
    def policy(self) -> Any:
        """The policy the inner loop adapts (MAML: :attr:`mlp_policy`; CAVIA, MAESN: it over
        ``concat(obs, context)``)."""
        return self.mlp_policy

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.config.ppo_lr)

    def init(self, key: jax.Array) -> GradientState:
        params = self.policy.init(key, self.env.spec.observation_space.shape)
        state = GradientState(params=params, opt_state=(), inner_lr=self.initial_inner_lr(params),
                              iteration=jnp.zeros((), jnp.int32))
        if self.config.outer == "ppo":
            state = state.replace(opt_state=self.optimizer.init(self.meta_params(state)))
        return state

    def initial_inner_lr(self, params: Params) -> jax.Array | Params:
        """The inner step size in the state: a float32 scalar (Meta-SGD: a pytree like ``params``)."""
        return jnp.asarray(self.config.inner_lr, jnp.float32)

    # ------------------------------------------------------------------ meta-parameters
    # What the outer step optimises: the policy params (MAML), or the params and the per-parameter
    # inner step sizes (Meta-SGD). ``unpack`` turns meta-parameters into ``(params, inner_lr)``.
    def meta_params(self, state: GradientState) -> Any:
        return state.params

    def unpack(self, meta: Any, state: GradientState) -> tuple[Params, Any]:
        return meta, state.inner_lr

    def with_meta_params(self, state: GradientState, meta: Any) -> GradientState:
        return state.replace(params=meta)

    def env_steps_per_iteration(self) -> int:
        c = self.config
        return self.meta_batch_size * c.episodes_per_task * self.env.spec.horizon * (c.num_inner_steps + 1)

    def headline(self) -> dict[str, str]:
        return {"train/return_pre": "pre", "train/return_post": "post"}

    # ------------------------------------------------------------------ inner loop
    def pg_batch(self, traj) -> PGBatch:
        c = self.config
        return pg_batch(traj, c.gamma, c.gae_lambda, c.normalize_advantages)

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

    @property
    def actor(self) -> Any:
        """What the rollouts run: the policy's ``sample`` (a feed-forward policy function; MAESN: an
        actor that draws a latent at every episode start). Its params are what the inner loop adapts."""
        return self.policy.sample

    def collect_task(self, params: Params, inner_lr: jax.Array, task: Any, key: jax.Array, num_steps: int,
                     num_episodes: int, record_info: bool = False, record_state: bool = False,
                     lr_scale_after_first: float = 1.0) -> tuple[PGBatch, PGBatch, jax.Array]:
        """Inner-loop data for one task: K adaptation batches and the post-adaptation batch.

        Returns ``(inner_batches [K, E, T, ...], post_batch [E, T, ...], returns [K + 1])``; with
        ``record_info`` the trajectories also hold the env's step info in ``traj.extras["info"]``,
        with ``record_state`` the env states in ``traj.extras["env_state"]``. Inner steps 2..K use
        the step size times ``lr_scale_after_first`` (the meta-test's ``eval_lr_scale_after_first``).
        """
        keys = jax.random.split(key, num_steps + 1)

        def rollout(p, k):
            return rollout_episodes(self.env, self.actor, p, task, k, num_episodes, next_obs=False,
                                    record_info=record_info, record_state=record_state)

        def step(p, xs):
            k, index = xs
            traj = rollout(p, k)
            batch = self.pg_batch(traj)
            p_next = self.inner_update(p, batch, self._step_size(inner_lr, index, lr_scale_after_first),
                                       first_order=True)
            return jax.lax.stop_gradient(p_next), (batch, traj.episode_return().mean())

        start = jax.lax.stop_gradient(self.adaptation_start(params))
        adapted, (batches, step_returns) = jax.lax.scan(step, start, (keys[:-1], jnp.arange(num_steps)))
        post_traj = rollout(adapted, keys[-1])
        post = self.pg_batch(post_traj)
        all_returns = jnp.concatenate([step_returns, post_traj.episode_return().mean()[None]])
        return batches, post, all_returns

    def inner_lr_at(self, inner_lr: Any, step: jax.Array) -> Any:
        """The inner step size used at inner step ``step`` (0-based; MAESN decays it). Default: constant."""
        return inner_lr

    def _step_size(self, inner_lr: Any, step: jax.Array, scale_after_first: float) -> Any:
        """:meth:`inner_lr_at`, times ``scale_after_first`` from the second step on (1.0: unchanged,
        and the same program)."""
        lr = self.inner_lr_at(inner_lr, step)
        if scale_after_first == 1.0:
            return lr
        factor = jnp.where(step == 0, 1.0, scale_after_first).astype(jnp.float32)
        return jax.tree_util.tree_map(lambda x: x * factor, lr)

    def adaptation_start(self, params: Params) -> Any:
        """What the inner loop adapts, at the start of a task: the params (CAVIA: params and a zero context)."""
        return params

    def inner_update(self, adapted: Any, batch: PGBatch, inner_lr: Any, first_order: bool) -> Any:
        """One inner step (MAML: ``theta - lr * grad``; CAVIA steps only its context)."""
        return adaptation.inner_step(self.inner_loss, adapted, batch, inner_lr, first_order)

    def adapt(self, params: Params, inner_lr: jax.Array, batches: PGBatch, first_order: bool | None = None) -> Any:
        """Re-applies the inner steps on stored batches (differentiable w.r.t. ``params``; first order
        when ``first_order`` or, if it is None, the config says so)."""
        first_order = self.config.first_order if first_order is None else first_order

        def body(p, xs):
            batch, index = xs
            return self.inner_update(p, batch, self.inner_lr_at(inner_lr, index), first_order), None

        num_steps = jax.tree_util.tree_leaves(batches)[0].shape[0]
        return jax.lax.scan(body, self.adaptation_start(params), (batches, jnp.arange(num_steps)))[0]

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
        """PPO-clip surrogate loss (to minimise) of the adapted policies, averaged over tasks."""
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

    def outer_update(self, state: GradientState, batches: PGBatch, post: PGBatch) -> tuple[Any, Any, Metrics]:
        """The outer step on the meta-parameters (:meth:`meta_params`): ``(new_meta, new_opt_state, metrics)``."""
        c = self.config
        meta = self.meta_params(state)

        def loss(m):
            return self.outer_loss(*self.unpack(m, state), batches, post)

        def dists(m):
            return self.post_dists(*self.unpack(m, state), batches, post)

        def kl(m, old):
            params, lr = self.unpack(m, state)
            return self.post_kl(params, old, lr, batches, post)

        old_dist = jax.lax.stop_gradient(dists(meta))
        if c.outer == "trpo":
            new_meta, info = trpo_step(
                loss,
                lambda m: kl(m, old_dist),
                meta,
                max_kl=c.max_kl,
                cg_iters=c.cg_iters,
                cg_damping=c.cg_damping,
                backtrack_ratio=c.backtrack_ratio,
                max_backtracks=c.max_backtracks,
                fisher_vector_fn=gauss_newton_fvp(dists, meta, post.traj.mask),
            )
            return new_meta, state.opt_state, {
                "train/outer_loss": info.loss_after,
                "train/outer_loss_before": info.loss_before,
                "train/kl": info.kl_after,
                "train/step_fraction": info.step_fraction,
                "train/grad_norm": info.grad_norm,
            }

        def ppo_loss(m):
            return self.ppo_loss(*self.unpack(m, state), batches, post)

        loss_before = ppo_loss(meta)
        new_meta, opt_state, infos = ppo.update_epochs(
            lambda m, _: (ppo_loss(m), {}), self.optimizer, meta, state.opt_state, (), c.ppo_epochs,
        )
        return new_meta, opt_state, {
            "train/outer_loss": ppo_loss(new_meta),
            "train/outer_loss_before": loss_before,
            "train/kl": kl(new_meta, old_dist),
            "train/grad_norm": infos["grad_norm"][0],
        }

    # ------------------------------------------------------------------ meta-iteration
    def collect_meta_batch(self, state: GradientState, key: jax.Array) -> tuple[Any, PGBatch, PGBatch, jax.Array]:
        """Samples ``meta_batch_size`` tasks and runs the inner loop on each (vmapped).

        Returns ``(outer_batches, inner_batches [N, K, E, T], post [N, E, T], returns [N, K + 1])``;
        ``outer_batches`` is what :meth:`outer_update` receives as its ``batches`` (the inner batches
        here; MAESN pairs them with the sampled tasks' indices).
        """
        c = self.config
        task_key, rollout_key = jax.random.split(key)
        tasks = self.sample_tasks(task_key)
        task_keys = jax.random.split(rollout_key, self.meta_batch_size)
        batches, post, step_returns = jax.vmap(
            lambda t, k: self.collect_task(state.params, state.inner_lr, t, k, c.num_inner_steps, c.episodes_per_task)
        )(tasks, task_keys)
        return batches, batches, post, step_returns

    def meta_step(self, state: GradientState, key: jax.Array) -> tuple[GradientState, Metrics]:
        c = self.config
        outer_batches, batches, post, step_returns = self.collect_meta_batch(state, key)
        new_meta, opt_state, extra = self.outer_update(state, outer_batches, post)

        mean_returns = step_returns.mean(axis=0)  # [K + 1]
        metrics = {
            "train/return_pre": mean_returns[0],
            "train/return_post": mean_returns[-1],
            "train/entropy": self.pre_update_entropy(state, batches),
            "train/inner_lr": _mean_leaf(state.inner_lr),
            **extra,
        }
        for k in range(1, c.num_inner_steps):
            metrics[f"train/return_step{k}"] = mean_returns[k]
        new_state = self.with_meta_params(state, new_meta).replace(opt_state=opt_state, iteration=state.iteration + 1)
        return new_state, metrics

    def pre_update_entropy(self, state: GradientState, batches: PGBatch) -> jax.Array:
        """Mean entropy of the pre-update policy on the first inner batch's valid steps."""
        traj = batches.traj
        return surrogates.masked_mean(self.policy.dist(state.params, traj.obs[:, 0]).entropy(), traj.mask[:, 0])

    # ------------------------------------------------------------------ meta-test
    def evaluate(self, state: GradientState, tasks: Any, key: jax.Array) -> EvalOut:
        """Returns after 0..K inner steps (K = eval_adapt_steps) on each task: [N, K + 1]; when the env
        reports ``info["success"]``, also ``extras["success"]`` [N, K + 1]: the fraction of episodes
        that succeeded at some step."""
        c = self.config
        num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        keys = jax.random.split(key, num_tasks)
        steps = c.eval_adapt_steps

        def per_task(task, k):
            if steps == 0:
                traj = rollout_episodes(self.env, self.actor, self.adaptation_start(state.params), task, k,
                                        c.eval_episodes_per_task, next_obs=False, record_info=True)
                success = _success_rate(traj)
                return traj.episode_return().mean()[None], None if success is None else success[None]
            batches, post, rets = self.collect_task(state.params, state.inner_lr, task, k, steps,
                                                    c.eval_episodes_per_task, record_info=True,
                                                    lr_scale_after_first=c.eval_lr_scale_after_first)
            if _success_rate(post.traj) is None:
                return rets, None
            success = jnp.concatenate([jax.vmap(_success_rate)(batches.traj), _success_rate(post.traj)[None]])
            return rets, success

        returns, success = jax.vmap(per_task)(tasks, keys)
        extras = {} if success is None else {"success": success}
        return EvalOut(returns=returns, axis="step", extras=extras)

    def viewer_rollouts(self, state: GradientState, tasks: Any, key: jax.Array) -> ViewerRollouts:
        """The meta-test's episodes with their env states: on each task, the first episode of each
        adaptation batch (before adaptation, after 1, ..., K inner steps; K = eval_adapt_steps).
        Leaves [N, K + 1, T, ...]."""
        c = self.config
        keys = jax.random.split(key, jax.tree_util.tree_leaves(tasks)[0].shape[0])
        steps = c.eval_adapt_steps

        def per_task(task, k):
            if steps == 0:
                traj = rollout_episodes(self.env, self.actor, self.adaptation_start(state.params), task, k, 1,
                                        next_obs=False, record_info=True, record_state=True)
                return traj
            batches, post, _ = self.collect_task(state.params, state.inner_lr, task, k, steps,
                                                 c.eval_episodes_per_task, record_info=True, record_state=True,
                                                 lr_scale_after_first=c.eval_lr_scale_after_first)
            first = jax.tree_util.tree_map(lambda x: x[:, 0], batches.traj)  # [K, T, ...]
            last = jax.tree_util.tree_map(lambda x: x[:1], post.traj)  # [1, T, ...]
            return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), first, last)

        traj = jax.vmap(per_task)(tasks, keys)
        labels = tuple(["before adaptation"] + [f"after {k} inner step{'s' if k > 1 else ''}"
                                                for k in range(1, steps + 1)])
        return ViewerRollouts(traj=traj, labels=labels)


def _success_rate(traj) -> jax.Array | None:
    """Fraction of the episodes ([E, T]) whose step info reports ``success`` at some valid step; None
    when the env reports no success."""
    info = traj.extras.get("info", {})
    if "success" not in info:
        return None
    reached = (info["success"] * traj.mask).max(axis=-1) > 0
    return reached.astype(jnp.float32).mean()


def _mean_leaf(tree: Any) -> jax.Array:
    """The mean over every entry of a pytree (a scalar stays itself)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if len(leaves) == 1 and jnp.ndim(leaves[0]) == 0:
        return leaves[0]
    return jnp.concatenate([jnp.ravel(x) for x in leaves]).mean()
