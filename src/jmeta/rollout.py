"""The rollout engine: fixed-horizon episodes as ``lax.scan`` over time, vmapped over episodes
and tasks, and trials (several episodes of one task) that carry a recurrent state.

Episodes never auto-reset inside the horizon: once an episode terminates, later steps are
masked (``mask = 0``, ``reward = 0``) so every batch has a static shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.envs.base import MetaEnv, Task
from jmeta.types import Params, Trajectory

#: ``policy_fn(params, obs, key) -> (action, log_prob)`` for feed-forward policies.
PolicyFn = Callable[[Params, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


@struct.dataclass
class RecurrentInput:
    """What a recurrent (RL²-style) policy sees at each step of a trial.

    obs: [*obs_shape]; prev_action: [*action_shape] (at the trial start: zeros for continuous actions,
    -1 for discrete ones, which ``jax.nn.one_hot`` encodes as all zeros, i.e. "no action yet");
    prev_reward: scalar; prev_done: scalar float, 1 at the first step of every episode after the
    first one, so episode boundaries inside a trial are visible to the agent.
    """

    obs: jax.Array
    prev_action: jax.Array
    prev_reward: jax.Array
    prev_done: jax.Array


#: ``step_fn(params, carry, inputs, key) -> (carry, action, log_prob)`` for recurrent policies.
RecurrentPolicyFn = Callable[[Params, Any, RecurrentInput, jax.Array], tuple[Any, jax.Array, jax.Array]]


def _select(keep_new: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda n, o: jnp.where(keep_new, n, o), new, old)


def rollout_episode(
    env: MetaEnv,
    policy_fn: PolicyFn,
    params: Params,
    task: Task,
    key: jax.Array,
    horizon: int | None = None,
) -> Trajectory:
    """One episode of ``task`` under ``policy_fn``. Returns a :class:`Trajectory` with leaves [T, ...]."""
    horizon = env.spec.horizon if horizon is None else horizon
    reset_key, scan_key = jax.random.split(key)
    obs, state = env.reset(reset_key, task)

    def step(carry, step_key):
        obs, state, alive, t = carry
        act_key, env_key = jax.random.split(step_key)
        action, log_prob = policy_fn(params, obs, act_key)
        out = env.step(env_key, state, action, task)
        mask = alive.astype(jnp.float32)
        transition = Trajectory(
            obs=obs,
            action=action,
            reward=out.reward * mask,
            terminated=out.terminated & alive,
            mask=mask,
            log_prob=log_prob,
            time=t,
        )
        # A finished episode stays finished: keep its last state and observation.
        next_obs = _select(alive, out.obs, obs)
        next_state = _select(alive, out.state, state)
        return (next_obs, next_state, alive & ~out.terminated, t + 1), transition

    init = (obs, state, jnp.ones((), bool), jnp.zeros((), jnp.int32))
    _, trajectory = jax.lax.scan(step, init, jax.random.split(scan_key, horizon))
    return trajectory


def rollout_episodes(
    env: MetaEnv,
    policy_fn: PolicyFn,
    params: Params,
    task: Task,
    key: jax.Array,
    num_episodes: int,
    horizon: int | None = None,
) -> Trajectory:
    """``num_episodes`` independent episodes of one task. Leaves [E, T, ...]."""
    keys = jax.random.split(key, num_episodes)
    return jax.vmap(lambda k: rollout_episode(env, policy_fn, params, task, k, horizon))(keys)


def rollout_tasks(
    env: MetaEnv,
    policy_fn: PolicyFn,
    params: Params,
    tasks: Task,
    key: jax.Array,
    num_episodes: int,
    horizon: int | None = None,
    params_per_task: bool = False,
) -> Trajectory:
    """Episodes for a batch of tasks (leading axis N). Leaves [N, E, T, ...].

    With ``params_per_task`` the params pytree has a leading task axis (e.g. adapted params).
    """
    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, num_tasks)
    params_axis = 0 if params_per_task else None
    return jax.vmap(
        lambda p, t, k: rollout_episodes(env, policy_fn, p, t, k, num_episodes, horizon),
        in_axes=(params_axis, 0, 0),
    )(params, tasks, keys)


def rollout_trial(
    env: MetaEnv,
    step_fn: RecurrentPolicyFn,
    params: Params,
    task: Task,
    key: jax.Array,
    init_carry: Any,
    num_episodes: int | None = None,
    horizon: int | None = None,
) -> tuple[Trajectory, Any]:
    """A trial: ``num_episodes`` consecutive episodes of one task with the policy carry kept.

    The recurrent carry is initialised once per trial (``init_carry``) and never reset between
    episodes; the environment is reset at every episode start. The policy sees
    :class:`RecurrentInput` (observation, previous action, previous reward, episode-boundary
    flag); these inputs are stored in ``trajectory.extras`` so a learner can replay the sequence.
    Steps after a termination are masked and leave the carry unchanged.

    Returns ``(trajectory, final_carry)`` with trajectory leaves [K, T, ...].
    """
    num_episodes = env.spec.episodes_per_trial if num_episodes is None else num_episodes
    horizon = env.spec.horizon if horizon is None else horizon
    action_shape = env.spec.action_space.shape
    action_dtype = jnp.dtype(env.spec.action_space.dtype)

    def episode(carry, episode_key):
        policy_carry, prev_action, prev_reward, prev_done = carry
        reset_key, scan_key = jax.random.split(episode_key)
        obs, state = env.reset(reset_key, task)

        def step(inner, step_key):
            obs, state, alive, t, policy_carry, prev_action, prev_reward, prev_done = inner
            act_key, env_key = jax.random.split(step_key)
            inputs = RecurrentInput(obs, prev_action, prev_reward, prev_done)
            new_carry, action, log_prob = step_fn(params, policy_carry, inputs, act_key)
            out = env.step(env_key, state, action, task)
            mask = alive.astype(jnp.float32)
            transition = Trajectory(
                obs=obs,
                action=action,
                reward=out.reward * mask,
                terminated=out.terminated & alive,
                mask=mask,
                log_prob=log_prob,
                time=t,
                extras={"prev_action": prev_action, "prev_reward": prev_reward, "prev_done": prev_done},
            )
            next_inner = (
                _select(alive, out.obs, obs),
                _select(alive, out.state, state),
                alive & ~out.terminated,
                t + 1,
                _select(alive, new_carry, policy_carry),
                _select(alive, action, prev_action),
                jnp.where(alive, out.reward, prev_reward),
                jnp.zeros((), jnp.float32),
            )
            return next_inner, transition

        init = (obs, state, jnp.ones((), bool), jnp.zeros((), jnp.int32),
                policy_carry, prev_action, prev_reward, prev_done)
        final, trajectory = jax.lax.scan(step, init, jax.random.split(scan_key, horizon))
        policy_carry, prev_action, prev_reward = final[4], final[5], final[6]
        # The next episode's first input flags the boundary.
        return (policy_carry, prev_action, prev_reward, jnp.ones((), jnp.float32)), trajectory

    no_action = -1 if jnp.issubdtype(action_dtype, jnp.integer) else 0
    init = (
        init_carry,
        jnp.full(action_shape, no_action, action_dtype),
        jnp.zeros((), jnp.float32),
        jnp.zeros((), jnp.float32),
    )
    final, trajectory = jax.lax.scan(episode, init, jax.random.split(key, num_episodes))
    return trajectory, final[0]


def rollout_trials(
    env: MetaEnv,
    step_fn: RecurrentPolicyFn,
    params: Params,
    tasks: Task,
    key: jax.Array,
    init_carry: Any,
    trials_per_task: int,
    num_episodes: int | None = None,
    horizon: int | None = None,
) -> Trajectory:
    """``trials_per_task`` independent trials of each task in a batch (leading axis N).

    Every trial starts from ``init_carry`` (one carry, shared). Leaves [N, R, K, T, ...].
    """
    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, (num_tasks, trials_per_task))

    def one(task, k):
        return rollout_trial(env, step_fn, params, task, k, init_carry, num_episodes, horizon)[0]

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(tasks, keys)
