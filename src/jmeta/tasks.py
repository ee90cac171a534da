"""Task distributions and fixed task banks.

A task is a pytree of arrays. A :class:`TaskDistribution` samples one task from a key (vmap it
for a batch). A :class:`TaskBank` is a fixed, stacked set of tasks (leading axis ``N``) with
jit-safe ``get``/``sample``/``split``: the meta-test protocol evaluates on a bank built from a
fixed key, so every run and every checkpoint is scored on the same held-out tasks.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.errors import ConfigError

Task = Any

#: Seed of the fixed key from which evaluation task banks are drawn (never used for training).
EVAL_BANK_SEED = 20_170_301


@runtime_checkable
class TaskDistribution(Protocol):
    """Samples tasks. ``sample`` must be pure and jittable; vmap over keys for a batch."""

    def sample(self, key: jax.Array) -> Task: ...


def sample_tasks(dist: TaskDistribution, key: jax.Array, num: int, sharding: Any = None) -> Task:
    """``num`` i.i.d. tasks stacked on a leading axis: the one place where training task batches are
    drawn. With a ``jax.sharding.Sharding`` of the task axis (a device mesh), the batch is
    constrained to it, so everything vmapped over tasks downstream is split across devices."""
    tasks = jax.vmap(dist.sample)(jax.random.split(key, num))
    if sharding is not None:
        tasks = jax.lax.with_sharding_constraint(tasks, sharding)
    return tasks


@struct.dataclass
class TaskBank:
    """A fixed set of ``size`` tasks stacked on a leading axis.

    ``tasks`` is the task pytree whose every leaf has leading dimension ``size``.
    """

    tasks: Task

    @property
    def size(self) -> int:
        return int(jax.tree_util.tree_leaves(self.tasks)[0].shape[0])

    @classmethod
    def from_distribution(cls, dist: TaskDistribution, key: jax.Array, size: int) -> TaskBank:
        if size < 1:
            raise ConfigError(f"TaskBank size must be >= 1, got {size}")
        return cls(tasks=sample_tasks(dist, key, size))

    @classmethod
    def for_evaluation(cls, dist: TaskDistribution, size: int = 40) -> TaskBank:
        """The standard held-out bank: ``size`` tasks from the fixed evaluation key."""
        return cls.from_distribution(dist, jax.random.key(EVAL_BANK_SEED), size)

    def get(self, index: jax.Array | int) -> Task:
        """The task at ``index`` (traced indices are fine)."""
        return jax.tree_util.tree_map(lambda x: x[index], self.tasks)

    def sample(self, key: jax.Array, num: int, replace: bool = True) -> Task:
        """``num`` tasks drawn uniformly from the bank (jit-safe), stacked."""
        idx = jax.random.choice(key, self.size, (num,), replace=replace)
        return jax.tree_util.tree_map(lambda x: x[idx], self.tasks)

    def split(self, first: int) -> tuple[TaskBank, TaskBank]:
        """Splits into the first ``first`` tasks and the rest (static sizes)."""
        if not 0 < first < self.size:
            raise ConfigError(f"split point must be in (0, {self.size}), got {first}")
        head = jax.tree_util.tree_map(lambda x: x[:first], self.tasks)
        tail = jax.tree_util.tree_map(lambda x: x[first:], self.tasks)
        return TaskBank(head), TaskBank(tail)


@struct.dataclass
class BankDistribution:
    """A task distribution that draws uniformly from a fixed :class:`TaskBank` (finite task sets)."""

    bank: TaskBank

    def sample(self, key: jax.Array) -> Task:
        index = jax.random.randint(key, (), 0, self.bank.size)
        return self.bank.get(index)


def evaluation_bank(dist: TaskDistribution, size: int = 40) -> TaskBank:
    """The held-out tasks a run is evaluated on.

    A distribution with a fixed test set (``held_out_bank``, e.g. PEARL's 30 test velocities) is
    evaluated on that set (its first ``size`` tasks); otherwise ``size`` tasks from the fixed
    evaluation key (:meth:`TaskBank.for_evaluation`).
    """
    held_out = getattr(dist, "held_out_bank", None)
    if isinstance(held_out, TaskBank):
        if size >= held_out.size:
            return held_out
        return TaskBank(jax.tree_util.tree_map(lambda x: x[:size], held_out.tasks))
    return TaskBank.for_evaluation(dist, size)


def stack_tasks(tasks: list[Task]) -> Task:
    """Stacks a list of single tasks into one batched task pytree."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *tasks)
