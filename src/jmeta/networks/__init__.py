"""Flax networks as pure functions over params pytrees."""

from jmeta.networks import baseline
from jmeta.networks.distributions import Categorical, DiagGaussian, TanhGaussian
from jmeta.networks.mlp import ACTIVATIONS, MLP
from jmeta.networks.policies import MLPPolicy, Policy, ValueMLP, policy_for

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Categorical",
    "DiagGaussian",
    "MLPPolicy",
    "Policy",
    "TanhGaussian",
    "ValueMLP",
    "baseline",
    "policy_for",
]
