"""Meta-SGD (Li et al. 2017): MAML with a learned inner step size for every parameter.

The inner step is ``theta' = theta - alpha * grad L_inner(theta)`` with ``alpha`` a pytree shaped
like the policy parameters (initialised to ``inner_lr`` everywhere), and the outer update optimises
``(theta, alpha)`` together through the adaptation: TRPO (the paper's RL setting: VPG inner step,
TRPO outer step, 2D navigation and locomotion) with the trust region on the post-adaptation
policies, or PPO-clip. ``alpha`` may become negative or zero per parameter, as in the paper.
Everything else is the gradient-based skeleton. See docs/algorithms/metasgd.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner, GradientState
from jmeta.algos.base import Preset
from jmeta.algos.maml import same_budget_as_maml
from jmeta.types import Params


@dataclasses.dataclass(frozen=True)
class MetaSGDConfig(GradientConfig):
    """Meta-SGD: per-parameter inner step sizes learned with the policy by the outer update."""

    inner_lr: float = 0.1
    """Initial value of every per-parameter inner step size (learned from there)."""


TINY = MetaSGDConfig(episodes_per_task=3, hidden_sizes=(16,), eval_adapt_steps=1, eval_episodes_per_task=2, cg_iters=3)

PRESETS: dict[str, Preset] = same_budget_as_maml("same budget")


@dataclasses.dataclass(frozen=True)
class MetaSGD(GradientMetaLearner):
    """Meta-SGD: the skeleton whose meta-parameters are ``(params, inner_lr)``, ``inner_lr`` a pytree."""

    name: ClassVar[str] = "metasgd"
    Config: ClassVar[type] = MetaSGDConfig
    TINY: ClassVar[MetaSGDConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

    def initial_inner_lr(self, params: Params) -> Params:
        return jax.tree_util.tree_map(lambda p: jnp.full(p.shape, self.config.inner_lr, jnp.float32), params)

    def meta_params(self, state: GradientState) -> Any:
        return (state.params, state.inner_lr)

    def unpack(self, meta: Any, state: GradientState) -> tuple[Params, Params]:
        return meta

    def with_meta_params(self, state: GradientState, meta: Any) -> GradientState:
        params, inner_lr = meta
        return state.replace(params=params, inner_lr=inner_lr)
