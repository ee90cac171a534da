"""TaskBank, BankDistribution and FixedSplit: fixed task sets with jit-safe get/sample/split; the
``held_out`` part of the task-distribution protocol and evaluation_bank."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import jmeta
from jmeta.envs.toy.point_nav import PointNavTask
from jmeta.errors import ConfigError
from jmeta.tasks import (
    BankDistribution,
    FixedSplit,
    TaskBank,
    TaskDistributionBase,
    evaluation_bank,
    sample_tasks,
    stack_tasks,
)


@pytest.fixture(scope="module")
def dist():
    return jmeta.make("point_nav")[1]


def _goals(bank_or_tasks):
    tasks = bank_or_tasks.tasks if isinstance(bank_or_tasks, TaskBank) else bank_or_tasks
    return np.asarray(tasks.goal)


def _rows(goals):
    return {tuple(np.round(g, 7).tolist()) for g in goals}


def test_from_distribution_is_deterministic(dist):
    a = TaskBank.from_distribution(dist, jax.random.key(3), 12)
    b = TaskBank.from_distribution(dist, jax.random.key(3), 12)
    c = TaskBank.from_distribution(dist, jax.random.key(4), 12)
    assert a.size == 12 and _goals(a).shape == (12, 2)
    np.testing.assert_array_equal(_goals(a), _goals(b))
    assert not np.array_equal(_goals(a), _goals(c))
    assert len(_rows(_goals(a))) == 12  # distinct tasks
    # Same as vmapping the distribution over split keys.
    keys = jax.random.split(jax.random.key(3), 12)
    np.testing.assert_array_equal(_goals(a), np.asarray(jax.vmap(dist.sample)(keys).goal))


def test_for_evaluation_is_fixed(dist):
    a = TaskBank.for_evaluation(dist, 10)
    b = TaskBank.for_evaluation(dist, 10)
    assert a.size == 10
    np.testing.assert_array_equal(_goals(a), _goals(b))
    default = TaskBank.for_evaluation(dist)
    assert default.size == 40
    np.testing.assert_array_equal(_goals(default)[:10], _goals(a))  # same key, same first tasks
    # Not the bank of an ordinary training key.
    assert not np.array_equal(
        _goals(a), _goals(TaskBank.from_distribution(dist, jax.random.key(0), 10))
    )


def test_bad_size_raises(dist):
    with pytest.raises(ConfigError):
        TaskBank.from_distribution(dist, jax.random.key(0), 0)


def test_get_with_traced_index(dist):
    bank = TaskBank.from_distribution(dist, jax.random.key(5), 7)
    get = jax.jit(lambda b, i: b.get(i).goal)
    for i in range(7):
        np.testing.assert_array_equal(get(bank, jnp.asarray(i)), _goals(bank)[i])
    # Under vmap over indices as well.
    idx = jnp.array([6, 0, 3])
    np.testing.assert_array_equal(
        jax.vmap(lambda i: bank.get(i).goal)(idx), _goals(bank)[[6, 0, 3]]
    )


def test_sample_inside_jit_returns_members(dist):
    bank = TaskBank.from_distribution(dist, jax.random.key(6), 5)
    members = _rows(_goals(bank))
    sample = jax.jit(lambda b, k: b.sample(k, 64), static_argnums=())
    drawn = _goals(sample(bank, jax.random.key(7)))
    assert drawn.shape == (64, 2)
    assert _rows(drawn) <= members
    assert len(_rows(drawn)) == 5  # 64 draws with replacement cover 5 tasks
    np.testing.assert_array_equal(drawn, _goals(sample(bank, jax.random.key(7))))  # deterministic
    # Without replacement: a permutation of the bank.
    perm = _goals(jax.jit(lambda b, k: b.sample(k, 5, replace=False))(bank, jax.random.key(8)))
    assert _rows(perm) == members


def test_split_sizes_and_contents(dist):
    bank = TaskBank.from_distribution(dist, jax.random.key(9), 10)
    head, tail = bank.split(8)
    assert head.size == 8 and tail.size == 2
    np.testing.assert_array_equal(_goals(head), _goals(bank)[:8])
    np.testing.assert_array_equal(_goals(tail), _goals(bank)[8:])


@pytest.mark.parametrize("first", [0, 10, 11, -1])
def test_split_bad_index_raises(dist, first):
    bank = TaskBank.from_distribution(dist, jax.random.key(9), 10)
    with pytest.raises(ConfigError):
        bank.split(first)


def test_bank_distribution_samples_only_members(dist):
    bank = TaskBank.from_distribution(dist, jax.random.key(10), 4)
    bd = BankDistribution(bank)
    assert isinstance(bd, jmeta.TaskDistribution) and bd.held_out is None
    drawn = _goals(jax.jit(jax.vmap(bd.sample))(jax.random.split(jax.random.key(11), 200)))
    assert _rows(drawn) <= _rows(_goals(bank))
    assert len(_rows(drawn)) == 4
    # Roughly uniform over the 4 tasks.
    counts = np.array([np.all(drawn == g, axis=1).sum() for g in _goals(bank)])
    assert counts.sum() == 200 and counts.min() >= 25
    # sample_tasks works with a bank distribution too.
    batch = sample_tasks(bd, jax.random.key(12), 6)
    assert _rows(_goals(batch)) <= _rows(_goals(bank))


def test_stack_tasks(dist):
    singles = [dist.sample(jax.random.key(i)) for i in range(3)]
    stacked = stack_tasks(singles)
    assert stacked.goal.shape == (3, 2)
    for i, t in enumerate(singles):
        np.testing.assert_array_equal(stacked.goal[i], t.goal)


# ---------------------------------------------------------------- FixedSplit


def test_fixed_split_from_tasks_takes_first_and_last(dist):
    tasks = sample_tasks(dist, jax.random.key(20), 10)
    split = FixedSplit.from_tasks(tasks, 7, 3)
    np.testing.assert_array_equal(_goals(split.train), _goals(tasks)[:7])
    np.testing.assert_array_equal(_goals(split.held_out), _goals(tasks)[7:])
    assert split.bank("train") is split.train and split.bank("test") is split.held_out
    # Overlapping sets (PEARL cheetah-dir: train = test) and no held-out set.
    both = FixedSplit.from_tasks(tasks, 10, 10)
    np.testing.assert_array_equal(_goals(both.train), _goals(both.held_out))
    only_train = FixedSplit.from_tasks(tasks, 4, 0)
    assert only_train.held_out is None and only_train.train.size == 4
    with pytest.raises(ConfigError, match="held-out"):
        only_train.bank("test")
    with pytest.raises(ConfigError, match="valid values"):
        split.bank("validation")
    for bad in [(0, 3), (11, 0), (5, 11), (5, -1)]:
        with pytest.raises(ConfigError):
            FixedSplit.from_tasks(tasks, *bad)


def test_fixed_split_from_seed_is_one_list_of_split_keys(dist):
    split = FixedSplit.from_seed(dist.sample, 5, 6, 2)
    keys = jax.random.split(jax.random.key(5), 8)
    expected = _goals(jax.vmap(dist.sample)(keys))
    np.testing.assert_array_equal(_goals(split.train), expected[:6])
    np.testing.assert_array_equal(_goals(split.held_out), expected[6:])


def test_fixed_split_from_seed_disjoint_uses_fold_in(dist):
    def sample_set(key, n):
        return sample_tasks(dist, key, n)

    split = FixedSplit.from_seed_disjoint(sample_set, 9, 5, 4)
    key = jax.random.key(9)
    np.testing.assert_array_equal(_goals(split.train), _goals(sample_tasks(dist, jax.random.fold_in(key, 0), 5)))
    np.testing.assert_array_equal(_goals(split.held_out), _goals(sample_tasks(dist, jax.random.fold_in(key, 1), 4)))
    assert not _rows(_goals(split.train)) & _rows(_goals(split.held_out))
    with pytest.raises(ConfigError):
        FixedSplit.from_seed_disjoint(sample_set, 9, 5, 0)


def test_fixed_split_is_concrete_when_built_under_jit(dist):
    built = []

    @jax.jit
    def first_use(key):
        built.append(FixedSplit.from_seed(dist.sample, 5, 6, 2))
        return built[0].sample(key, "test").goal

    drawn = np.asarray(first_use(jax.random.key(1)))
    split = built[0]
    assert isinstance(split.train.tasks.goal, jax.Array) and not isinstance(split.train.tasks.goal, jax.core.Tracer)
    np.testing.assert_array_equal(_goals(split.train), _goals(FixedSplit.from_seed(dist.sample, 5, 6, 2).train))
    assert tuple(np.round(drawn, 7).tolist()) in _rows(_goals(split.held_out))
    with pytest.raises(ConfigError, match="concrete"):
        jax.jit(lambda g: FixedSplit(TaskBank(PointNavTask(goal=g))))(jnp.zeros((3, 2)))


def test_fixed_split_sample_draws_members_of_the_named_set(dist):
    split = FixedSplit.from_seed(dist.sample, 3, 4, 3)
    keys = jax.random.split(jax.random.key(2), 200)
    train = _goals(jax.jit(jax.vmap(lambda k: split.sample(k, "train")))(keys))
    test = _goals(jax.jit(jax.vmap(lambda k: split.sample(k, "test")))(keys))
    assert _rows(train) == _rows(_goals(split.train))  # 200 draws cover all 4
    assert _rows(test) == _rows(_goals(split.held_out))


# ---------------------------------------------------------------- held_out and evaluation_bank


@struct.dataclass
class _HeldOutDistribution(TaskDistributionBase):
    inner: Any
    test: TaskBank

    def sample(self, key):
        return self.inner.sample(key)

    @property
    def held_out(self):
        return self.test


def test_evaluation_bank_uses_held_out(dist):
    assert dist.held_out is None and isinstance(dist, TaskDistributionBase)
    np.testing.assert_array_equal(_goals(evaluation_bank(dist, 6)), _goals(TaskBank.for_evaluation(dist, 6)))
    test = TaskBank.from_distribution(dist, jax.random.key(30), 5)
    fixed = _HeldOutDistribution(dist, test)
    assert isinstance(fixed, jmeta.TaskDistribution)
    assert evaluation_bank(fixed, 40) is test
    np.testing.assert_array_equal(_goals(evaluation_bank(fixed, 3)), _goals(test)[:3])


@pytest.mark.parametrize("name", jmeta.list_envs())
def test_every_distribution_follows_the_protocol(name):
    for variant in jmeta.list_variants(name):
        _, d = jmeta.make(name, variant)
        assert isinstance(d, jmeta.TaskDistribution), (name, variant)
        held_out = d.held_out
        assert held_out is None or isinstance(held_out, TaskBank), (name, variant)
        if held_out is not None:
            size = min(3, held_out.size)
            for a, b in zip(jax.tree_util.tree_leaves(evaluation_bank(d, size).tasks),
                            jax.tree_util.tree_leaves(held_out.tasks), strict=True):
                np.testing.assert_array_equal(a, b[:size])
