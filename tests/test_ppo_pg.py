"""The shared update layer: PPO's loss and update loops (``jmeta.rl.ppo``) and the policy-gradient
batch (``jmeta.rl.pg``), against hand-computed values, with and without jit (chex variants)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmeta.rl import ppo
from jmeta.rl.pg import pg_batch
from jmeta.types import Trajectory


class PPOLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed_example(self):
        # Two valid steps and one masked: ratios e^0.5 (clipped at 1.2 for A > 0) and e^-0.5 (clipped at
        # 0.8 for A < 0: min(0.607 * -1, 0.8 * -1) = -0.8).
        log_prob = jnp.array([0.5, -0.5, 3.0])
        old = jnp.zeros(3)
        adv = jnp.array([2.0, -1.0, 100.0])
        mask = jnp.array([1.0, 1.0, 0.0])
        value = jnp.array([1.0, 0.0, 5.0])
        old_value = jnp.array([0.0, 0.0, 0.0])
        target = jnp.array([2.0, 1.0, 0.0])
        entropy = jnp.array([0.3, 0.5, 9.0])
        loss_fn = self.variant(lambda *a: ppo.ppo_loss(*a, clip_eps=0.2, value_clip_eps=0.5, value_coef=0.5,
                                                       entropy_coef=0.01))
        total, info = loss_fn(log_prob, old, adv, value, old_value, target, entropy, mask)
        surrogate = (1.2 * 2.0 + -0.8) / 2
        # Value clipping: step 0 moves 1.0 from the old value, clipped to 0.5: max(1, 2.25) = 2.25; step 1: 1.
        value_loss = 0.5 * (2.25 + 1.0) / 2
        mean_entropy = 0.4
        np.testing.assert_allclose(info["policy_loss"], -surrogate, rtol=1e-6)
        np.testing.assert_allclose(info["value_loss"], value_loss, rtol=1e-6)
        np.testing.assert_allclose(info["entropy"], mean_entropy, rtol=1e-6)
        np.testing.assert_allclose(total, -surrogate + 0.5 * value_loss - 0.01 * mean_entropy, rtol=1e-6)
        r = np.exp([0.5, -0.5])
        np.testing.assert_allclose(info["approx_kl"], np.mean(r - 1 - np.log(r)), rtol=1e-5)
        np.testing.assert_allclose(info["clip_fraction"], 1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_unit_ratio_and_no_value_clipping(self):
        x = jnp.array([[0.1, -0.2], [0.3, 0.0]])
        mask = jnp.ones((2, 2))
        loss_fn = self.variant(lambda *a: ppo.ppo_loss(*a, clip_eps=0.2, value_clip_eps=0.0, value_coef=1.0,
                                                       entropy_coef=0.0))
        total, info = loss_fn(x, x, x, x + 3.0, x, x, x, mask)
        np.testing.assert_allclose(info["approx_kl"], 0.0, atol=1e-7)
        np.testing.assert_allclose(info["clip_fraction"], 0.0)
        np.testing.assert_allclose(info["policy_loss"], -np.mean(np.asarray(x)), rtol=1e-6)
        np.testing.assert_allclose(info["value_loss"], 0.5 * 9.0, rtol=1e-6)  # unclipped: the move of 3 counts

    def test_shapes_are_checked(self):
        with pytest.raises(AssertionError):
            ppo.ppo_loss(jnp.zeros(3), jnp.zeros(4), jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.zeros(3),
                         jnp.zeros(3), jnp.ones(3), clip_eps=0.2, value_clip_eps=0.0, value_coef=1.0, entropy_coef=0.0)


def _quadratic_loss(params, batch):
    """Mean squared error of a scalar parameter against the batch's targets; info: the mean target."""
    return jnp.mean((params["w"] - batch) ** 2), {"target": jnp.mean(batch)}


class UpdateLoopTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_minibatch_epochs_cover_the_batch_and_converge(self):
        batch = jnp.arange(8.0)
        params = {"w": jnp.array(-5.0)}
        opt = optax.sgd(0.2)
        run = self.variant(lambda p, s, b, k: ppo.update_minibatches(_quadratic_loss, opt, p, s, b, k, 30, 4))
        new, _, infos = run(params, opt.init(params), batch, jax.random.key(0))
        assert infos["loss"].shape == (30, 4) and infos["grad_norm"].shape == (30, 4)
        # Each epoch's minibatches are a permutation: their mean targets average to the batch mean.
        np.testing.assert_allclose(np.asarray(infos["target"]).mean(axis=1), 3.5, rtol=1e-6)
        np.testing.assert_allclose(new["w"], 3.5, atol=0.3)  # SGD on minibatches hovers near the mean

    @chex.variants(with_jit=True, without_jit=True)
    def test_full_batch_epochs(self):
        batch = jnp.array([1.0, 3.0])
        params = {"w": jnp.array(0.0)}
        opt = optax.sgd(0.25)
        run = self.variant(lambda p, s, b: ppo.update_epochs(_quadratic_loss, opt, p, s, b, 3))
        new, _, infos = run(params, opt.init(params), batch)
        # w <- w - 0.25 * 2 (w - 2): 0 -> 1 -> 1.5 -> 1.75
        np.testing.assert_allclose(new["w"], 1.75, rtol=1e-6)
        np.testing.assert_allclose(infos["loss"], [5.0, 2.0, 1.25], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_epochs_within_kl_keep_steps_until_the_first_that_leaves_the_region(self):
        batch = jnp.array([1.0, 3.0])
        params = {"w": jnp.array(0.0)}
        opt = optax.sgd(0.25)
        kl = lambda p: p["w"] ** 2  # noqa: E731  # the "distance" from the start, w = 0
        run = self.variant(lambda p, s, b: ppo.update_epochs_within_kl(_quadratic_loss, opt, p, s, b, 4, kl, 2.0))
        new, _, infos = run(params, opt.init(params), batch)
        # Candidates 1, 1.5, 1.75 -> KL 1, 2.25 (rejected: stop at 1), then nothing moves.
        np.testing.assert_allclose(new["w"], 1.0, rtol=1e-6)
        np.testing.assert_array_equal(infos["accepted"], [1.0, 0.0, 0.0, 0.0])
        np.testing.assert_allclose(infos["candidate_kl"], [1.0, 2.25, 2.25, 2.25], rtol=1e-6)
        run_wide = self.variant(lambda p, s, b: ppo.update_epochs_within_kl(_quadratic_loss, opt, p, s, b, 3, kl, 1e9))
        wide, _, _ = run_wide(params, opt.init(params), batch)
        np.testing.assert_allclose(wide["w"], 1.75, rtol=1e-6)  # as update_epochs when the region is never left

    def test_minibatches_must_divide_the_batch(self):
        params = {"w": jnp.array(0.0)}
        opt = optax.sgd(0.1)
        with pytest.raises(ValueError, match="must divide"):
            ppo.update_minibatches(_quadratic_loss, opt, params, opt.init(params), jnp.arange(6.0),
                                   jax.random.key(0), 1, 4)


def test_minibatch_order_stays_within_each_shard():
    key = jax.random.key(3)
    np.testing.assert_array_equal(ppo.minibatch_order(key, 12, 3).reshape(-1), jax.random.permutation(key, 12))
    order = np.asarray(ppo.minibatch_order(key, 24, 3, groups=4))  # [minibatches, groups, rows]
    assert order.shape == (3, 4, 2)
    for g in range(4):  # each block's rows, 0..5 locally, are dealt out once each over the minibatches
        assert sorted(order[:, g].reshape(-1)) == list(range(6))
    assert ppo.shuffle_groups(24, 3) == 1  # no mesh being traced: one global shuffle
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((4,), ("tasks",))):
        assert ppo.shuffle_groups(24, 3) == 4
        assert ppo.shuffle_groups(20, 3) == 1  # 4 shards of 5 rows cannot make 3 equal minibatches


def _episodes(rewards, mask):
    rewards = jnp.asarray(rewards, jnp.float32)
    mask = jnp.asarray(mask, jnp.float32)
    e, t = rewards.shape
    return Trajectory(obs=jnp.zeros((e, t, 2)), action=jnp.zeros((e, t, 1)), reward=rewards * mask,
                      terminated=jnp.zeros((e, t), bool), mask=mask,
                      log_prob=jnp.zeros((e, t)), time=jnp.tile(jnp.arange(t), (e, 1)))


class PGBatchTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_advantages_are_returns_minus_baseline_and_normalised(self):
        rewards = [[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
        mask = [[1, 1, 1, 1], [1, 1, 1, 0]]
        traj = _episodes(rewards, mask)
        raw = self.variant(lambda t: pg_batch(t, 0.9, 1.0, False))(traj)
        # lambda = 1: advantages = discounted returns-to-go - baseline.
        rets = np.array([[1 + 0.81 * 2, 1.8, 2.0, 0.0], [0.9, 1.0, 0.0, 0.0]])
        np.testing.assert_allclose(np.asarray(raw.advantages + raw.baseline), rets, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(raw.advantages)[1, 3], 0.0)
        norm = self.variant(lambda t: pg_batch(t, 0.9, 1.0, True))(traj)
        valid = np.asarray(mask, bool)
        adv = np.asarray(norm.advantages)[valid]
        np.testing.assert_allclose(adv.mean(), 0.0, atol=1e-5)
        np.testing.assert_allclose(adv.std(), 1.0, rtol=1e-3)

    def test_no_gradient_flows_into_the_batch(self):
        traj = _episodes([[1.0, 2.0]], [[1, 1]])
        grad = jax.grad(lambda r: pg_batch(traj.replace(reward=r), 0.9, 1.0, True).advantages.sum())(traj.reward)
        np.testing.assert_array_equal(np.asarray(grad), 0.0)

    def test_ranks_are_checked(self):
        traj = _episodes([[1.0, 2.0]], [[1, 1]])
        single = jax.tree_util.tree_map(lambda x: x[0], traj)
        with pytest.raises(AssertionError):
            pg_batch(single, 0.9, 1.0, True)
