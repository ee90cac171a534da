"""ProMP (Rothfuss et al. 2019, "ProMP: Proximal Meta-Policy Search").

On the gradient-based skeleton: the LVC inner objective (low-variance curvature; the skeleton's
default ``inner_estimator``), and an outer objective optimised by several full-batch Adam steps on
the same data, as in the authors' ``pro_mp.py`` and ``MAMLPPOOptimizer``:

    L(theta) = mean_i -mean_t min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)      (post-update samples)
             + mean_k eta_k KL_k,   KL_k = mean_i mean_t KL(pi_old,k(.|s) || pi_theta_k,i(.|s))

where ``r_t = pi_{theta'_i(theta)}(a|s) / pi_sampling(a|s)`` differentiates through the inner steps and
``KL_k`` compares the policy that sampled inner step ``k``'s data with the current one at that step
(``theta_0 = theta``, the pre-update policy, for one inner step). ``eta`` is fixed (5e-4 in every
run config of the authors) or adapted per inner step after each outer update (``eta /= 2`` when
``KL_k < target / 1.5``, ``eta *= 2`` when ``KL_k > 1.5 target``, their ``_adapt_kl_coeff``).
See docs/algorithms/promp.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner, GradientState
from jmeta.algos.base import Preset
from jmeta.algos.maml import CHEETAH_CPU_RUN
from jmeta.rl import ppo, surrogates
from jmeta.rl.pg import PGBatch
from jmeta.types import Metrics, Params
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class ProMPConfig(GradientConfig):
    """ProMP: LVC inner steps; clipped outer objective plus an inner-KL penalty, several Adam steps."""

    outer: str = "ppo"
    """Outer update: ProMP's is always the clipped objective with Adam ('ppo')."""
    ppo_epochs: int = 5
    """Full-batch Adam steps on the same data per meta-iteration (the authors' num_ppo_steps)."""
    ppo_lr: float = 1e-3
    """Adam learning rate of the outer steps."""
    ppo_clip: float = 0.3
    """Clipping epsilon of the outer objective (0.3 in the authors' run scripts)."""
    inner_kl_coef: float = 5e-4
    """eta: weight of the KL penalty between the sampling and the current policy at each inner step."""
    adaptive_inner_kl: bool = False
    """Adapt eta per inner step after each outer update towards target_inner_kl (the authors' run configs: off)."""
    target_inner_kl: float = 0.01
    """Target KL of the adaptive rule."""
    outer_max_kl: float = 0.0
    """A trust region on the outer Adam steps (a departure from the authors' code; 0 = off, as
    theirs): a step that would move the pre-update policy (at any inner step) or the post-update
    policies further than this mean KL from the ones that sampled the batch is discarded, and the
    iteration's remaining epochs are skipped."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Policy MLP hidden layer sizes (the authors' run scripts: (64, 64))."""
    activation: str = "tanh"
    """Policy MLP activation (the authors' MetaGaussianMLPPolicy: tanh)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        super().validate(prefix, meta_batch_size)
        check(self.outer == "ppo", prefix + ".outer", "must be 'ppo' (ProMP's outer objective; use --algo maml for TRPO)",
              self.outer)
        check(self.inner_kl_coef >= 0, prefix + ".inner_kl_coef", "must be >= 0", self.inner_kl_coef)
        check(self.target_inner_kl > 0, prefix + ".target_inner_kl", "must be > 0", self.target_inner_kl)
        check(self.outer_max_kl >= 0, prefix + ".outer_max_kl", "must be >= 0 (0 turns the trust region off)",
              self.outer_max_kl)


TINY = ProMPConfig(episodes_per_task=3, hidden_sizes=(16,), eval_adapt_steps=1, eval_episodes_per_task=2, ppo_epochs=2)

PRESETS: dict[str, Preset] = {
    "point_nav": Preset(
        run={"meta_iters": 100, "meta_batch_size": 20, "eval_every": 25, "checkpoint_every": 25},
        algo={"episodes_per_task": 20, "inner_lr": 0.1},
        source="jonasrothfuss/ProMP run_scripts/pro-mp_run_point_mass.py settings (inner lr 0.1, 5 Adam steps "
               "at 1e-3, clip 0.3, eta 5e-4 fixed, (64, 64) tanh, 20 rollouts per task) on MAML's point_nav "
               "budget (100 iterations x 20 tasks, against 1001 x 40 there)",
    ),
    "cheetah_vel": Preset(
        run=CHEETAH_CPU_RUN,
        algo={"episodes_per_task": 10, "inner_lr": 0.1, "eval_episodes_per_task": 10, "outer_max_kl": 0.02},
        source="jonasrothfuss/ProMP run_scripts/pro-mp_run_mujoco.py (HalfCheetah, H 100, action scale 10, "
               "inner lr 0.1, 5 Adam steps at 1e-3, clip 0.3, eta 5e-4) at MAML's CPU budget for cheetah_vel "
               "(20 tasks x 10 episodes x 300 iterations, against 40 x 20 x 1001 there), plus a departure: an "
               "outer trust region of KL 0.02 (--promp.outer-max-kl 0 for the authors' unbounded steps, which "
               "diverge here; docs/algorithms/promp.md)",
    ),
    "cheetah_dir": Preset(
        run=CHEETAH_CPU_RUN,
        algo={"episodes_per_task": 10, "inner_lr": 0.1, "eval_episodes_per_task": 10, "outer_max_kl": 0.02},
        source="jonasrothfuss/ProMP run_scripts/pro-mp_run_mujoco.py (HalfCheetahRandDirec, H 100, action scale "
               "10, inner lr 0.1, 5 Adam steps at 1e-3, clip 0.3, eta 5e-4) at MAML's CPU budget for cheetah_dir "
               "(20 tasks x 10 episodes x 300 iterations, against 40 x 20 x 1001 there), plus a departure: an "
               "outer trust region of KL 0.02 (--promp.outer-max-kl 0 for the authors' unbounded steps; "
               "docs/algorithms/promp.md)",
    ),
}


@struct.dataclass
class ProMPState(GradientState):
    """GradientState plus ``inner_kl_coef``: float32[K], eta for each inner step."""

    inner_kl_coef: jax.Array = None


@dataclasses.dataclass(frozen=True)
class ProMP(GradientMetaLearner):
    """ProMP on the gradient-based skeleton. See the module docstring."""

    name: ClassVar[str] = "promp"
    Config: ClassVar[type] = ProMPConfig
    TINY: ClassVar[ProMPConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.config.ppo_lr)

    def init(self, key: jax.Array) -> ProMPState:
        base = super().init(key)
        coef = jnp.full((self.config.num_inner_steps,), self.config.inner_kl_coef, jnp.float32)
        return ProMPState(params=base.params, opt_state=base.opt_state, inner_lr=base.inner_lr,
                          iteration=base.iteration, inner_kl_coef=coef)

    def _step_params(self, params: Params, inner_lr: jax.Array, batches: PGBatch) -> Params:
        """The parameters before each inner step, ``theta_0 .. theta_{K-1}`` (leaves [K, ...]), as
        functions of ``params`` (through the inner steps)."""

        def body(p, batch):
            return self.inner_update(p, batch, inner_lr, self.config.first_order), p

        return jax.lax.scan(body, self.adaptation_start(params), batches)[1]

    def _inner_dists(self, params: Params, inner_lr: jax.Array, batches: PGBatch) -> Any:
        """One task's action distributions at each inner step on that step's samples: [K, E, T]."""
        return jax.vmap(self.policy.dist)(self._step_params(params, inner_lr, batches), batches.traj.obs)

    def inner_kls(self, params: Params, inner_lr: jax.Array, batches: PGBatch, old: Any) -> jax.Array:
        """KL_k for k = 0..K-1, averaged over tasks and valid steps: float32[K]. batches: [N, K, E, T]."""
        new = jax.vmap(self._inner_dists, in_axes=(None, None, 0))(params, inner_lr, batches)
        kl = old.kl(new)  # [N, K, E, T]
        mask = batches.traj.mask
        return (kl * mask).sum(axis=(0, 2, 3)) / jnp.maximum(mask.sum(axis=(0, 2, 3)), 1.0)

    def outer_update(self, state: ProMPState, batches: PGBatch, post: PGBatch) -> tuple[Any, Any, Metrics]:
        c = self.config
        lr, coef = state.inner_lr, state.inner_kl_coef
        old_inner = jax.lax.stop_gradient(
            jax.vmap(self._inner_dists, in_axes=(None, None, 0))(state.params, lr, batches))
        old_post = jax.lax.stop_gradient(self.post_dists(state.params, lr, batches, post))

        def loss(params, _):
            clipped = self.ppo_loss(params, lr, batches, post)
            kls = self.inner_kls(params, lr, batches, old_inner)
            return clipped + jnp.mean(coef * kls), {"clipped": clipped, "inner_kl": kls}

        loss_before, _ = loss(state.params, None)
        if c.outer_max_kl > 0:
            def sampling_kl(params):  # the furthest any policy of the next iteration's sampling moves
                post_kl = surrogates.masked_mean(old_post.kl(self.post_dists(params, lr, batches, post)),
                                                 post.traj.mask)
                return jnp.maximum(post_kl, self.inner_kls(params, lr, batches, old_inner).max())

            new_params, opt_state, infos = ppo.update_epochs_within_kl(
                loss, self.optimizer, state.params, state.opt_state, (), c.ppo_epochs, sampling_kl, c.outer_max_kl)
            epochs_kept = {"train/outer_epochs": infos["accepted"].sum()}
        else:
            new_params, opt_state, infos = ppo.update_epochs(loss, self.optimizer, state.params, state.opt_state, (),
                                                             c.ppo_epochs)
            epochs_kept = {}
        loss_after, after = loss(new_params, None)
        kls = after["inner_kl"]
        if c.adaptive_inner_kl:
            coef = jnp.where(kls < c.target_inner_kl / 1.5, coef / 2.0,
                             jnp.where(kls > 1.5 * c.target_inner_kl, coef * 2.0, coef))
        metrics = {
            "train/outer_loss": loss_after,
            "train/outer_loss_before": loss_before,
            "train/clip_objective": -after["clipped"],
            "train/inner_kl": kls.mean(),
            "train/inner_kl_coef": coef.mean(),
            "train/kl": surrogates.masked_mean(old_post.kl(self.post_dists(new_params, lr, batches, post)),
                                               post.traj.mask),
            "train/grad_norm": infos["grad_norm"][0],
            **epochs_kept,
        }
        return (new_params, coef), opt_state, metrics

    def with_meta_params(self, state: ProMPState, meta: Any) -> ProMPState:
        params, coef = meta
        return state.replace(params=params, inner_kl_coef=coef)
