"""What the MuJoCo task families share: the torso's body index, the env state pytree and the
ant's health test (used by :mod:`~jmeta.envs.mujoco.locomotion` and :mod:`~jmeta.envs.mujoco.maesn`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

#: Body index of the torso in every model here (0 is the world).
TORSO = 1


@struct.dataclass
class MujocoState:
    """Physics view after the last step (see :class:`~jmeta.envs.mujoco.physics.PhysicsOut`) plus
    the step counter.

    qpos float32[nq], qvel float32[nv], xpos float32[nbody, 3], xmat float32[nbody, 9],
    cfrc_ext float32[nbody or 0, 6], time int32, exact uint32[nexact, 2] (the float64 state the C
    physics path carries between steps, empty on MJX; qpos and qvel are float32 views of it). An
    env that never reads body poses may keep xpos / xmat as float32[0, 3] / [0, 9] (then they are
    never computed under jit).
    """

    qpos: jax.Array
    qvel: jax.Array
    xpos: jax.Array
    xmat: jax.Array
    cfrc_ext: jax.Array
    time: jax.Array
    exact: jax.Array


def unhealthy(qpos: jax.Array, qvel: jax.Array, z_low: float, z_high: float) -> jax.Array:
    """Bool scalar: the state is non-finite or the torso height ``qpos[2]`` leaves [z_low, z_high]
    (the ant's termination in rllab and the gym ports)."""
    finite = jnp.all(jnp.isfinite(qpos)) & jnp.all(jnp.isfinite(qvel))
    z = qpos[2]
    return ~(finite & (z >= z_low) & (z <= z_high))
