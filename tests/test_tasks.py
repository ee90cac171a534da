"""TaskBank and BankDistribution: fixed task sets with jit-safe get/sample/split."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.errors import ConfigError
from jmeta.tasks import BankDistribution, TaskBank, sample_tasks, stack_tasks


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
    assert isinstance(bd, jmeta.TaskDistribution)
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
