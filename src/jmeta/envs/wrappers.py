"""Environment wrappers. Each keeps the MetaEnv contract and exposes the wrapped env's spec."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmeta.envs.base import EnvState, MetaEnv, StepOut, Task
from jmeta.errors import EnvInputError
from jmeta.spaces import Box, Discrete


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


def unwrap(env: MetaEnv) -> MetaEnv:
    """The innermost environment below any wrappers (which keep the wrapped env in ``.env``)."""
    while isinstance(getattr(env, "__dict__", None), dict) and "env" in env.__dict__:
        env = env.__dict__["env"]
    return env


def _leaf_shape(leaf) -> tuple[int, ...] | None:
    try:
        return tuple(np.shape(leaf))
    except Exception:  # noqa: BLE001 (objects without a shape)
        return None


class ValidatedEnv:
    """What ``jmeta.make`` returns: the env with its inputs checked and non-finite actions neutralised.

    Checks run while tracing (shapes and structures are static), so a jitted rollout pays nothing:

    * the task must have the structure and leaf shapes of the env's tasks (``task_template``, one
      sample of its task distribution): ``reset``/``step`` with ``None``, a task of another env or
      a batched task outside ``vmap`` raise :class:`~jmeta.errors.EnvInputError`;
    * the action is converted with ``jnp.asarray`` (Python lists and scalars are fine) and must have
      the action space's shape (per example, i.e. inside ``vmap``), an integer dtype for
      ``Discrete`` spaces and a numeric one for ``Box`` spaces;
    * **non-finite actions** (``Box``): every NaN/inf component is replaced by 0 before the env
      sees it, on every env and both physics paths, and ``info["nonfinite_action"]`` is 1.0 on that
      step (0.0 otherwise), so NaN never reaches observations or rewards silently.
    """

    def __init__(self, env: MetaEnv, task_template: Any):
        self.env = env
        self.spec = env.spec
        self._treedef = jax.tree_util.tree_structure(task_template)
        self._shapes = [tuple(leaf.shape) for leaf in jax.tree_util.tree_leaves(task_template)]

    def __getattr__(self, name):  # forward helpers such as ``params`` or ``reward``
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def _check_task(self, task: Task, where: str) -> None:
        name = self.spec.name
        if task is None:
            raise EnvInputError(f"{name}.{where}: task is None; pass a task from the env's task distribution")
        treedef = jax.tree_util.tree_structure(task)
        # PyTreeDef equality ignores the node class of flax struct dataclasses: compare the text too.
        if treedef != self._treedef or str(treedef) != str(self._treedef):
            raise EnvInputError(f"{name}.{where}: the task's structure {treedef} is not a {name} task ({self._treedef})")
        shapes = [_leaf_shape(leaf) for leaf in jax.tree_util.tree_leaves(task)]
        if shapes != self._shapes:
            raise EnvInputError(f"{name}.{where}: task leaf shapes {shapes} differ from a {name} task's {self._shapes} "
                                "(a batch of tasks needs jax.vmap)")

    def _check_action(self, action: Any) -> tuple[jax.Array, jax.Array | None]:
        space = self.spec.action_space
        name = self.spec.name
        try:
            action = jnp.asarray(action)
        except TypeError as exc:
            raise EnvInputError(f"{name}.step: the action is not an array ({exc})") from None
        if tuple(action.shape) != tuple(space.shape):
            raise EnvInputError(f"{name}.step: action must have shape {tuple(space.shape)}, got {tuple(action.shape)} "
                                "(a batch of actions needs jax.vmap)")
        if isinstance(space, Discrete):
            if not jnp.issubdtype(action.dtype, jnp.integer):
                raise EnvInputError(f"{name}.step: action must be an integer in [0, {space.n}), got dtype {action.dtype}")
            return action, None
        if not (jnp.issubdtype(action.dtype, jnp.floating) or jnp.issubdtype(action.dtype, jnp.integer)):
            raise EnvInputError(f"{name}.step: action must be numeric, got dtype {action.dtype}")
        action = action.astype(jnp.dtype(space.dtype))
        finite = jnp.isfinite(action)
        return jnp.where(finite, action, jnp.zeros_like(action)), 1.0 - jnp.all(finite).astype(jnp.float32)

    def reset(self, key: jax.Array, task: Task) -> tuple[jax.Array, EnvState]:
        self._check_task(task, "reset")
        return self.env.reset(key, task)

    def step(self, key: jax.Array, state: EnvState, action: jax.Array, task: Task) -> StepOut:
        self._check_task(task, "step")
        action, nonfinite = self._check_action(action)
        out = self.env.step(key, state, action, task)
        if nonfinite is not None:
            out = out.replace(info={**out.info, "nonfinite_action": nonfinite})
        return out
