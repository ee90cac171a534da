"""Flax networks as pure functions over params pytrees."""

from jmeta.networks import baseline
from jmeta.networks.distributions import Categorical, DiagGaussian
from jmeta.networks.policies import (
    ACTIVATIONS,
    MLP,
    CategoricalMLPPolicy,
    GaussianMLPPolicy,
    Policy,
    ValueMLP,
)

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Categorical",
    "CategoricalMLPPolicy",
    "DiagGaussian",
    "GaussianMLPPolicy",
    "Policy",
    "ValueMLP",
    "baseline",
]
