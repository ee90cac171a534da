"""The task axis over a device mesh: one mesh axis named ``"tasks"``, the task batches sharded along
it, everything else replicated.

A meta-iteration is data-parallel over tasks: every algorithm draws its task batch through
:meth:`MetaLearner.sample_tasks`, which constrains the batch to :func:`task_sharding`, so every
computation vmapped over tasks downstream (rollouts, inner loops, per-task losses) is split across
the devices by XLA's partitioner, and the means over tasks become cross-device reductions inserted
by the compiler. Parameters and optimiser states are placed replicated, per-task buffers (PEARL's
replay) split along their buffer axis (:func:`place_state`); the evaluation bank is sharded like a
task batch when its size divides the device count. The trainer traces every program under the mesh
(:func:`use_mesh`), and the shared parts that must know the shards read them then
(:func:`task_shards`: PPO's minibatch shuffle stays within each shard, the replay keeps its split).
Nothing in an algorithm module knows about the mesh.

    mesh = task_mesh(4)                  # the first 4 devices (None: all of them)
    env, dist, algo = build(config, task_sharding=task_sharding(mesh))

``--devices N`` on the command line (``TrainConfig.devices``) does this in the trainer; on one
device (the default on a CPU) no mesh is built and the program is the unsharded one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jmeta.errors import ConfigError

#: The mesh axis that tasks are split along.
TASK_AXIS = "tasks"


def device_count(requested: int | None) -> int:
    """How many devices the task axis spans: ``requested``, or every device of the default backend."""
    available = len(jax.devices())
    if requested is None:
        return available
    if requested < 1 or requested > available:
        raise ConfigError(f"devices: must be in [1, {available}] ({available} {jax.default_backend()} device(s) "
                          f"here), got {requested}")
    return requested


def task_mesh(num_devices: int | None = None) -> Mesh | None:
    """A 1D mesh over the first ``num_devices`` devices (None: all) with the axis ``"tasks"``;
    None for a single device (the unsharded program)."""
    count = device_count(num_devices)
    if count == 1:
        return None
    return Mesh(np.array(jax.devices()[:count]), (TASK_AXIS,))


def use_mesh(mesh: Mesh | None):
    """A context in which programs are traced under ``mesh`` (``jax.set_mesh``; nothing without a
    mesh). Shared parts that must know the task shards read it at trace time, e.g. PPO's minibatch
    shuffle permutes within each device's shard (:func:`jmeta.rl.ppo.shuffle_groups`)."""
    return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)


def task_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """Leading (task) axis split over the mesh; None without a mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(TASK_AXIS))


def replicated(mesh: Mesh | None) -> NamedSharding | None:
    """Every device holds the whole array; None without a mesh."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


def check_divisible(field: str, size: int, mesh: Mesh | None) -> None:
    """A one-line error when a task batch of ``size`` cannot be split evenly over the mesh."""
    if mesh is None:
        return
    count = mesh.devices.size
    if size % count:
        raise ConfigError(f"{field}: must be a multiple of the {count} devices of the task axis "
                          f"(--devices {count}), got {size}")


def task_shards() -> int:
    """The size of the ``"tasks"`` axis of the mesh being traced under (:func:`use_mesh`), 1 without one.
    Shared parts read it at trace time; no algorithm module needs it."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or TASK_AXIS not in mesh.axis_names:
        return 1
    return dict(zip(mesh.axis_names, mesh.axis_sizes, strict=True))[TASK_AXIS]


def _is_buffer(x: Any) -> bool:
    from jmeta.rl.replay import ReplayBuffer

    return isinstance(x, ReplayBuffer)


def state_shardings(state: Any, mesh: Mesh | None, stacked: bool = False) -> Any:
    """Where each leaf of a train state (arrays or ``jax.ShapeDtypeStruct``) lives on the mesh: the
    per-task buffers (:class:`~jmeta.rl.replay.ReplayBuffer`, e.g. PEARL's replay) split along their
    buffer axis when it divides the device count, everything else replicated. ``stacked``: the state
    has a leading seed axis (``--num-seeds``), kept whole. None without a mesh."""
    if mesh is None:
        return None
    count = mesh.devices.size
    lead = (None,) if stacked else ()

    def place(x):
        if _is_buffer(x):
            buffers = x.size.shape[len(lead)]
            spec = PartitionSpec(*lead, TASK_AXIS) if buffers % count == 0 else PartitionSpec()
            return jax.tree_util.tree_map(lambda _: NamedSharding(mesh, spec), x)
        return replicated(mesh)

    return jax.tree_util.tree_map(place, state, is_leaf=_is_buffer)


def place_state(state: Any, mesh: Mesh | None, stacked: bool = False) -> Any:
    """``state`` put where :func:`state_shardings` says (unchanged without a mesh)."""
    return state if mesh is None else jax.device_put(state, state_shardings(state, mesh, stacked))


def shard_tasks(tasks: Any, mesh: Mesh | None) -> Any:
    """A task pytree (leading axis N) split along the mesh when N divides the device count, else
    replicated (a held-out bank of 40 tasks on 3 devices still works, unsplit)."""
    if mesh is None:
        return tasks
    size = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    sharding = task_sharding(mesh) if size % mesh.devices.size == 0 else replicated(mesh)
    return jax.device_put(tasks, sharding)
