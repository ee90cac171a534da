"""Reptile (Nichol, Achiam, Schulman 2018) for policy-gradient meta-RL.

Per task, K inner VPG steps from the current parameters (the skeleton's inner loop: rollouts, the
linear baseline, the inner surrogate, step size ``inner_lr``) give adapted parameters
``theta'_i``; the outer update moves the initialisation towards them,

    theta <- theta + outer_lr * mean_i (theta'_i - theta),

written as an optax step on the pseudo-gradient ``-(mean_i theta'_i - theta)`` (SGD with
``outer_lr`` by default, as learn2learn's Reptile example; Adam optional). No meta-gradient flows
through the adaptation: Reptile needs no second derivatives, no trust region and no
post-adaptation surrogate. With ``num_inner_steps = 1`` it reduces to joint training on the
tasks, so the default is 3 inner steps.

No reference implementation of Reptile for RL exists in the reference repositories (the paper's
experiments and learn2learn's example are supervised); this is jmeta's port, described in
docs/algorithms/reptile.md. The post-adaptation batch is still sampled, for the
``train/return_post`` metric and the same logging as the other methods.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import jax
import optax

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner, GradientState
from jmeta.algos.base import Preset
from jmeta.algos.maml import same_budget_as_maml
from jmeta.rl.pg import PGBatch
from jmeta.rl.surrogates import global_norm
from jmeta.types import Metrics, Params
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class ReptileConfig(GradientConfig):
    """Reptile: K inner VPG steps per task, the initialisation moved towards the adapted parameters."""

    num_inner_steps: int = 3
    """Inner VPG steps per task during meta-training (Reptile needs > 1 to differ from joint training)."""
    outer_optimizer: Literal["sgd", "adam"] = "sgd"
    """Optimiser of the outer step on the pseudo-gradient -(mean theta' - theta)."""
    outer_lr: float = 1.0
    """Outer step size epsilon (1.0 with SGD: the mean of the adapted parameters)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        super().validate(prefix, meta_batch_size)
        check(self.outer_optimizer in ("sgd", "adam"), prefix + ".outer_optimizer", "must be 'sgd' or 'adam'",
              self.outer_optimizer)
        check(self.outer_lr > 0, prefix + ".outer_lr", "must be > 0", self.outer_lr)


TINY = ReptileConfig(episodes_per_task=3, hidden_sizes=(16,), num_inner_steps=2, eval_adapt_steps=1,
                     eval_episodes_per_task=2)

PRESETS: dict[str, Preset] = same_budget_as_maml(
    "same budget, 3 inner steps; no RL reference for Reptile", num_inner_steps=3)


@dataclasses.dataclass(frozen=True)
class Reptile(GradientMetaLearner):
    """Reptile on the gradient-based skeleton's inner loop; the outer step replaces TRPO."""

    name: ClassVar[str] = "reptile"
    Config: ClassVar[type] = ReptileConfig
    TINY: ClassVar[ReptileConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

    @property
    def optimizer(self) -> optax.GradientTransformation:
        c = self.config
        return optax.sgd(c.outer_lr) if c.outer_optimizer == "sgd" else optax.adam(c.outer_lr)

    def init(self, key: jax.Array) -> GradientState:
        state = super().init(key)
        return state.replace(opt_state=self.optimizer.init(state.params))

    def outer_update(self, state: GradientState, batches: PGBatch, post: PGBatch) -> tuple[Params, Any, Metrics]:
        """``theta <- theta + eps * mean_i(theta'_i - theta)`` through optax (no meta-gradient)."""
        adapted = jax.vmap(lambda b: jax.lax.stop_gradient(
            self.adapt(state.params, state.inner_lr, b, first_order=True)))(batches)
        mean_adapted = jax.tree_util.tree_map(lambda x: x.mean(axis=0), adapted)
        pseudo_grad = jax.tree_util.tree_map(lambda a, p: p - a, mean_adapted, state.params)
        updates, opt_state = self.optimizer.update(pseudo_grad, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        return new_params, opt_state, {"train/outer_step_norm": global_norm(updates),
                                       "train/grad_norm": global_norm(pseudo_grad)}
