"""Task-distribution environments and their registry."""

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
    "register",
]
