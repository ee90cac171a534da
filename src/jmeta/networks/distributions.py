"""Action distributions as pytrees with pure methods (batch axes lead, event axis last)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class DiagGaussian:
    """Diagonal Gaussian. mean, log_std: [..., d]."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, x: jax.Array) -> jax.Array:
        """[..., d] -> [...]."""
        z = (x - self.mean) * jnp.exp(-self.log_std)
        return -0.5 * jnp.sum(z**2 + 2.0 * self.log_std + _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        return jnp.sum(self.log_std + 0.5 * (_LOG_2PI + 1.0), axis=-1)

    def kl(self, other: DiagGaussian) -> jax.Array:
        """KL(self || other), [...]."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = ((self.mean - other.mean) * jnp.exp(-other.log_std)) ** 2
        return 0.5 * jnp.sum(var_ratio + mean_term - 1.0 - 2.0 * (self.log_std - other.log_std), axis=-1)

    def mode(self) -> jax.Array:
        return self.mean

    def fisher_product(self, tangent: DiagGaussian) -> DiagGaussian:
        """Fisher information of the (mean, log_std) parametrisation applied to a tangent.

        Equals the Hessian of ``KL(self || q)`` w.r.t. q's parameters at q = self:
        ``1 / sigma^2`` on the mean and ``2`` on the log-std, no cross terms.
        """
        return DiagGaussian(mean=tangent.mean * jnp.exp(-2.0 * self.log_std), log_std=2.0 * tangent.log_std)


@struct.dataclass
class Categorical:
    """Categorical over the last axis. logits: [..., n]."""

    logits: jax.Array

    def _log_probs(self) -> jax.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, x: jax.Array) -> jax.Array:
        """int [...] -> [...]."""
        return jnp.take_along_axis(self._log_probs(), x[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        logp = self._log_probs()
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def kl(self, other: Categorical) -> jax.Array:
        logp, logq = self._log_probs(), other._log_probs()
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def fisher_product(self, tangent: Categorical) -> Categorical:
        """Fisher information w.r.t. the logits, ``diag(p) - p p^T``, applied to a tangent."""
        p = jnp.exp(self._log_probs())
        t = tangent.logits
        return Categorical(logits=p * t - p * jnp.sum(p * t, axis=-1, keepdims=True))


@struct.dataclass
class TanhGaussian:
    """``a = tanh(u)``, ``u ~ N(mean, exp(log_std)^2)`` diagonal: actions in (-1, 1)^d (SAC, PEARL).

    mean, log_std: [..., d]. ``log_prob(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)`` with the
    correction written as ``2 (log 2 - u - softplus(-2u))`` (stable for large |u|). Prefer
    :meth:`sample_and_log_prob`, which uses the pre-squash sample ``u``; :meth:`log_prob` inverts
    ``a`` with ``atanh`` (clipped to ``1 - 1e-6``), which loses precision near the bounds.
    There is no closed-form entropy or KL; SAC estimates the entropy with ``-log_prob`` of samples.
    """

    mean: jax.Array
    log_std: jax.Array

    def _base(self) -> DiagGaussian:
        return DiagGaussian(self.mean, self.log_std)

    @staticmethod
    def _log_det_jacobian(u: jax.Array) -> jax.Array:
        """``sum_i log(1 - tanh(u_i)^2)``: [..., d] -> [...]."""
        return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(action [..., d], log_prob [...])`` from one reparameterised draw (differentiable)."""
        base = self._base()
        u = base.sample(key)
        return jnp.tanh(u), base.log_prob(u) - self._log_det_jacobian(u)

    def sample(self, key: jax.Array) -> jax.Array:
        return jnp.tanh(self._base().sample(key))

    def log_prob(self, x: jax.Array) -> jax.Array:
        """[..., d] actions in (-1, 1) -> [...]."""
        u = jnp.arctanh(jnp.clip(x, -1.0 + 1e-6, 1.0 - 1e-6))
        return self._base().log_prob(u) - self._log_det_jacobian(u)

    def mode(self) -> jax.Array:
        return jnp.tanh(self.mean)
