"""Returns, advantages, surrogate objectives and trust-region updates."""

from jmeta.rl import returns, surrogates, trpo

__all__ = ["returns", "surrogates", "trpo"]
