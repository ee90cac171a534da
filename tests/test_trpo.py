"""Conjugate gradient and the TRPO step on quadratic problems with analytic answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmeta.rl.trpo import _conjugate_gradient, conjugate_gradient, trpo_step


def _spd(n, seed, cond=10.0):
    """A random SPD matrix with eigenvalues in [1, cond]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.linspace(1.0, cond, n)
    return (q * eig) @ q.T


@pytest.mark.parametrize("seed", [0, 1])
def test_cg_solves_spd_system(seed):
    A = _spd(10, seed)
    b = np.random.default_rng(seed + 10).normal(size=10)
    A32, b32 = jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32)
    solve = jax.jit(lambda bb: conjugate_gradient(lambda v: A32 @ v, bb, 10))
    x, rr = solve(b32)
    want = np.linalg.solve(A, b)
    assert np.linalg.norm(np.asarray(x) - want) / np.linalg.norm(want) < 1e-4
    assert float(rr) < 1e-6
    # Too few iterations do not solve it (the test can fail).
    x2, rr2 = conjugate_gradient(lambda v: A32 @ v, b32, 2)
    assert np.linalg.norm(np.asarray(x2) - want) / np.linalg.norm(want) > 1e-2
    assert float(rr2) > 1e-4


@pytest.mark.parametrize("iters", [2, 10])
def test_cg_residual_gives_the_step_curvature_without_another_product(iters):
    """trpo_step takes s^T A s as s^T (b - r) from CG's residual instead of one more Fisher-vector
    product: equal to the explicit product whether or not CG has converged."""
    A = jnp.asarray(_spd(12, 3, cond=50.0), jnp.float32)
    b = jnp.asarray(np.random.default_rng(4).normal(size=12), jnp.float32)
    x, r, _ = _conjugate_gradient(lambda v: A @ v, b, iters)
    np.testing.assert_allclose(np.asarray(r), np.asarray(b - A @ x), atol=1e-4)
    np.testing.assert_allclose(float(jnp.vdot(x, b - r)), float(x @ A @ x), rtol=1e-4)


def test_cg_stops_when_residual_is_zero():
    b = jnp.array([1.0, -2.0, 3.0])
    # Identity: exact after one iteration; later iterations must not produce NaN (0/0).
    x, rr = conjugate_gradient(lambda v: v, b, 10)
    np.testing.assert_allclose(x, b, rtol=1e-6)
    assert float(rr) == 0.0
    assert np.all(np.isfinite(np.asarray(x)))
    # Zero right-hand side: zero solution.
    x0, rr0 = conjugate_gradient(lambda v: 2.0 * v, jnp.zeros(3), 5)
    np.testing.assert_array_equal(x0, np.zeros(3))
    assert float(rr0) == 0.0
    # Two distinct eigenvalues: exact after two iterations.
    D = jnp.diag(jnp.array([1.0, 1.0, 4.0, 4.0]))
    x, rr = conjugate_gradient(lambda v: D @ v, jnp.array([1.0, 2.0, 4.0, 8.0]), 10)
    np.testing.assert_allclose(x, [1.0, 2.0, 1.0, 2.0], rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(x)))


def _quadratic_problem(seed=3):
    n = 4
    A = _spd(n, seed, cond=5.0)
    rng = np.random.default_rng(seed)
    p0 = rng.normal(size=n)
    g = rng.normal(size=n)
    return A, p0, g


def test_trpo_step_matches_natural_gradient_step():
    A, p0, g = _quadratic_problem()
    A32, p0_32, g32 = (jnp.asarray(x, jnp.float32) for x in (A, p0, g))
    max_kl = 0.01
    # loss: linear in the step plus a weak curvature, so the full natural step improves it.
    loss_fn = lambda p: g32 @ (p["w"] - p0_32) + 0.1 * jnp.sum((p["w"] - p0_32) ** 2)  # noqa: E731
    kl_fn = lambda p: 0.5 * (p["w"] - p0_32) @ A32 @ (p["w"] - p0_32)  # noqa: E731
    params = {"w": p0_32}
    new, info = jax.jit(lambda p: trpo_step(loss_fn, kl_fn, p, max_kl))(params)
    ainv_g = np.linalg.solve(A, g)
    want = p0 - np.sqrt(2 * max_kl / (g @ ainv_g)) * ainv_g
    assert float(info.step_fraction) == 1.0
    np.testing.assert_allclose(new["w"], want, rtol=1e-3, atol=1e-4)
    assert float(info.kl_after) <= max_kl
    np.testing.assert_allclose(info.kl_after, max_kl, rtol=1e-3)  # the full step uses the budget
    assert float(info.loss_after) < float(info.loss_before)
    np.testing.assert_allclose(info.loss_after, loss_fn(new), rtol=1e-5)
    np.testing.assert_allclose(info.loss_before, 0.0, atol=1e-7)
    np.testing.assert_allclose(info.grad_norm, np.linalg.norm(g), rtol=1e-5)
    # The step is along A^-1 g, not along g (A is far from the identity).
    step = np.asarray(new["w"]) - p0
    cos_nat = -step @ ainv_g / (np.linalg.norm(step) * np.linalg.norm(ainv_g))
    cos_grad = -step @ g / (np.linalg.norm(step) * np.linalg.norm(g))
    assert cos_nat > 0.9999 and cos_grad < 0.99


def test_trpo_step_backtracks_when_full_step_is_worse():
    A, p0, g = _quadratic_problem(seed=5)
    A32, p0_32, g32 = (jnp.asarray(x, jnp.float32) for x in (A, p0, g))
    max_kl = 0.05
    ainv_g = np.linalg.solve(A, g)
    full = -np.sqrt(2 * max_kl / (g @ ainv_g)) * ainv_g
    # Strong curvature along the step: the full step overshoots and raises the loss.
    c = float(2.0 * abs(g @ full) / (full @ full))  # loss(full) = g.full + c |full|^2 > 0
    loss_fn = lambda p: g32 @ (p - p0_32) + c * jnp.sum((p - p0_32) ** 2)  # noqa: E731
    kl_fn = lambda p: 0.5 * (p - p0_32) @ A32 @ (p - p0_32)  # noqa: E731
    new, info = trpo_step(loss_fn, kl_fn, p0_32, max_kl)
    frac = float(info.step_fraction)
    assert 0.0 < frac < 1.0
    # The first accepted fraction 0.8^i: loss(f full) < 0 <=> f < |g.full| / (c |full|^2) = 0.5.
    assert frac == pytest.approx(0.8**4, rel=1e-5)  # 0.8^3 = 0.512 fails, 0.8^4 = 0.41 is accepted
    np.testing.assert_allclose(new, p0 + frac * full, rtol=1e-3, atol=1e-4)
    assert float(info.loss_after) < float(info.loss_before)
    assert float(info.kl_after) <= max_kl


def test_trpo_step_rejects_when_loss_cannot_decrease():
    A, p0, g = _quadratic_problem(seed=7)
    A32, p0_32, g32 = (jnp.asarray(x, jnp.float32) for x in (A, p0, g))
    kl_fn = lambda p: 0.5 * (p - p0_32) @ A32 @ (p - p0_32)  # noqa: E731
    # Infinite loss anywhere but at p0, where the gradient is g: every candidate is rejected.
    inf_loss = lambda p: jnp.where(jnp.sum((p - p0_32) ** 2) > 0, jnp.inf, g32 @ (p - p0_32))  # noqa: E731
    # Huge curvature: even the smallest backtracked step (0.8^14 of the full one) increases it.
    steep_loss = lambda p: g32 @ (p - p0_32) + 1e6 * jnp.sum((p - p0_32) ** 2)  # noqa: E731
    # At a minimum: zero gradient, zero direction, nothing improves.
    flat_loss = lambda p: jnp.sum((p - p0_32) ** 2)  # noqa: E731
    for loss_fn in (inf_loss, steep_loss, flat_loss):
        new, info = jax.jit(lambda p, f=loss_fn: trpo_step(f, kl_fn, p, 0.01))(p0_32)
        np.testing.assert_array_equal(new, p0_32)
        assert float(info.step_fraction) == 0.0
        assert float(info.loss_after) == float(info.loss_before)
        assert float(info.kl_after) == 0.0
        assert np.all(np.isfinite(np.asarray(new)))


def test_trpo_step_on_policy_kl():
    """A Gaussian-mean policy: KL to the old policy is 0.5 |mu - mu0|^2 / sigma^2 per dimension."""
    sigma = 0.5
    mu0 = jnp.array([0.2, -0.1])
    target = jnp.array([1.0, 1.0])
    loss_fn = lambda p: jnp.sum((p["mu"] - target) ** 2)  # noqa: E731
    kl_fn = lambda p: 0.5 * jnp.sum((p["mu"] - mu0) ** 2) / sigma**2  # noqa: E731
    new, info = trpo_step(loss_fn, kl_fn, {"mu": mu0}, 0.02)
    step = np.asarray(new["mu"] - mu0)
    # Isotropic Fisher: the step is along -grad with length sqrt(2 * 0.02) * sigma.
    grad = 2 * np.asarray(mu0 - target)
    np.testing.assert_allclose(step / np.linalg.norm(step), -grad / np.linalg.norm(grad), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(step), np.sqrt(2 * 0.02) * sigma, rtol=1e-3)
    assert float(info.kl_after) <= 0.02 and float(info.loss_after) < float(info.loss_before)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_gauss_newton_fvp_equals_kl_hessian_vector_product(kind):
    """J^T M J v equals the Hessian-vector product of the masked mean KL at the current params."""
    from jax.flatten_util import ravel_pytree

    from jmeta.networks.policies import MLPPolicy
    from jmeta.rl.surrogates import masked_mean
    from jmeta.rl.trpo import gauss_newton_fvp

    policy = MLPPolicy.gaussian(3, (8,), "tanh", state_dependent_std=True) if kind == "gaussian" else MLPPolicy.categorical(4, (8,), "tanh")
    params = policy.init(jax.random.key(0), (5,))
    obs = jax.random.normal(jax.random.key(1), (6, 7, 5))
    mask = (jnp.arange(7)[None, :] < jnp.array([7, 3, 5, 7, 1, 6])[:, None]).astype(jnp.float32)
    old = jax.lax.stop_gradient(policy.dist(params, obs))
    flat, unravel = ravel_pytree(params)

    def kl(x):
        return masked_mean(old.kl(policy.dist(unravel(x), obs)), mask)

    fvp = gauss_newton_fvp(lambda p: policy.dist(p, obs), params, mask)
    for seed in range(3):
        v = jax.random.normal(jax.random.key(10 + seed), flat.shape)
        expected = jax.jvp(jax.grad(kl), (flat,), (v,))[1]
        np.testing.assert_allclose(np.asarray(fvp(v)), np.asarray(expected), rtol=2e-4, atol=1e-6)
