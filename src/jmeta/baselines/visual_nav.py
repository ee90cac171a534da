"""Scripted reference policies for :mod:`jmeta.envs.pixel.visual_nav` (DREAM's sign environment).

These policies navigate with the environment state (the agent's position and heading): each is a
privileged actor of the shared rollout engine (:func:`jmeta.rollout.rollout_trial`: the policy
carry is kept across the episodes of a trial, steps after a termination are masked, the actor sees
the env state and the task), and :func:`run_trials` scores them. What each policy *knows about the
task* differs:

* :func:`random_policy`: uniform over the 4 actions.
* :func:`oracle`: knows the task's colour; in every episode walks to the object of that colour
  and of the instructed type (the instruction is read from the observation).
* :func:`sign_reader`: in the first (exploration) episode walks to a viewpoint facing the sign,
  reads the colour word **from the rendered pixels** (:func:`read_sign`: the number of letters,
  3 = RED, 4 = BLUE, 5 = GREEN), then ends the episode; in later episodes walks to the object of
  the read colour and the instructed type (a uniform guess if the word was not read).
* :func:`guesser`: draws a colour uniformly at the start of the trial and acts like the oracle
  for that colour.

Navigation (:func:`steer`): turn towards the target until the bearing error is at most half a
turn step (22.5 degrees), then step forward. From the start area every object and the sign's
viewpoint are reachable on a straight line through the opening between the top room and the hall.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jmeta.envs.base import Task
from jmeta.envs.pixel import visual_nav as vn
from jmeta.rollout import rollout_trial
from jmeta.types import StepInputs

#: Sign-reading viewpoints ``(x, z)`` for reading headings -28.5, -25.5, ..., 25.5 degrees (19 rows; none
#: satisfies the conditions beyond this range).
#: Each is the point closest to the start area (4.5, 5) on a 0.1 m grid of the hall such that from
#: it and from 8 points 0.7 m around it, looking along that heading, the longest word (GREEN) is
#: wholly in view 2 degrees inside the image edges, its letter gaps project to >= 1.3 pixels and its
#: font rows to >= 1.05 pixels, the straight path from (4.5, 5) crosses z = 6.6 at x in (0.8, 5.2),
#: and the green key is more than 2.4 m away (a grid search, run offline).
VIEWPOINTS = (
    (5.5, 7.4), (5.4, 7.3), (5.3, 7.2), (5.1, 7.2), (4.9, 7.3), (4.6, 7.6), (4.4, 7.9), (4.1, 8.2), (3.9, 8.5), (3.7, 8.8),
    (3.8, 9.3), (3.9, 9.8), (3.9, 10.2), (4.0, 10.6), (4.2, 11.0), (4.5, 11.5), (4.6, 11.8), (4.9, 12.2),
    (5.2, 12.5),
)
VIEW_HEADINGS_DEG = tuple(-28.5 + 3.0 * i for i in range(19))
ARRIVE_DISTANCE = 0.7


@struct.dataclass
class PolicyInput:
    """What a scripted policy sees at one step: obs float32[D]; state: :class:`VisualNavState`;
    task; episode: int32 index of the episode in the trial; time: int32 step in the episode."""

    obs: jax.Array
    state: vn.VisualNavState
    task: Any
    episode: jax.Array
    time: jax.Array


#: ``step_fn(carry, inputs, key) -> (carry, action int32)``.
StepFn = Callable[[Any, PolicyInput, jax.Array], tuple[Any, jax.Array]]


@dataclasses.dataclass(frozen=True)
class ScriptedPolicy:
    """name; init_carry (a pytree of arrays, reset at each trial); step_fn (see :data:`StepFn`).

    A privileged actor of :mod:`jmeta.rollout`: its carry is ``(episode index, policy carry)``, the
    index counting the episodes of the trial (it is what :class:`PolicyInput` reports)."""

    name: str
    init_carry: Any
    step_fn: StepFn

    privileged = True

    def initial_carry(self, params: Any, key: jax.Array) -> tuple[jax.Array, Any]:
        return jnp.full((), -1, jnp.int32), self.init_carry

    def episode_start(self, params: Any, carry: tuple, inputs: StepInputs, key: jax.Array) -> tuple:
        episode, policy_carry = carry
        return episode + 1, policy_carry

    def act(self, params: Any, carry: tuple, inputs: StepInputs, key: jax.Array):
        episode, policy_carry = carry
        seen = PolicyInput(inputs.obs, inputs.env_state, inputs.task, episode, inputs.time)
        policy_carry, action = self.step_fn(policy_carry, seen, key)
        return (episode, policy_carry), action, jnp.zeros(()), {}


# ---------------------------------------------------------------- navigation and sign reading


def wrap_angle(a: jax.Array) -> jax.Array:
    """Angle in ``(-pi, pi]``."""
    return jnp.pi - jnp.mod(jnp.pi - a, 2 * jnp.pi)


def bearing(position: jax.Array, target: jax.Array) -> jax.Array:
    """MiniWorld heading that points from ``position`` to ``target`` (forward = (cos h, -sin h))."""
    d = target - position
    return jnp.arctan2(-d[1], d[0])


def turn_towards(heading: jax.Array, goal_heading: jax.Array, turn_deg: float = 45.0) -> jax.Array:
    """Turn action towards ``goal_heading`` (left if the error is positive), or forward when the
    error is within half a turn step."""
    err = wrap_angle(goal_heading - heading)
    tol = math.radians(turn_deg) / 2 + 1e-3
    return jnp.where(jnp.abs(err) <= tol, vn.FORWARD, jnp.where(err > 0, vn.TURN_LEFT, vn.TURN_RIGHT)).astype(
        jnp.int32
    )


def steer(position: jax.Array, heading: jax.Array, target: jax.Array) -> jax.Array:
    """Action that moves towards ``target`` float32[2]: turn to the bearing, then forward."""
    return turn_towards(heading, bearing(position, target))


def object_target(color: jax.Array, instruction: jax.Array) -> jax.Array:
    """Centre float32[2] of the object of ``color`` (0 blue, 1 red, 2 green) and type ``instruction``."""
    return jnp.asarray(vn.OBJECT_POSITIONS)[instruction * 3 + color]


def sign_heading(start_heading: jax.Array, turn_deg: float = 45.0) -> jax.Array:
    """The heading reachable from ``start_heading`` by whole turn steps that is closest to +x."""
    step = math.radians(turn_deg)
    return wrap_angle(start_heading - step * jnp.round(start_heading / step))


def reading_heading(start_heading: jax.Array, position: jax.Array, turn_deg: float = 45.0) -> jax.Array:
    """The heading to read the sign from: among the headings reachable by whole turns that lie in
    the tabulated range, the one whose viewpoint is nearest to ``position``."""
    e = sign_heading(start_heading, turn_deg)
    candidates = e + jnp.radians(jnp.array([-turn_deg, 0.0, turn_deg], jnp.float32))
    degrees = jnp.degrees(candidates)
    valid = (degrees >= VIEW_HEADINGS_DEG[0] - 1.5) & (degrees <= VIEW_HEADINGS_DEG[-1] + 1.5)
    distance = jax.vmap(lambda h: jnp.linalg.norm(sign_viewpoint(h) - position))(candidates)
    return candidates[jnp.argmin(jnp.where(valid, distance, jnp.inf))]


def sign_viewpoint(heading: jax.Array) -> jax.Array:
    """Where to stand to read the sign looking along ``heading`` (in the tabulated range): the
    row of :data:`VIEWPOINTS` of the nearest tabulated heading."""
    index = jnp.argmin(jnp.abs(jnp.asarray(VIEW_HEADINGS_DEG) - jnp.degrees(wrap_angle(heading))))
    return jnp.asarray(VIEWPOINTS, jnp.float32)[index]


def count_letters(image: jax.Array) -> jax.Array:
    """Runs of image columns that contain ink (near-black pixels, all channels < 40) -> int32.

    Every glyph of the built-in font is one connected run of columns and letters are separated by
    blank columns, so on a legible view of the sign this is the number of letters.
    """
    ink = jnp.all(image < 40, axis=-1).any(axis=0)  # [W]
    starts = ink[1:] & ~ink[:-1]
    return (ink[0].astype(jnp.int32) + starts.sum()).astype(jnp.int32)


def read_sign(image: jax.Array) -> jax.Array:
    """Colour index from a view of the sign (uint8[H, W, 3]): 3 letters RED (1), 4 BLUE (0),
    5 GREEN (2); -1 if the count is anything else."""
    n = count_letters(image)
    lengths = jnp.asarray([len(w) for w in vn.SIGN_WORDS])
    match = lengths == n
    return jnp.where(match.any(), jnp.argmax(match), -1).astype(jnp.int32)


# ---------------------------------------------------------------- policies


def random_policy() -> ScriptedPolicy:
    """Uniformly random actions."""

    def step_fn(carry, inputs, key):
        del inputs
        return carry, jax.random.randint(key, (), 0, vn.NUM_ACTIONS, jnp.int32)

    return ScriptedPolicy("random", jnp.zeros((), jnp.int32), step_fn)


def _go_to_object(inputs: PolicyInput, color: jax.Array) -> jax.Array:
    _, instruction = vn.split_observation(inputs.obs)
    return steer(inputs.state.position, inputs.state.heading, object_target(color, instruction))


def oracle() -> ScriptedPolicy:
    """Knows the task's colour: walks to the instructed object of that colour in every episode."""

    def step_fn(carry, inputs, key):
        del key
        return carry, _go_to_object(inputs, inputs.task.color)

    return ScriptedPolicy("oracle", jnp.zeros((), jnp.int32), step_fn)


def guesser() -> ScriptedPolicy:
    """Draws a colour uniformly at the trial start; then acts like the oracle for that colour."""

    def step_fn(carry, inputs, key):
        guess = jnp.where(carry < 0, jax.random.randint(key, (), 0, 3, jnp.int32), carry)
        return guess, _go_to_object(inputs, guess)

    return ScriptedPolicy("guesser", jnp.full((), -1, jnp.int32), step_fn)


@struct.dataclass
class SignReaderCarry:
    """color: int32, the colour read (-1 unknown); view_heading: float32, the heading from which the
    sign is read (set at the first step); started: bool."""

    color: jax.Array
    view_heading: jax.Array
    started: jax.Array


def sign_reader() -> ScriptedPolicy:
    """Reads the sign in the exploration episode (from pixels), then goes to the right object."""
    init = SignReaderCarry(
        color=jnp.full((), -1, jnp.int32), view_heading=jnp.zeros((), jnp.float32), started=jnp.zeros((), bool)
    )

    def step_fn(carry: SignReaderCarry, inputs: PolicyInput, key):
        state = inputs.state
        view_heading = jnp.where(carry.started, carry.view_heading, reading_heading(state.heading, state.position))
        viewpoint = sign_viewpoint(view_heading)
        arrived = jnp.linalg.norm(state.position - viewpoint) < ARRIVE_DISTANCE
        aligned = jnp.abs(wrap_angle(state.heading - view_heading)) < 1e-2
        image, _ = vn.split_observation(inputs.obs)
        read = read_sign(image)
        exploring = inputs.episode == 0
        reading_now = exploring & arrived & aligned & (carry.color < 0)
        color = jnp.where(reading_now, read, carry.color)
        explore_action = jnp.where(
            carry.color >= 0,
            vn.END_EPISODE,
            jnp.where(
                arrived,
                jnp.where(aligned, vn.END_EPISODE, turn_towards(state.heading, view_heading)),
                steer(state.position, state.heading, viewpoint),
            ),
        )
        # Execution: the colour read (or a uniform guess when nothing was read).
        guess = jax.random.randint(key, (), 0, 3, jnp.int32)
        exec_color = jnp.where(color >= 0, color, guess)
        color = jnp.where(exploring, color, exec_color)
        action = jnp.where(exploring, explore_action, _go_to_object(inputs, exec_color)).astype(jnp.int32)
        return SignReaderCarry(color=color, view_heading=view_heading, started=jnp.ones((), bool)), action

    return ScriptedPolicy("sign_reader", init, step_fn)


POLICIES: dict[str, Callable[[], ScriptedPolicy]] = {
    "random": random_policy,
    "guesser": guesser,
    "sign_reader": sign_reader,
    "oracle": oracle,
}


# ---------------------------------------------------------------- trial runner


def run_trial(
    env: vn.VisualNav, policy: ScriptedPolicy, task: Task, key: jax.Array, num_episodes: int | None = None
) -> tuple[dict[str, jax.Array], Any]:
    """One trial of ``task`` through the rollout engine. Returns ``(per_episode, final_carry)`` where
    ``per_episode`` holds float32[K] ``return``, ``success`` (touched the right object), ``touched``,
    ``length``, and ``final_carry`` is the policy's carry at the end of the trial."""
    traj, (_, carry) = rollout_trial(env, policy, None, task, key, num_episodes, next_obs=False, record_info=True)
    info = traj.extras["info"]
    per_episode = {"return": traj.episode_return(), "success": info["success"].sum(-1),
                   "touched": info["touched"].sum(-1), "length": traj.mask.sum(-1)}
    return per_episode, carry


_BATCHED: dict[tuple[int, int, int | None], tuple[Any, Any, Callable]] = {}


def _batched(env: vn.VisualNav, policy: ScriptedPolicy, num_episodes: int | None) -> Callable:
    """The jitted, vmapped :func:`run_trial` of ``(env, policy)`` (cached; the policy holds arrays, so by id)."""
    key = (id(env), id(policy), num_episodes)
    cached = _BATCHED.get(key)
    if cached is None or cached[0] is not env or cached[1] is not policy:
        fn = jax.jit(jax.vmap(lambda t, k: run_trial(env, policy, t, k, num_episodes)))
        cached = _BATCHED[key] = (env, policy, fn)
    return cached[2]


def run_trials(
    env: vn.VisualNav, policy: ScriptedPolicy, tasks: Task, key: jax.Array, num_episodes: int | None = None
) -> tuple[dict[str, jax.Array], Any]:
    """:func:`run_trial` for a batch of tasks (leading axis N), jitted and vmapped: leaves [N, K]."""
    n = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    return _batched(env, policy, num_episodes)(tasks, jax.random.split(key, n))

