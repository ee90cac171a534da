"""The shared update layer: returns, surrogate objectives, the policy-gradient batch, PPO and TRPO."""

from jmeta.rl import pg, ppo, returns, surrogates, trpo

__all__ = ["pg", "ppo", "returns", "surrogates", "trpo"]
