"""MAESN (Gupta et al. 2018, "Meta-Reinforcement Learning of Structured Exploration Strategies").

The policy acts on ``concat(obs, z)``. Every training task ``i`` of a finite training set (MAESN's 100
goals) owns a variational latent distribution ``N(mu_i, diag(sigma_i^2))`` (a row of the latent
table, meta-learned); every episode draws one ``z = mu + eps * sigma`` (``eps ~ N(0, I)`` at the
episode start, the rollout engine's ``episode_start`` hook), so exploration is coherent within an
episode and structured by what the latent space learned.

Inner loop (per task, VPG): the latent parameters take a step on the REINFORCE loss of the latent
distribution, ``-mean_e[log N(z_e; mu, sigma) * A_e]`` with ``A_e`` the episode's t = 0 advantage
standardised over the task's episodes, with meta-learned per-dimension step sizes (one vector for
the means, one for the log-stds, initialised to ``inner_lr``). The policy weights stay fixed in the
inner loop unless ``adapt_policy`` (the paper's variant; the authors' code multiplies that step by 0).

Outer loop: TRPO (or PPO-clip) on the post-update surrogate, where the post-update latents enter by
reparameterisation (``z = mu' + eps * sigma'`` with the stored ``eps``), plus
``kl_weight * KL(N(mu_i, sigma_i) || N(0, I))`` of the sampled tasks' pre-update latents; the
meta-parameters are the policy, the latent table and the step sizes.

Meta-test: a new task starts from the prior ``N(0, I)``; only the latent adapts (the weights are
frozen), with the meta-learned step sizes, decayed by ``step_size_decay`` from the third step on
(the authors' test script halves them after every iteration from the second). Meta-training uses
the dense reward, the meta-test the sparse one (``--eval-env-set``). Follows
russellmendonca/maesn_suite (``maesn_npo.py``, ``maml_minimal_gauss_mlp_policy_adaStep.py``,
``vpg_maesn.py``, ``rllab/sampler/base.py``); see docs/algorithms/maesn.md.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner, GradientState
from jmeta.algos.base import EvalOut, Preset
from jmeta.algos.maml import same_budget_as_maml
from jmeta.networks.distributions import DiagGaussian
from jmeta.networks.policies import ContextPolicy
from jmeta.rl import returns as rl_returns
from jmeta.rl import surrogates
from jmeta.rl.pg import PGBatch
from jmeta.rollout import ActorBase
from jmeta.tasks import TaskBank, training_task_set
from jmeta.types import Metrics, Params, StepInputs
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class MAESNConfig(GradientConfig):
    """MAESN: per-task latent distributions adapted by VPG in the inner loop; TRPO outer update with a
    KL to the unit prior."""

    latent_dim: int = 2
    """Dimension of the latent z (the authors' sweep and shipped policies: 2)."""
    inner_lr: float = 1.0
    """Initial latent step sizes (the authors' fast_learning_rate; shipped Ant: 1, sweep [0.5, 1])."""
    kl_weight: float = 0.1
    """Weight of KL(N(mu_i, sigma_i) || N(0, I)) in the meta-objective (shipped Ant: 0.1, sweep [0.1, 0.5])."""
    learn_step_sizes: bool = True
    """Meta-learn the latent step sizes (per dimension, means and log-stds), as the authors' code does."""
    adapt_policy: bool = False
    """Also take an inner VPG step on the policy weights (step inner_lr); the authors' code multiplies it by 0."""
    inner_estimator: str = "vpg"
    """Inner surrogate of the policy step when adapt_policy (the authors': -mean(log pi * A), 'vpg')."""
    num_train_tasks: int = 100
    """Size of the training set (the latent table's rows) when the env has no fixed one (MAESN: 100 goals)."""
    train_task_seed: int = 0
    """Seed of that training set (drawn once from the task distribution)."""
    step_size_decay: float = 0.5
    """Inner step k (0-based) uses the step sizes times decay ** max(k - 1, 0) (the authors' meta-test halving)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        super().validate(prefix, meta_batch_size)
        p = prefix + "."
        check(self.latent_dim >= 1, p + "latent_dim", "must be >= 1", self.latent_dim)
        check(self.kl_weight >= 0, p + "kl_weight", "must be >= 0", self.kl_weight)
        check(self.num_train_tasks >= 1, p + "num_train_tasks", "must be >= 1", self.num_train_tasks)
        check(0 <= self.train_task_seed < 2**32, p + "train_task_seed", "must be in [0, 2**32 - 1]", self.train_task_seed)
        check(0 < self.step_size_decay <= 1, p + "step_size_decay", "must be in (0, 1]", self.step_size_decay)


TINY = MAESNConfig(episodes_per_task=3, hidden_sizes=(16,), eval_adapt_steps=1, eval_episodes_per_task=2, cg_iters=3,
                   num_train_tasks=8)

_SOURCE = ("russellmendonca/maesn_suite launchers/train.py and hyperparam_sweep.py (ReLU (100, 100), latent_dim 2, "
           "fast lr 1, kl weight 0.1, init_std 1, 1 inner step, TRPO step 0.01, gamma 0.99, GAE lambda 1, linear "
           "baseline, 100 training goals)")

PRESETS: dict[str, Preset] = {
    **{env: preset for env, preset in same_budget_as_maml(
        "MAESN's defaults (latent 2, step sizes 1, KL weight 0.1) on a dense-reward task: no sparse meta-test",
        hidden_sizes=(64, 64), activation="tanh").items() if env.startswith("cheetah")},
    "point_nav": Preset(
        run={"env_variant": "semicircle", "eval_env_set": ("sparse=true",), "meta_iters": 100, "meta_batch_size": 20,
             "eval_every": 25, "checkpoint_every": 25},
        algo={"episodes_per_task": 20, "hidden_sizes": (100, 100)},
        source=f"{_SOURCE}; on point_nav's semicircle goals (dense meta-training, sparse meta-test as MAESN), at "
               "MAML's point_nav budget (100 iterations x 20 tasks x 20 episodes; 500 x 20 x 50 there)",
    ),
    "wheeled_nav": Preset(
        run={"eval_env_set": ("reward=sparse",), "meta_iters": 100, "meta_batch_size": 20, "eval_every": 25,
             "checkpoint_every": 25, "eval_tasks": 30},
        algo={"episodes_per_task": 20, "hidden_sizes": (100, 100), "eval_episodes_per_task": 20},
        source=f"{_SOURCE}; H 200, dense training goals, sparse meta-test on the first 30 validation goals; scaled "
               "for a 2-core CPU: 100 iterations x 20 tasks x 20 episodes (500 x 20 x 50 there)",
    ),
}


@struct.dataclass
class LatentParams:
    """What one task's inner loop adapts. policy: the weights pytree; mean, log_std: float32[d]."""

    policy: Params
    mean: jax.Array
    log_std: jax.Array


@struct.dataclass
class MAESNParams:
    """The meta-learned parameters. policy: the weights pytree; latent_mean, latent_log_std:
    float32[M, d], one latent distribution per training task."""

    policy: Params
    latent_mean: jax.Array
    latent_log_std: jax.Array


@struct.dataclass
class LatentStepSizes:
    """Inner step sizes of the latent means and log-stds: float32[d] each."""

    mean: jax.Array
    log_std: jax.Array


@struct.dataclass
class TaskBatches:
    """The inner batches [N, K, E, T] of a meta-batch with the sampled tasks' rows ``ids`` (int32[N])."""

    ids: jax.Array
    batches: PGBatch


@struct.dataclass
class LatentActor(ActorBase):
    """Draws ``eps ~ N(0, I)`` at every episode start and acts with ``z = mean + eps * exp(log_std)``.

    Params: :class:`LatentParams`; carry: ``eps`` float32[d], recorded as ``extras["noise"]``."""

    policy: ContextPolicy = struct.field(pytree_node=False)
    latent_dim: int = struct.field(pytree_node=False)

    def initial_carry(self, params: LatentParams, key: jax.Array) -> jax.Array:
        return jnp.zeros((self.latent_dim,), jnp.float32)

    def episode_start(self, params: LatentParams, carry: jax.Array, inputs: StepInputs, key: jax.Array) -> jax.Array:
        return jax.random.normal(key, (self.latent_dim,), jnp.float32)

    def act(self, params: LatentParams, carry: jax.Array, inputs: StepInputs, key: jax.Array):
        z = params.mean + carry * jnp.exp(params.log_std)
        action, log_prob = self.policy.sample((params.policy, z), inputs.obs, key)
        return carry, action, log_prob, {"noise": carry}


def episode_latents(params: LatentParams, traj) -> jax.Array:
    """The latent of each episode, ``mean + eps * exp(log_std)``: [E, 1, d] (broadcasts over T)."""
    noise = traj.extras["noise"][:, :1]  # eps is constant within an episode
    return params.mean + noise * jnp.exp(params.log_std)


@dataclasses.dataclass(frozen=True)
class MAESN(GradientMetaLearner):
    """MAESN on the gradient-based skeleton (module docstring): adapted params are :class:`LatentParams`."""

    name: ClassVar[str] = "maesn"
    Config: ClassVar[type] = MAESNConfig
    TINY: ClassVar[MAESNConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

    # ------------------------------------------------------------------ setup
    @property
    def policy(self) -> ContextPolicy:
        return ContextPolicy(self.mlp_policy, self.config.latent_dim)

    @property
    def actor(self) -> LatentActor:
        return LatentActor(self.policy, self.config.latent_dim)

    @functools.cached_property
    def training_set(self) -> TaskBank:
        """The finite training tasks, one latent-table row each (:func:`jmeta.tasks.training_task_set`)."""
        return training_task_set(self.task_dist, self.config.num_train_tasks, self.config.train_task_seed)

    def init(self, key: jax.Array) -> GradientState:
        c = self.config
        policy_key, latent_key = jax.random.split(key)
        rows = self.training_set.size
        params = MAESNParams(
            policy=self.policy.init(policy_key, self.env.spec.observation_space.shape),
            latent_mean=jax.random.normal(latent_key, (rows, c.latent_dim), jnp.float32),  # the authors' init
            latent_log_std=jnp.zeros((rows, c.latent_dim), jnp.float32),
        )
        def step() -> jax.Array:  # two buffers: the trainer donates the state
            return jnp.full((c.latent_dim,), c.inner_lr, jnp.float32)

        state = GradientState(params=params, opt_state=(), inner_lr=LatentStepSizes(step(), step()),
                              iteration=jnp.zeros((), jnp.int32))
        if c.outer == "ppo":
            state = state.replace(opt_state=self.optimizer.init(self.meta_params(state)))
        return state

    def meta_params(self, state: GradientState) -> Any:
        return (state.params, state.inner_lr) if self.config.learn_step_sizes else state.params

    def unpack(self, meta: Any, state: GradientState) -> tuple[MAESNParams, LatentStepSizes]:
        return meta if self.config.learn_step_sizes else (meta, state.inner_lr)

    def with_meta_params(self, state: GradientState, meta: Any) -> GradientState:
        params, inner_lr = self.unpack(meta, state)
        return state.replace(params=params, inner_lr=inner_lr)

    @staticmethod
    def task_start(params: MAESNParams, task_id: jax.Array) -> LatentParams:
        """Training task ``task_id``'s pre-update parameters (its latent-table row)."""
        return LatentParams(params.policy, params.latent_mean[task_id], params.latent_log_std[task_id])

    @staticmethod
    def prior_start(params: MAESNParams) -> LatentParams:
        """A new task's pre-update parameters: the latent prior N(0, I)."""
        zeros = jnp.zeros(params.latent_mean.shape[-1:], jnp.float32)
        return LatentParams(params.policy, zeros, zeros)

    # ------------------------------------------------------------------ inner loop
    def latent_loss(self, adapted: LatentParams, batch: PGBatch) -> jax.Array:
        """REINFORCE loss of the latent distribution on one task's episodes:
        ``-mean_e[log N(z_e; mean, exp(log_std)) * A_e]``, ``z_e`` the episodes' latents (constants),
        ``A_e`` their t = 0 advantages standardised over the episodes."""
        z = jax.lax.stop_gradient(episode_latents(adapted, batch.traj)[:, 0])  # [E, d]
        first = batch.traj.mask[:, 0]
        adv = rl_returns.normalize(batch.advantages[:, 0], first)
        log_prob = DiagGaussian(adapted.mean, adapted.log_std).log_prob(z)  # [E]
        return -surrogates.masked_mean(log_prob * adv, first)

    def inner_update(self, adapted: LatentParams, batch: PGBatch, inner_lr: LatentStepSizes,
                     first_order: bool) -> LatentParams:
        grads = jax.grad(self.latent_loss)(adapted, batch)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        policy = adapted.policy
        if self.config.adapt_policy:
            z = jax.lax.stop_gradient(episode_latents(adapted, batch.traj))
            policy_grad = jax.grad(lambda theta: self.inner_loss((theta, z), batch))(adapted.policy)
            if first_order:
                policy_grad = jax.lax.stop_gradient(policy_grad)
            policy = jax.tree_util.tree_map(lambda p, g: p - self.config.inner_lr * g, policy, policy_grad)
        return LatentParams(policy, adapted.mean - inner_lr.mean * grads.mean,
                            adapted.log_std - inner_lr.log_std * grads.log_std)

    def inner_lr_at(self, inner_lr: LatentStepSizes, step: jax.Array) -> LatentStepSizes:
        scale = self.config.step_size_decay ** jnp.maximum(step - 1, 0).astype(jnp.float32)
        return jax.tree_util.tree_map(lambda x: x * scale, inner_lr)

    def collect_meta_batch(self, state: GradientState, key: jax.Array) -> tuple[TaskBatches, PGBatch, PGBatch, jax.Array]:
        """Samples ``meta_batch_size`` rows of the training set and runs each one's inner loop from its latent."""
        c = self.config
        task_key, rollout_key = jax.random.split(key)
        ids = jax.random.randint(task_key, (self.meta_batch_size,), 0, self.training_set.size)
        tasks = self.training_set.get(ids)
        if self.task_sharding is not None:
            ids, tasks = jax.lax.with_sharding_constraint((ids, tasks), self.task_sharding)
        task_keys = jax.random.split(rollout_key, self.meta_batch_size)
        batches, post, step_returns = jax.vmap(
            lambda i, t, k: self.collect_task(self.task_start(state.params, i), state.inner_lr, t, k,
                                              c.num_inner_steps, c.episodes_per_task)
        )(ids, tasks, task_keys)
        return TaskBatches(ids, batches), batches, post, step_returns

    # ------------------------------------------------------------------ outer objective
    def _adapted(self, params: MAESNParams, inner_lr: LatentStepSizes, batches: TaskBatches) -> LatentParams:
        """Each sampled task's post-update parameters, differentiable w.r.t. ``params`` and ``inner_lr``. [N]."""
        return jax.vmap(lambda i, b: self.adapt(self.task_start(params, i), inner_lr, b))(batches.ids, batches.batches)

    def post_dists(self, params: MAESNParams, inner_lr: LatentStepSizes, batches: TaskBatches, post: PGBatch) -> Any:
        """Post-update action distributions on the post-update batch, with ``z = mean' + eps * exp(log_std')``."""
        adapted = self._adapted(params, inner_lr, batches)

        def per_task(a, traj):
            return self.policy.dist((a.policy, episode_latents(a, traj)), traj.obs)

        return jax.vmap(per_task)(adapted, post.traj)

    def _post_log_probs(self, params: MAESNParams, inner_lr: LatentStepSizes, batches: TaskBatches,
                        post: PGBatch) -> jax.Array:
        return self.post_dists(params, inner_lr, batches, post).log_prob(post.traj.action)

    def latent_kl(self, params: MAESNParams, ids: jax.Array) -> jax.Array:
        """Mean over the sampled tasks of KL(N(mu_i, sigma_i) || N(0, I)) (summed over the latent dims)."""
        latent = DiagGaussian(params.latent_mean[ids], params.latent_log_std[ids])
        prior = DiagGaussian(jnp.zeros_like(latent.mean), jnp.zeros_like(latent.log_std))
        return latent.kl(prior).mean()

    def outer_loss(self, params: MAESNParams, inner_lr: LatentStepSizes, batches: TaskBatches, post: PGBatch):
        base = super().outer_loss(params, inner_lr, batches, post)
        return base + self.config.kl_weight * self.latent_kl(params, batches.ids)

    def ppo_loss(self, params: MAESNParams, inner_lr: LatentStepSizes, batches: TaskBatches, post: PGBatch):
        base = super().ppo_loss(params, inner_lr, batches, post)
        return base + self.config.kl_weight * self.latent_kl(params, batches.ids)

    def outer_update(self, state: GradientState, batches: TaskBatches, post: PGBatch) -> tuple[Any, Any, Metrics]:
        new_meta, opt_state, metrics = super().outer_update(state, batches, post)
        params, _ = self.unpack(new_meta, state)
        metrics = {
            **metrics,
            "train/latent_kl": self.latent_kl(params, batches.ids),
            "train/latent_std": jnp.exp(params.latent_log_std[batches.ids]).mean(),
        }
        return new_meta, opt_state, metrics

    def pre_update_entropy(self, state: GradientState, batches: PGBatch) -> jax.Array:
        """Entropy of the action distribution at z = 0 (for Gaussian heads with a state-independent
        std it does not depend on z)."""
        traj = batches.traj
        return surrogates.masked_mean(self.policy.dist(state.params.policy, traj.obs[:, 0]).entropy(), traj.mask[:, 0])

    # ------------------------------------------------------------------ meta-test
    def evaluate(self, state: GradientState, tasks: Any, key: jax.Array) -> EvalOut:
        """Returns (and success rates) after 0..K latent steps from the prior N(0, I), weights frozen."""
        return super().evaluate(state.replace(params=self.prior_start(state.params)), tasks, key)

    def viewer_rollouts(self, state: GradientState, tasks: Any, key: jax.Array):
        """As the meta-test: latent steps from the prior, weights frozen."""
        return super().viewer_rollouts(state.replace(params=self.prior_start(state.params)), tasks, key)
