"""Task-distribution environments and their registry.

The envs are grouped by family in subpackages: :mod:`jmeta.envs.toy` (pure-JAX toy tasks),
:mod:`jmeta.envs.mujoco` (MuJoCo locomotion and MAESN tasks) and :mod:`jmeta.envs.pixel`
(information-seeking envs and their renderer). Each env module registers its own variants when it
is imported; importing the subpackages here registers every built-in env.
"""

# Importing the family subpackages registers their envs (each env module calls ``register``).
from jmeta.envs import mujoco, pixel, toy
from jmeta.envs.base import EnvSpec, MetaEnv, StepOut
from jmeta.envs.registry import describe, list_envs, list_variants, make, register
from jmeta.envs.wrappers import RescaleActions

__all__ = [
    "EnvSpec",
    "MetaEnv",
    "RescaleActions",
    "StepOut",
    "describe",
    "list_envs",
    "list_variants",
    "make",
    "mujoco",
    "pixel",
    "register",
    "toy",
]
