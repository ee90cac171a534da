"""Environment wrappers. Each keeps the MetaEnv contract and exposes the wrapped env's spec."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jmeta.envs.base import EnvState, MetaEnv, StepOut, Task
from jmeta.spaces import Box


class RescaleActions:
    """rllab's ``normalize`` for actions: the agent acts in [-scale, scale]^d.

    An agent action ``u`` becomes ``low + (u / scale + 1) / 2 * (high - low)``, clipped to
    ``[low, high]``, before it reaches the wrapped environment. cbfinn/maml_rl uses scale 1;
    ProMP and pytorch-maml-rl use scale 10 for MuJoCo (a unit-std Gaussian policy then explores
    with std 0.1 in the env's units).
    """

    def __init__(self, env: MetaEnv, scale: float = 1.0):
        space = env.spec.action_space
        if not isinstance(space, Box):
            raise TypeError(f"RescaleActions needs a Box action space, got {type(space).__name__}")
        if not scale > 0:
            raise ValueError(f"RescaleActions scale must be > 0, got {scale}")
        self.env = env
        self.scale = float(scale)
        self._low, self._high = space.low, space.high
        self.spec = dataclasses.replace(env.spec, action_space=Box(-self.scale, self.scale, space.shape))

    def __getattr__(self, name):  # forward helpers such as ``reward`` or ``params``
        return getattr(self.env, name)

    def env_action(self, action: jax.Array) -> jax.Array:
        """Maps an agent action in [-scale, scale]^d (any real values) to the wrapped env's box."""
        scaled = self._low + (action / self.scale + 1.0) * 0.5 * (self._high - self._low)
        return jnp.clip(scaled, self._low, self._high)

    def reset(self, key: jax.Array, task: Task) -> tuple[jax.Array, EnvState]:
        return self.env.reset(key, task)

    def step(self, key: jax.Array, state: EnvState, action: jax.Array, task: Task) -> StepOut:
        return self.env.step(key, state, self.env_action(action), task)
