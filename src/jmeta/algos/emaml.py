"""E-MAML (Stadie et al. 2018, "Some Considerations on Learning to Explore via Meta-Reinforcement
Learning"), as the ProMP repository implements it (``trpo_maml.py`` with ``exploration=True``).

MAML's meta-objective ignores how the pre-update policy's exploration changes the post-update
return. E-MAML adds, to each task's outer surrogate, the term

    - mean_t(R~_K,i,t) * mean_t(log pi_theta(a_t | s_t) on the task's pre-update samples)

where ``R~`` are the post-update per-step rewards standardised over all tasks' valid steps (the
authors' ``adj_avg_rewards``): the pre-update actions are made more likely when the adaptation
they led to paid off. The rest is MAML on the gradient-based skeleton with the authors' choices:
the naive inner objective (``inner_estimator="vpg"``, their ``inner_type='log_likelihood'``) and a
TRPO outer step. See docs/algorithms/emaml.md.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner
from jmeta.algos.base import Preset
from jmeta.algos.maml import same_budget_as_maml
from jmeta.rl import surrogates
from jmeta.rl.pg import PGBatch
from jmeta.types import Params
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class EMAMLConfig(GradientConfig):
    """E-MAML: MAML plus the exploration term of the meta-gradient (TRPO outer step)."""

    inner_estimator: str = "vpg"
    """Inner surrogate; the authors' E-MAML runs use the naive log-likelihood one ('vpg')."""
    exploration_weight: float = 1.0
    """Weight of the exploration term (1 in the authors' master code)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        super().validate(prefix, meta_batch_size)
        check(self.exploration_weight >= 0, prefix + ".exploration_weight", "must be >= 0", self.exploration_weight)


TINY = EMAMLConfig(episodes_per_task=3, hidden_sizes=(16,), eval_adapt_steps=1, eval_episodes_per_task=2, cg_iters=3)

PRESETS: dict[str, Preset] = same_budget_as_maml(
    "same budget; the exploration term and the log-likelihood inner objective of ProMP's "
    "run_scripts/e-maml_run_mujoco.py")


def standardized_rewards(rewards: jax.Array, mask: jax.Array) -> jax.Array:
    """``(r - mean) / (std + 1e-8)`` over every valid step of the batch (all tasks); 0 where masked."""
    count = jnp.maximum(mask.sum(), 1.0)
    mean = (rewards * mask).sum() / count
    std = jnp.sqrt((((rewards - mean) * mask) ** 2).sum() / count)
    return (rewards - mean) / (std + 1e-8) * mask


@dataclasses.dataclass(frozen=True)
class EMAML(GradientMetaLearner):
    """E-MAML: the skeleton's TRPO outer loss plus the exploration term."""

    name: ClassVar[str] = "emaml"
    Config: ClassVar[type] = EMAMLConfig
    TINY: ClassVar[EMAMLConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

    def exploration_term(self, params: Params, batches: PGBatch, post: PGBatch) -> jax.Array:
        """Mean over tasks of ``-mean_t(R~_post) * mean_t(log pi_theta on pre-update samples)``.

        batches: [N, K, E, T] (step 0 is the pre-update batch); post: [N, E, T]."""
        pre = jax.tree_util.tree_map(lambda x: x[:, 0], batches.traj)
        log_prob = jax.vmap(self.policy.log_prob, in_axes=(None, 0, 0))(params, pre.obs, pre.action)  # [N, E, T]
        pre_ll = jax.vmap(surrogates.masked_mean)(log_prob, pre.mask)  # [N]
        adjusted = jax.lax.stop_gradient(standardized_rewards(post.traj.reward, post.traj.mask))
        post_reward = jax.vmap(surrogates.masked_mean)(adjusted, post.traj.mask)  # [N]
        return -(post_reward * pre_ll).mean()

    def outer_loss(self, params: Params, inner_lr: jax.Array, batches: PGBatch, post: PGBatch) -> jax.Array:
        base = super().outer_loss(params, inner_lr, batches, post)
        return base + self.config.exploration_weight * self.exploration_term(params, batches, post)
