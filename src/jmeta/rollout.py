"""The rollout engine: one ``lax.scan`` over time driven by an :class:`Actor`, for independent
episodes (vmapped) and for trials (several episodes of one task that carry the actor's state).

An actor is three pure functions over a params pytree and a carry pytree:

* ``initial_carry(params, key) -> carry``: once per trial (or per independent episode);
* ``episode_start(params, carry, inputs, key) -> carry``: at every episode start, seeing the first
  step's inputs (the reset observation; the env state and task for privileged actors). Identity
  for RL²; MAESN draws a new latent here, PEARL refreshes its context, a scripted oracle plans;
* ``act(params, carry, inputs, key) -> (carry, action, log_prob, extras)``: one step, where
  ``inputs`` is a :class:`jmeta.types.StepInputs` and ``extras`` a dict of arrays recorded in
  ``Trajectory.extras``.

An actor with ``privileged = True`` also sees the env state and the task in ``inputs`` (scripted
oracles). A plain ``policy_fn(params, obs, key) -> (action, log_prob)`` is accepted wherever an
actor is and wrapped in :class:`FeedForwardActor`.

Episodes never auto-reset inside the horizon: once an episode terminates, later steps are masked
(``mask = 0``, ``reward = 0``) and leave the env state, the observation and the actor's carry
unchanged, so every batch has a static shape.

Keys: an episode's key is split into ``(reset_key, scan_key)`` and every step key into
``(act_key, env_key)``; the keys of ``initial_carry`` and ``episode_start`` are ``fold_in``s of the
trial / episode key, so actors that ignore them leave every other random stream unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.envs.base import MetaEnv, Task
from jmeta.types import Carry, Params, StepInputs, Trajectory

#: ``policy_fn(params, obs, key) -> (action, log_prob)`` for feed-forward policies.
PolicyFn = Callable[[Params, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]

_CARRY_KEY = 0x0CA7  # fold_in constants for the actor's own keys
_EPISODE_START_KEY = 0x0E57


@runtime_checkable
class Actor(Protocol):
    """What the rollout engine drives. All methods pure and jittable (see the module docstring)."""

    privileged: bool

    def initial_carry(self, params: Params, key: jax.Array) -> Carry: ...

    def episode_start(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array) -> Carry: ...

    def act(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array
            ) -> tuple[Carry, jax.Array, jax.Array, dict[str, jax.Array]]: ...


class ActorBase:
    """Defaults for actors: no carry, nothing at episode start, no privileged view."""

    privileged: ClassVar[bool] = False

    def initial_carry(self, params: Params, key: jax.Array) -> Carry:
        return ()

    def episode_start(self, params: Params, carry: Carry, inputs: StepInputs, key: jax.Array) -> Carry:
        return carry


@struct.dataclass
class FeedForwardActor(ActorBase):
    """Wraps ``policy_fn(params, obs, key) -> (action, log_prob)`` as a carry-less actor."""

    policy_fn: PolicyFn = struct.field(pytree_node=False)

    def act(self, params, carry, inputs: StepInputs, key):
        action, log_prob = self.policy_fn(params, inputs.obs, key)
        return carry, action, log_prob, {}


def as_actor(actor: Actor | PolicyFn) -> Actor:
    """``actor`` itself, or a plain policy function wrapped in :class:`FeedForwardActor`."""
    return actor if hasattr(actor, "act") else FeedForwardActor(actor)


def _select(keep_new: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda n, o: jnp.where(keep_new, n, o), new, old)


def _first_inputs(env: MetaEnv) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(prev_action, prev_reward, prev_done) at the start of a trial."""
    space = env.spec.action_space
    dtype = jnp.dtype(space.dtype)
    no_action = -1 if jnp.issubdtype(dtype, jnp.integer) else 0
    return jnp.full(space.shape, no_action, dtype), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)


def _inputs(actor: Actor, obs, prev_action, prev_reward, prev_done, t, state, task) -> StepInputs:
    privileged = (state, task) if actor.privileged else (None, None)
    return StepInputs(obs, prev_action, prev_reward, prev_done, t, *privileged)


def _episode(env: MetaEnv, actor: Actor, params: Params, task: Task, key: jax.Array, carry: Carry,
             prev: tuple, horizon: int, next_obs: bool, record_inputs: bool, record_info: bool,
             record_state: bool = False) -> tuple[tuple, Trajectory]:
    """One episode from ``(carry, prev inputs)``. Returns ``((carry, prev_action, prev_reward), traj [T])``.

    ``record_inputs``: store ``prev_action``, ``prev_reward``, ``prev_done`` in the extras (trials);
    ``record_info``: store the env's step ``info`` dict (masked) as ``extras["info"]``;
    ``record_state``: store the env state each action was taken in as ``extras["env_state"]`` (for
    rollout viewers; on masked steps the episode's last state)."""
    reset_key, scan_key = jax.random.split(key)
    obs, state = env.reset(reset_key, task)
    prev_action, prev_reward, prev_done = prev
    t0 = jnp.zeros((), jnp.int32)
    carry = actor.episode_start(params, carry, _inputs(actor, obs, prev_action, prev_reward, prev_done, t0, state, task),
                                jax.random.fold_in(key, _EPISODE_START_KEY))

    def step(inner, step_key):
        obs, state, alive, t, carry, prev_action, prev_reward, prev_done = inner
        act_key, env_key = jax.random.split(step_key)
        inputs = _inputs(actor, obs, prev_action, prev_reward, prev_done, t, state, task)
        new_carry, action, log_prob, extras = actor.act(params, carry, inputs, act_key)
        out = env.step(env_key, state, action, task)
        mask = alive.astype(jnp.float32)
        # A finished episode stays finished: keep its last state, observation and carry.
        following_obs = _select(alive, out.obs, obs)
        if record_inputs:
            extras = {**extras, "prev_action": prev_action, "prev_reward": prev_reward, "prev_done": prev_done}
        if record_info:
            extras = {**extras, "info": jax.tree_util.tree_map(lambda x: x * mask.astype(x.dtype), out.info)}
        if record_state:
            extras = {**extras, "env_state": state}
        transition = Trajectory(
            obs=obs,
            action=action,
            reward=out.reward * mask,
            terminated=out.terminated & alive,
            mask=mask,
            log_prob=log_prob,
            time=t,
            next_obs=following_obs if next_obs else None,
            extras=extras,
        )
        next_inner = (
            following_obs,
            _select(alive, out.state, state),
            alive & ~out.terminated,
            t + 1,
            _select(alive, new_carry, carry),
            _select(alive, action, prev_action),
            jnp.where(alive, out.reward, prev_reward),
            jnp.zeros((), jnp.float32),
        )
        return next_inner, transition

    init = (obs, state, jnp.ones((), bool), t0, carry, prev_action, prev_reward, prev_done)
    final, trajectory = jax.lax.scan(step, init, jax.random.split(scan_key, horizon))
    return (final[4], final[5], final[6]), trajectory


def rollout_episode(env: MetaEnv, actor: Actor | PolicyFn, params: Params, task: Task, key: jax.Array,
                    horizon: int | None = None, next_obs: bool = True, record_info: bool = False,
                    record_state: bool = False) -> Trajectory:
    """One episode of ``task``, from a fresh carry. Returns a :class:`Trajectory` with leaves [T, ...].

    ``record_info``: also record the env's per-step ``info`` (masked) in ``extras["info"]``;
    ``record_state``: the env state of every step in ``extras["env_state"]``."""
    actor = as_actor(actor)
    horizon = env.spec.horizon if horizon is None else horizon
    carry = actor.initial_carry(params, jax.random.fold_in(key, _CARRY_KEY))
    _, trajectory = _episode(env, actor, params, task, key, carry, _first_inputs(env), horizon, next_obs, False,
                             record_info, record_state)
    return trajectory


def rollout_episodes(env: MetaEnv, actor: Actor | PolicyFn, params: Params, task: Task, key: jax.Array,
                     num_episodes: int, horizon: int | None = None, next_obs: bool = True,
                     record_info: bool = False, record_state: bool = False) -> Trajectory:
    """``num_episodes`` independent episodes of one task (each from a fresh carry). Leaves [E, T, ...]."""
    keys = jax.random.split(key, num_episodes)
    return jax.vmap(lambda k: rollout_episode(env, actor, params, task, k, horizon, next_obs, record_info,
                                              record_state))(keys)


def rollout_tasks(env: MetaEnv, actor: Actor | PolicyFn, params: Params, tasks: Task, key: jax.Array,
                  num_episodes: int, horizon: int | None = None, params_per_task: bool = False,
                  next_obs: bool = True) -> Trajectory:
    """Independent episodes for a batch of tasks (leading axis N). Leaves [N, E, T, ...].

    With ``params_per_task`` the params pytree has a leading task axis (e.g. adapted params).
    """
    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, num_tasks)
    params_axis = 0 if params_per_task else None
    return jax.vmap(
        lambda p, t, k: rollout_episodes(env, actor, p, t, k, num_episodes, horizon, next_obs),
        in_axes=(params_axis, 0, 0),
    )(params, tasks, keys)


def rollout_trial(env: MetaEnv, actor: Actor | PolicyFn, params: Params, task: Task, key: jax.Array,
                  num_episodes: int | None = None, horizon: int | None = None, next_obs: bool = True,
                  record_info: bool = False, record_state: bool = False) -> tuple[Trajectory, Carry]:
    """A trial: ``num_episodes`` consecutive episodes of one task with the actor's carry kept.

    The carry is initialised once per trial (``actor.initial_carry``), passed through
    ``actor.episode_start`` at every episode start and never reset between episodes; the env is
    reset at every episode start. The previous action/reward run on across episode boundaries and
    ``prev_done`` flags the first step of every episode after the first; these inputs are recorded
    in ``trajectory.extras`` (``prev_action``, ``prev_reward``, ``prev_done``) so a learner can
    replay the trial. ``record_state``: the env state of every step in ``extras["env_state"]``.

    Returns ``(trajectory, final_carry)`` with trajectory leaves [K, T, ...].
    """
    actor = as_actor(actor)
    num_episodes = env.spec.episodes_per_trial if num_episodes is None else num_episodes
    horizon = env.spec.horizon if horizon is None else horizon

    def episode(state, episode_key):
        carry, prev_action, prev_reward, prev_done = state
        (carry, prev_action, prev_reward), trajectory = _episode(
            env, actor, params, task, episode_key, carry, (prev_action, prev_reward, prev_done), horizon, next_obs,
            True, record_info, record_state,
        )
        # The next episode's first input flags the boundary.
        return (carry, prev_action, prev_reward, jnp.ones((), jnp.float32)), trajectory

    carry = actor.initial_carry(params, jax.random.fold_in(key, _CARRY_KEY))
    final, trajectory = jax.lax.scan(episode, (carry, *_first_inputs(env)), jax.random.split(key, num_episodes))
    return trajectory, final[0]


def rollout_trials(env: MetaEnv, actor: Actor | PolicyFn, params: Params, tasks: Task, key: jax.Array,
                   trials_per_task: int, num_episodes: int | None = None, horizon: int | None = None,
                   next_obs: bool = True, record_info: bool = False, record_state: bool = False) -> Trajectory:
    """``trials_per_task`` independent trials of each task in a batch (leading axis N).

    Leaves [N, R, K, T, ...].
    """
    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, (num_tasks, trials_per_task))

    def one(task, k):
        return rollout_trial(env, actor, params, task, k, num_episodes, horizon, next_obs, record_info,
                             record_state)[0]

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(tasks, keys)


@struct.dataclass
class StepFnActor(ActorBase):
    """An actor from a recurrent step function ``step_fn(params, carry, inputs, key) -> (carry, action,
    log_prob)`` and the carry every trial starts from (handy for scripted policies and tests)."""

    step_fn: Callable = struct.field(pytree_node=False)
    init_carry: Any = None

    def initial_carry(self, params, key):
        return self.init_carry

    def act(self, params, carry, inputs: StepInputs, key):
        carry, action, log_prob = self.step_fn(params, carry, inputs, key)
        return carry, action, log_prob, {}


@contextlib.contextmanager
def debug_nonfinite():
    """Opt-in debug mode: inside this context any jitted computation (a rollout, a meta-iteration)
    that produces a NaN or an inf raises ``FloatingPointError`` naming the first operation that made
    it (JAX's ``debug_nans`` / ``debug_infs``: the offending call is re-run op by op). Slow; for
    finding where a non-finite value first appears. ``--debug-nonfinite`` turns it on for a run."""
    with jax.debug_nans(True), jax.debug_infs(True):
        yield
