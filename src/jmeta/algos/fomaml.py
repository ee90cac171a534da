"""First-order MAML (Finn et al. 2017, Sec. 5.2; Nichol et al. 2018): MAML's meta-gradient with the
inner gradient treated as a constant, so no second derivatives flow through the adaptation.

Registered separately from ``maml`` so that it has its own presets and its own row in the results
tables; it is the gradient-based skeleton with ``first_order=True`` (which is what
pytorch-maml-rl's ``first-order`` config key and learn2learn's ``MAML(first_order=True)`` do). The
outer update is TRPO on the post-adaptation surrogate (or PPO-clip), the KL trust region and the
Fisher-vector products taken through the first-order adaptation. See docs/algorithms/fomaml.md.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner
from jmeta.algos.base import Preset
from jmeta.algos.maml import same_budget_as_maml
from jmeta.validation import check


@dataclasses.dataclass(frozen=True)
class FOMAMLConfig(GradientConfig):
    """First-order MAML: VPG inner steps, a first-order meta-gradient, a TRPO (or PPO-clip) outer update."""

    first_order: bool = True
    """Always True here (use --algo maml for the second-order meta-gradient)."""

    def validate(self, prefix: str, meta_batch_size: int | None = None) -> None:
        super().validate(prefix, meta_batch_size)
        check(self.first_order, prefix + ".first_order", "must be True (use --algo maml for the second-order "
              "meta-gradient)", self.first_order)


TINY = FOMAMLConfig(episodes_per_task=3, hidden_sizes=(16,), eval_adapt_steps=1, eval_episodes_per_task=2, cg_iters=3)

#: The same budgets as MAML's presets, so the two are compared at equal cost.
PRESETS: dict[str, Preset] = same_budget_as_maml("same budget")


@dataclasses.dataclass(frozen=True)
class FOMAML(GradientMetaLearner):
    """First-order MAML: the gradient-based skeleton with a first-order meta-gradient."""

    name: ClassVar[str] = "fomaml"
    Config: ClassVar[type] = FOMAMLConfig
    TINY: ClassVar[FOMAMLConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS
