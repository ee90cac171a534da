"""Context encoders: PEARL's permutation-invariant posterior over a task latent.

Each context transition ``c_n = (s, a, r[, s'])`` goes through one MLP to a Gaussian factor
``N(mu_n, sigma_n^2)`` (``sigma_n^2 = softplus(raw)``, floored at 1e-7 as oyster does); the
posterior is their product (:func:`product_of_gaussians`):

    sigma^2 = 1 / sum_n (1 / sigma_n^2),    mu = sigma^2 * sum_n mu_n / sigma_n^2,

which does not depend on the order of the transitions. The deterministic option (no information
bottleneck) is the mean of the ``mu_n``. Contexts are fixed-size arrays with a validity mask, so
the posterior of a partly filled context has a static shape; with no valid transition the
posterior is the prior ``N(0, I)``.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
from flax import struct

from jmeta.networks.mlp import RlkitMLP, activation_fn
from jmeta.types import Params

#: oyster's floor on the factor variances.
MIN_VARIANCE = 1e-7


@struct.dataclass
class GaussianPosterior:
    """Diagonal Gaussian over the latent. mean, variance: [..., latent]."""

    mean: jax.Array
    variance: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        """A reparameterised draw ``mean + sqrt(variance) * eps``, [..., latent]."""
        return self.mean + jnp.sqrt(self.variance) * jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def kl_to_standard_normal(self) -> jax.Array:
        """``KL(N(mean, variance) || N(0, I))``, [...]."""
        return 0.5 * jnp.sum(self.variance + self.mean**2 - 1.0 - jnp.log(self.variance), axis=-1)

    @staticmethod
    def prior(latent_size: int) -> GaussianPosterior:
        return GaussianPosterior(jnp.zeros((latent_size,), jnp.float32), jnp.ones((latent_size,), jnp.float32))


def product_of_gaussians(means: jax.Array, variances: jax.Array, mask: jax.Array) -> GaussianPosterior:
    """Product of the valid factors. means, variances: [N, latent]; mask: [N] -> posterior [latent].

    With no valid factor, returns the standard normal prior."""
    chex.assert_equal_shape([means, variances])
    chex.assert_rank(mask, 1)
    precision = mask[:, None] / jnp.maximum(variances, MIN_VARIANCE)
    total = precision.sum(axis=0)
    any_valid = mask.sum() > 0
    variance = 1.0 / jnp.where(any_valid, total, 1.0)
    mean = variance * (precision * means).sum(axis=0)
    return GaussianPosterior(jnp.where(any_valid, mean, 0.0), jnp.where(any_valid, variance, 1.0))


def mean_of_factors(means: jax.Array, mask: jax.Array) -> jax.Array:
    """Deterministic context: the mean of the valid ``mu_n`` (zeros with none). [N, latent], [N] -> [latent]."""
    chex.assert_rank([means, mask], [2, 1])
    return (mask[:, None] * means).sum(axis=0) / jnp.maximum(mask.sum(), 1.0)


@dataclasses.dataclass(frozen=True)
class ContextEncoder:
    """PEARL's ``MlpEncoder``: an MLP per context transition (rlkit's init) to ``2 * latent_size`` numbers.

    ``probabilistic`` (the information bottleneck): factors ``N(mu_n, softplus(raw_n))`` combined by
    :func:`product_of_gaussians`; otherwise ``z`` is the mean of the ``mu_n`` (variance 0).
    """

    latent_size: int = 5
    hidden_sizes: tuple[int, ...] = (200, 200, 200)
    activation: str = "relu"
    probabilistic: bool = True

    def __post_init__(self):
        activation_fn(self.activation)

    @property
    def _net(self) -> RlkitMLP:
        return RlkitMLP(tuple(self.hidden_sizes), 2 * self.latent_size, 1, self.activation, 3e-3)

    def init(self, key: jax.Array, transition_size: int) -> Params:
        return self._net.init(key, jnp.zeros((transition_size,), jnp.float32))["params"]

    def factors(self, params: Params, context: jax.Array) -> tuple[jax.Array, jax.Array]:
        """context [..., transition_size] -> (means, variances) [..., latent_size]."""
        (out,) = self._net.apply({"params": params}, context)
        mean, raw = jnp.split(out, 2, axis=-1)
        return mean, jnp.maximum(jax.nn.softplus(raw), MIN_VARIANCE)

    def posterior(self, params: Params, context: jax.Array, mask: jax.Array) -> GaussianPosterior:
        """context [N, transition_size], mask [N] -> the posterior over z ([latent_size]); for the
        deterministic encoder a point mass (variance 0) at the mean of the factor means."""
        means, variances = self.factors(params, context)
        if self.probabilistic:
            return product_of_gaussians(means, variances, mask)
        return GaussianPosterior(mean_of_factors(means, mask), jnp.zeros((self.latent_size,), jnp.float32))
