"""The functional inner loop shared by gradient-based meta-learners (MAML, ProMP, CAVIA...).

An inner step is ``theta' = theta - lr * grad L_inner(theta; batch)`` on a params pytree, with
the data ``batch`` held fixed (it was sampled with ``stop_gradient`` parameters). Second-order by
default: differentiating ``theta'`` w.r.t. ``theta`` goes through ``grad L_inner``; with
``first_order=True`` the inner gradient is treated as a constant. The learning rate is an array
(scalar or a pytree like ``params``), so changing it never recompiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jmeta.types import Params

#: ``inner_loss(params, batch) -> scalar`` to be minimised by the inner step.
InnerLoss = Callable[[Params, Any], jax.Array]


def inner_step(
    inner_loss: InnerLoss, params: Params, batch: Any, lr: jax.Array | Params, first_order: bool = False
) -> Params:
    """One gradient step on ``inner_loss``. ``lr``: scalar array or a pytree matching ``params``."""
    grads = jax.grad(inner_loss)(params, batch)
    if first_order:
        grads = jax.lax.stop_gradient(grads)
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(lr)):  # one rate for every leaf
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
    return jax.tree_util.tree_map(lambda p, g, a: p - a * g, params, grads, lr)


def adapt(
    inner_loss: InnerLoss, params: Params, batches: Any, lr: jax.Array | Params, first_order: bool = False
) -> Params:
    """Applies one inner step per batch in ``batches`` (leaves stacked on a leading K axis)."""

    def body(p, batch):
        return inner_step(inner_loss, p, batch, lr, first_order), None

    adapted, _ = jax.lax.scan(body, params, batches)
    return adapted
