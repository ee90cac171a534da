"""The functional inner loop: inner_step and adapt against manual gradient steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jmeta import adaptation


def _params():
    return {
        "w": jnp.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.1]]),
        "b": jnp.array([0.1, -0.2]),
    }


def _batch(seed, n=5):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"x": jax.random.normal(k1, (n, 3)), "y": jax.random.normal(k2, (n, 2))}


def loss(params, batch):
    """A non-quadratic loss so that second derivatives depend on the params."""
    pred = jnp.tanh(batch["x"] @ params["w"] + params["b"])
    return jnp.mean((pred - batch["y"]) ** 2) + 0.1 * jnp.sum(params["w"] ** 4)


def _assert_tree_close(a, b, **kw):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


def _tree_diff(a, b):
    return max(
        float(jnp.abs(x - y).max())
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


@pytest.mark.parametrize(
    "lr", [0.1, jnp.float32(0.1), np.float32(0.25)], ids=["float", "jax-scalar", "np-scalar"]
)
def test_inner_step_scalar_lr(lr):
    params, batch = _params(), _batch(0)
    got = jax.jit(adaptation.inner_step, static_argnums=(0,))(loss, params, batch, lr)
    grads = jax.jit(jax.grad(loss))(params, batch)
    want = jax.tree_util.tree_map(lambda p, g: p - float(lr) * g, params, grads)
    _assert_tree_close(got, want, rtol=1e-6, atol=1e-7)
    assert _tree_diff(got, params) > 1e-3


def test_inner_step_pytree_lr():
    params, batch = _params(), _batch(1)
    lr = {"w": jnp.full((3, 2), 0.2).at[0, 0].set(0.0), "b": jnp.array(0.05)}
    got = adaptation.inner_step(loss, params, batch, lr)
    grads = jax.grad(loss)(params, batch)
    np.testing.assert_allclose(got["w"], params["w"] - lr["w"] * grads["w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["b"], params["b"] - 0.05 * grads["b"], rtol=1e-6, atol=1e-7)
    assert float(got["w"][0, 0]) == float(params["w"][0, 0])  # zero rate leaves that entry alone


def test_inner_step_lr_is_traced_without_recompiling():
    params, batch = _params(), _batch(2)
    traces = []

    def step(lr):
        traces.append(1)
        return adaptation.inner_step(loss, params, batch, lr)

    jitted = jax.jit(step)
    a = jitted(jnp.float32(0.1))
    b = jitted(jnp.float32(0.3))
    assert len(traces) == 1
    grads = jax.grad(loss)(params, batch)
    np.testing.assert_allclose(b["b"] - params["b"], 3 * (a["b"] - params["b"]), rtol=1e-5)
    np.testing.assert_allclose(a["b"], params["b"] - 0.1 * grads["b"], rtol=1e-6)


def test_adapt_equals_k_manual_steps():
    params = _params()
    batches = [_batch(s) for s in (3, 4, 5)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batches)
    lr = jnp.float32(0.2)
    got = jax.jit(adaptation.adapt, static_argnums=(0,))(loss, params, stacked, lr)
    want = params
    for b in batches:
        g = jax.grad(loss)(want, b)
        want = jax.tree_util.tree_map(lambda p, gg: p - 0.2 * gg, want, g)
    _assert_tree_close(got, want, rtol=1e-5, atol=1e-6)
    # Order matters: reversed batches give a different result.
    rev = jax.tree_util.tree_map(lambda x: x[::-1], stacked)
    assert _tree_diff(adaptation.adapt(loss, params, rev, lr), got) > 1e-5


def _downstream(params):
    x = jnp.array([[1.0, -0.5, 0.3], [0.2, 0.9, -1.0]])
    return jnp.sum(jnp.sin(x @ params["w"] + params["b"]))


def test_first_order_gradient():
    params = _params()
    batches = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), _batch(6), _batch(7))
    lr = jnp.float32(0.3)

    def meta(p, first_order):
        return _downstream(adaptation.adapt(loss, p, batches, lr, first_order=first_order))

    g2 = jax.jit(jax.grad(lambda p: meta(p, False)))(params)
    g1 = jax.jit(jax.grad(lambda p: meta(p, True)))(params)
    assert _tree_diff(g1, g2) > 1e-3

    # First order == gradient with stop_gradient on each inner gradient, written by hand.
    def manual_first_order(p):
        for i in range(2):
            b = jax.tree_util.tree_map(lambda x, i=i: x[i], batches)
            g = jax.lax.stop_gradient(jax.grad(loss)(p, b))
            p = jax.tree_util.tree_map(lambda pp, gg: pp - lr * gg, p, g)
        return _downstream(p)

    def manual_second_order(p):
        for i in range(2):
            b = jax.tree_util.tree_map(lambda x, i=i: x[i], batches)
            g = jax.grad(loss)(p, b)
            p = jax.tree_util.tree_map(lambda pp, gg: pp - lr * gg, p, g)
        return _downstream(p)

    _assert_tree_close(g1, jax.jit(jax.grad(manual_first_order))(params), rtol=1e-5, atol=1e-6)
    _assert_tree_close(g2, jax.jit(jax.grad(manual_second_order))(params), rtol=1e-4, atol=1e-5)
    # With first order the gradient is just grad downstream at the adapted params
    # (the Jacobian of the adaptation is the identity).
    adapted = jax.jit(adaptation.adapt, static_argnums=(0, 4))(loss, params, batches, lr, True)
    _assert_tree_close(g1, jax.jit(jax.grad(_downstream))(adapted), rtol=1e-5, atol=1e-6)


def test_second_order_single_step_matches_hessian_formula():
    """d/dtheta f(theta - lr grad L(theta)) = (I - lr H_L) grad f(theta')."""
    params, batch = _params(), _batch(8)
    lr = 0.2
    flat, unravel = ravel_pytree(params)
    flat_loss = lambda v: loss(unravel(v), batch)  # noqa: E731
    flat_down = lambda v: _downstream(unravel(v))  # noqa: E731

    @jax.jit
    def expected(v):
        adapted = v - lr * jax.grad(flat_loss)(v)
        return (jnp.eye(v.size) - lr * jax.hessian(flat_loss)(v)) @ jax.grad(flat_down)(adapted)

    want = expected(flat)
    got = jax.jit(
        jax.grad(lambda p: _downstream(adaptation.inner_step(loss, p, batch, jnp.float32(lr))))
    )(params)
    np.testing.assert_allclose(ravel_pytree(got)[0], want, rtol=1e-4, atol=1e-5)


def test_inner_step_lr_pytree_of_any_container():
    """A per-parameter rate in any pytree container matching params (here a Flax FrozenDict)."""
    from flax.core import freeze

    params, batch = freeze(_params()), _batch(9)
    lr = freeze({"w": jnp.full((3, 2), 0.1), "b": jnp.array([0.0, 0.5])})
    got = adaptation.inner_step(loss, params, batch, lr)
    grads = jax.grad(loss)(params, batch)
    np.testing.assert_allclose(got["w"], params["w"] - 0.1 * grads["w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        got["b"], params["b"] - jnp.array([0.0, 0.5]) * grads["b"], rtol=1e-6, atol=1e-7
    )
