"""Task distributions, fixed task banks and fixed train/held-out splits.

A task is a pytree of arrays. A :class:`TaskDistribution` samples one task from a key (vmap it
for a batch) and names its fixed held-out set, if it has one (``held_out``). A :class:`TaskBank`
is a fixed, stacked set of tasks (leading axis ``N``) with jit-safe ``get``/``sample``/``split``.
A :class:`FixedSplit` is the train bank and held-out bank of a definition with finite task sets
(PEARL's velocities, MAESN's goals). The meta-test protocol (:func:`evaluation_bank`) evaluates on
the held-out set, or else on a bank built from a fixed key, so every run and every checkpoint is
scored on the same held-out tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
    """Samples tasks. ``sample`` must be pure and jittable; vmap over keys for a batch.

    ``held_out`` is the definition's fixed held-out (meta-test) task set, or None when it has none
    (then :func:`evaluation_bank` draws the evaluation tasks from a fixed key).
    :class:`TaskDistributionBase` provides the None default.
    """

    def sample(self, key: jax.Array) -> Task: ...

    @property
    def held_out(self) -> TaskBank | None: ...


class TaskDistributionBase:
    """Base class of task distributions without a fixed held-out set: ``held_out`` is None."""

    @property
    def held_out(self) -> TaskBank | None:
        return None


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


def _uniform_member(bank: TaskBank, key: jax.Array) -> Task:
    return bank.get(jax.random.randint(key, (), 0, bank.size))


@struct.dataclass
class BankDistribution(TaskDistributionBase):
    """A task distribution that draws uniformly from a fixed :class:`TaskBank` (finite task sets)."""

    bank: TaskBank

    def sample(self, key: jax.Array) -> Task:
        return _uniform_member(self.bank, key)


#: The names of the two sets of a :class:`FixedSplit` (the ``split`` field of env params).
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class FixedSplit:
    """A definition's fixed train set and fixed held-out set of tasks.

    train: the tasks meta-training draws from. held_out: the meta-test tasks, or None when the
    definition has none. Both hold concrete arrays: every constructor builds them eagerly (under
    ``jax.ensure_compile_time_eval``), so a split first built while ``sample`` is being traced
    under ``jit`` is still a constant and can be cached on its distribution.
    """

    train: TaskBank
    held_out: TaskBank | None = None

    def __post_init__(self):
        banks = [self.train] + ([self.held_out] if self.held_out is not None else [])
        if any(isinstance(x, jax.core.Tracer) for b in banks for x in jax.tree_util.tree_leaves(b.tasks)):
            raise ConfigError("FixedSplit needs concrete task arrays; build them under jax.ensure_compile_time_eval()")

    @classmethod
    def from_tasks(cls, tasks: Task, num_train: int, num_held_out: int) -> FixedSplit:
        """The first ``num_train`` and the last ``num_held_out`` tasks of one stacked list of ``N``
        (PEARL splits ``range(n_tasks)`` this way). The two overlap when ``num_train + num_held_out
        > N`` (PEARL's cheetah-dir: train = test = both directions); ``num_held_out = 0`` gives no
        held-out set. ``tasks`` must be concrete arrays."""
        total = int(jax.tree_util.tree_leaves(tasks)[0].shape[0])
        if not 0 < num_train <= total or not 0 <= num_held_out <= total:
            raise ConfigError(
                f"a fixed split of {total} tasks needs 0 < num_train <= {total} and 0 <= num_held_out <= {total}, "
                f"got {num_train} and {num_held_out}"
            )
        with jax.ensure_compile_time_eval():
            train = TaskBank(jax.tree_util.tree_map(lambda x: jnp.asarray(x)[:num_train], tasks))
            if not num_held_out:
                return cls(train)
            held_out = TaskBank(jax.tree_util.tree_map(lambda x: jnp.asarray(x)[total - num_held_out :], tasks))
        return cls(train, held_out)

    @classmethod
    def from_seed(cls, sample: Callable[[jax.Array], Task], seed: int, num_train: int, num_held_out: int) -> FixedSplit:
        """:meth:`from_tasks` over one list of ``num_train + num_held_out`` i.i.d. tasks:
        ``sample`` vmapped over ``jax.random.split(jax.random.key(seed), num_train + num_held_out)``."""
        with jax.ensure_compile_time_eval():
            keys = jax.random.split(jax.random.key(seed), num_train + num_held_out)
            return cls.from_tasks(jax.vmap(sample)(keys), num_train, num_held_out)

    @classmethod
    def from_seed_disjoint(
        cls, sample_set: Callable[[jax.Array, int], Task], seed: int, num_train: int, num_held_out: int
    ) -> FixedSplit:
        """Two separate draws from ``key = jax.random.key(seed)``: ``train = sample_set(fold_in(key,
        0), num_train)`` and ``held_out = sample_set(fold_in(key, 1), num_held_out)``; ``sample_set(key,
        n)`` returns ``n`` stacked tasks."""
        if num_train < 1 or num_held_out < 1:
            raise ConfigError(f"both sets of a fixed split need >= 1 task, got {num_train} and {num_held_out}")
        with jax.ensure_compile_time_eval():
            key = jax.random.key(seed)
            train = sample_set(jax.random.fold_in(key, 0), num_train)
            held_out = sample_set(jax.random.fold_in(key, 1), num_held_out)
            return cls(TaskBank(train), TaskBank(held_out))

    def bank(self, split: str) -> TaskBank:
        """``"train"`` -> :attr:`train`, ``"test"`` -> :attr:`held_out`."""
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} is invalid; valid values are: {', '.join(SPLITS)}")
        bank = self.train if split == "train" else self.held_out
        if bank is None:
            raise ConfigError("split='test' needs a fixed split with a held-out set")
        return bank

    def sample(self, key: jax.Array, split: str = "train") -> Task:
        """One task uniformly from the ``split`` set (jit-safe; ``split`` is static)."""
        return _uniform_member(self.bank(split), key)


def evaluation_bank(dist: TaskDistribution, size: int = 40) -> TaskBank:
    """The held-out tasks a run is evaluated on.

    A distribution with a fixed held-out set (``dist.held_out``, e.g. PEARL's 30 test velocities)
    is evaluated on that set (its first ``size`` tasks); otherwise ``size`` tasks from the fixed
    evaluation key (:meth:`TaskBank.for_evaluation`).
    """
    held_out = dist.held_out
    if held_out is not None:
        if size >= held_out.size:
            return held_out
        return TaskBank(jax.tree_util.tree_map(lambda x: x[:size], held_out.tasks))
    return TaskBank.for_evaluation(dist, size)


def training_task_set(dist: TaskDistribution, size: int, seed: int) -> TaskBank:
    """The finite set of training tasks a per-task learner indexes (MAESN's latent table).

    A definition with a fixed split (``dist.fixed_split``, e.g. MAESN's 100 training goals) gives
    the set its ``sample`` draws from (``dist.params.split``, default "train"); a
    :class:`BankDistribution` gives its bank; any other distribution gives ``size`` tasks drawn
    once from ``jax.random.key(seed)`` (then ``dist.sample`` is not used in training). Concrete
    arrays (built eagerly), so the set's size is static.
    """
    split = getattr(dist, "fixed_split", None)
    if split is not None:
        params = getattr(dist, "params", None)
        return split.bank(getattr(params, "split", "train"))
    if isinstance(dist, BankDistribution):
        return dist.bank
    if size < 1:
        raise ConfigError(f"a training task set needs size >= 1, got {size}")
    with jax.ensure_compile_time_eval():
        return TaskBank.from_distribution(dist, jax.random.key(seed), size)


def stack_tasks(tasks: list[Task]) -> Task:
    """Stacks a list of single tasks into one batched task pytree."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *tasks)
