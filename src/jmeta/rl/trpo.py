"""Trust-region step: conjugate gradient on Fisher-vector products and a backtracking line search.

Follows Schulman et al. 2015 as implemented in rllab's ``ConjugateGradientOptimizer`` and
pytorch-maml-rl: direction ``s = F^{-1} g`` by CG with damping, step ``sqrt(2 delta / s^T F s) s``,
shrunk by ``backtrack_ratio`` until the loss improves and the mean KL is within ``max_kl``; if no
candidate is accepted the parameters are left unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

from jmeta.types import Params


@struct.dataclass
class TRPOInfo:
    """Diagnostics of one step (float32 scalars)."""

    loss_before: jax.Array
    loss_after: jax.Array
    kl_after: jax.Array
    step_fraction: jax.Array  # 0 when every candidate was rejected
    grad_norm: jax.Array
    cg_residual: jax.Array


def conjugate_gradient(
    matvec: Callable[[jax.Array], jax.Array], b: jax.Array, iters: int, residual_tol: float = 1e-10
) -> tuple[jax.Array, jax.Array]:
    """Approximately solves ``A x = b`` for symmetric positive-definite ``A`` given as ``matvec``.

    Runs at most ``iters`` iterations (static) and stops updating once the squared residual is
    below ``residual_tol``. Returns ``(x, squared_residual)``.
    """
    x, residual, rr = _conjugate_gradient(matvec, b, iters, residual_tol)
    return x, rr


def _conjugate_gradient(
    matvec: Callable[[jax.Array], jax.Array], b: jax.Array, iters: int, residual_tol: float = 1e-10
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`conjugate_gradient` that also returns the final residual vector ``r = b - A x``."""

    def body(_, carry):
        x, r, p, rr = carry
        active = rr > residual_tol
        ap = matvec(p)
        alpha = rr / jnp.maximum(jnp.vdot(p, ap), 1e-30)
        x_new = x + alpha * p
        r_new = r - alpha * ap
        rr_new = jnp.vdot(r_new, r_new)
        p_new = r_new + (rr_new / jnp.maximum(rr, 1e-30)) * p
        keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
        return keep(x_new, x), keep(r_new, r), keep(p_new, p), keep(rr_new, rr)

    x0 = jnp.zeros_like(b)
    init = (x0, b, b, jnp.vdot(b, b))
    x, r, _, rr = jax.lax.fori_loop(0, iters, body, init)
    return x, r, rr


def trpo_step(
    loss_fn: Callable[[Params], jax.Array],
    kl_fn: Callable[[Params], jax.Array],
    params: Params,
    max_kl: float | jax.Array,
    cg_iters: int = 10,
    cg_damping: float | jax.Array = 1e-5,
    backtrack_ratio: float | jax.Array = 0.8,
    max_backtracks: int = 15,
    fisher_vector_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> tuple[Params, TRPOInfo]:
    """One constrained step minimising ``loss_fn`` subject to ``kl_fn(new) <= max_kl``.

    ``kl_fn(params)`` must be the mean KL between the sampling policy and the policy at
    ``params`` (0 with zero gradient at the current ``params``); its Hessian there is the Fisher
    matrix. ``fisher_vector_fn`` (flat vector -> flat vector) may supply that product directly,
    e.g. in Gauss-Newton form ``J^T M J v`` (see :func:`gauss_newton_fvp`); otherwise it is the
    Hessian-vector product of ``kl_fn``, by forward-over-reverse differentiation.
    """
    flat, unravel = ravel_pytree(params)
    flat_loss = lambda x: loss_fn(unravel(x))  # noqa: E731
    flat_kl = lambda x: kl_fn(unravel(x))  # noqa: E731

    loss_before, grad = jax.value_and_grad(flat_loss)(flat)

    if fisher_vector_fn is None:
        # Linearise grad(KL) once: every CG iteration then reuses the stored residuals.
        _, kl_grad_linear = jax.linearize(jax.grad(flat_kl), flat)
        fisher_vector_fn = kl_grad_linear

    def fisher_vector(v: jax.Array) -> jax.Array:
        return fisher_vector_fn(v) + cg_damping * v

    direction, cg_r, residual = _conjugate_gradient(fisher_vector, -grad, cg_iters)
    # s^T A s without another product: CG keeps r = b - A s, so s^T A s = s^T (b - r), b = -grad.
    shs = 0.5 * jnp.vdot(direction, -grad - cg_r)
    full_step = direction * jnp.sqrt(max_kl / jnp.maximum(shs, 1e-12))

    def evaluate(fraction):
        candidate = flat + fraction * full_step
        return flat_loss(candidate), flat_kl(candidate)

    def cond(carry):
        i, accepted, *_ = carry
        return (i < max_backtracks) & ~accepted

    def body(carry):
        i, _, _, _, _ = carry
        fraction = backtrack_ratio**i
        loss, kl = evaluate(fraction)
        ok = jnp.isfinite(loss) & jnp.isfinite(kl) & (loss < loss_before) & (kl <= max_kl)
        return i + 1, ok, fraction, loss, kl

    init = (jnp.zeros((), jnp.int32), jnp.zeros((), bool), jnp.zeros(()), loss_before, jnp.zeros(()))
    _, accepted, fraction, loss_after, kl_after = jax.lax.while_loop(cond, body, init)
    fraction = jnp.where(accepted, fraction, 0.0)
    new_flat = flat + fraction * full_step
    info = TRPOInfo(
        loss_before=loss_before,
        loss_after=jnp.where(accepted, loss_after, loss_before),
        kl_after=jnp.where(accepted, kl_after, 0.0),
        step_fraction=fraction,
        grad_norm=jnp.linalg.norm(grad),
        cg_residual=residual,
    )
    return unravel(new_flat), info


def gauss_newton_fvp(
    dist_fn: Callable[[Params], Any], params: Params, mask: jax.Array
) -> Callable[[jax.Array], jax.Array]:
    """Fisher-vector product ``v -> J^T M J v / sum(mask)`` on flat parameter vectors.

    ``dist_fn(params)`` returns a batch of action distributions (leaves [..., event]) with a
    ``fisher_product`` method (the metric M); ``J`` is its Jacobian w.r.t. the parameters. At the
    current parameters this equals the Hessian of the masked mean KL from the current policy, but
    needs one linearised forward and one transposed pass per product instead of a third-order
    derivative (which matters when ``dist_fn`` differentiates through an inner adaptation step).
    """
    flat, unravel = ravel_pytree(params)
    dists, jvp_fn = jax.linearize(lambda x: dist_fn(unravel(x)), flat)
    vjp_fn = jax.linear_transpose(jvp_fn, flat)
    weight = mask / jnp.maximum(mask.sum(), 1.0)

    def fvp(v: jax.Array) -> jax.Array:
        metric = dists.fisher_product(jvp_fn(v))
        weighted = jax.tree_util.tree_map(lambda m: m * weight[..., None], metric)
        return vjp_fn(weighted)[0]

    return fvp
