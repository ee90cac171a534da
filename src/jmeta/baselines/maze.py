"""Scripted policies for ``maze2d`` / ``maze3d`` and a jitted runner that scores them.

A scripted policy is one of four behaviours, selected by an integer ``mode`` so that one compiled
program runs all of them: :func:`policy_init` ``(mode, task, key) -> carry`` at the start of an
episode and :func:`policy_act` ``(env, mode, carry, obs, state, task, key) -> (carry, action)`` at
every step. Navigation uses the environment state and the layout (a breadth-first distance field
over the grid, computed once per episode in JAX); the *colour* of the goal is read only where each
policy says:

* :func:`random_policy`: uniform over the 3 actions.
* :func:`oracle`: knows the goal from the task and walks a shortest path to it.
* :func:`explorer`: walks to the grey box, reads the revealed colour from the **observation**
  (maze2d: the reveal entries of the vector; maze3d: the pixels at the centre of the image while
  it faces the grey box from within reveal distance), then walks to the box of that colour.
  It never reads ``task.goal``.
* :func:`guesser`: walks straight to the blue or the red box, chosen uniformly at the start.

Usage::

    stats = run_episodes(env, all_policies(), tasks, key)   # leaves float32[4, N]

Movement keeps the agent on the lattice of cell centres: it turns (45 deg per step, the shorter
way) until its heading points along the axis towards the next waypoint, then moves forward; the
forward step (0.5) divides the cell (2.0), so waypoints are reached exactly.
:class:`MazeActor` makes the behaviours a privileged actor of the shared rollout engine
(:mod:`jmeta.rollout`; the behaviour index is the actor's ``params``); :func:`run_episodes` rolls
one episode per task through it (``vmap`` over tasks) and returns per-episode return, success,
failure, length and whether the reveal was seen, from the env's recorded step ``info``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.pixel.maze import (
    BLUE,
    FORWARD,
    GREY,
    NUM_ACTIONS,
    NUM_HEADINGS,
    RED,
    TURN_LEFT,
    TURN_RIGHT,
    Maze2D,
    Maze3D,
    MazeBase,
    MazeState,
    MazeTask,
    box_distances,
    cell_centre,
    split_observation_2d,
)
from jmeta.envs.wrappers import unwrap
from jmeta.rollout import ActorBase, rollout_episode
from jmeta.types import StepInputs

#: ``(col, row)`` offsets of the 4 neighbours of a cell.
_NEIGHBOURS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.int32)


@struct.dataclass
class NavCarry:
    """fields: int32[3, rows, cols] path lengths to the grey, blue, red box cells; waypoint: int32[2]
    the cell whose centre the agent is walking to; target: int32 box index (0 grey, 1 blue, 2 red);
    belief: int32 goal colour read so far (-1 unknown, 0 blue, 1 red)."""

    fields: jax.Array
    waypoint: jax.Array
    target: jax.Array
    belief: jax.Array


# ---------------------------------------------------------------- navigation


def distance_fields(task: MazeTask) -> jax.Array:
    """int32[3, rows, cols]: 4-connected path lengths to the cells of the grey, blue and red boxes
    (field ``k`` through free cells other than the two other boxes' cells); ``rows * cols`` where
    unreachable. Jacobi relaxation of the three fields at once, ``rows * cols`` sweeps under
    ``fori_loop``."""
    rows, cols = task.walls.shape
    big = rows * cols
    row_ids = jnp.arange(rows)[None, :, None]
    col_ids = jnp.arange(cols)[None, None, :]
    on_box = (row_ids == task.boxes[:, 1, None, None]) & (col_ids == task.boxes[:, 0, None, None])  # [3, R, C]
    any_box = on_box.any(axis=0)
    passable = ~task.walls[None] & (~any_box[None] | on_box)
    dist = jnp.where(on_box, 0, big).astype(jnp.int32)

    def sweep(_, d):
        padded = jnp.pad(d, ((0, 0), (1, 1), (1, 1)), constant_values=big)
        nb = jnp.minimum(
            jnp.minimum(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]),
            jnp.minimum(padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]),
        )
        return jnp.where(passable, jnp.minimum(d, nb + 1), big).astype(jnp.int32)

    return jax.lax.fori_loop(0, rows * cols, sweep, dist)


def _field_at(field: jax.Array, cells: jax.Array) -> jax.Array:
    rows, cols = field.shape
    inside = (cells[..., 0] >= 0) & (cells[..., 0] < cols) & (cells[..., 1] >= 0) & (cells[..., 1] < rows)
    value = field[jnp.clip(cells[..., 1], 0, rows - 1), jnp.clip(cells[..., 0], 0, cols - 1)]
    return jnp.where(inside, value, rows * cols)


def nearest_free_cell(position: jax.Array, task: MazeTask, cell_size: float) -> jax.Array:
    """int32[2]: among the (up to 4) cells whose centres are nearest to ``position``, the closest one
    that is neither a wall nor a box cell (for re-planning from a point between two centres)."""
    base = jnp.floor(position / cell_size - 0.5).astype(jnp.int32)
    cands = base + jnp.array([[0, 0], [1, 0], [0, 1], [1, 1]], jnp.int32)
    rows, cols = task.walls.shape
    cc = jnp.clip(cands, 0, jnp.array([cols - 1, rows - 1]))
    bad = task.walls[cc[:, 1], cc[:, 0]] | jnp.any(jnp.all(cc[:, None, :] == task.boxes[None], -1), -1)
    dist = jnp.linalg.norm(cell_centre(cc, cell_size) - position, axis=-1)
    return cc[jnp.argmin(jnp.where(bad, jnp.inf, dist))]


def steer(position: jax.Array, heading: jax.Array, goal_point: jax.Array) -> jax.Array:
    """The action towards ``goal_point``: forward if the heading is the one of the 8 nearest to the
    direction of ``goal_point``, else a turn the shorter way (left on a tie)."""
    vec = goal_point - position
    desired = jnp.mod(jnp.round(jnp.arctan2(vec[1], vec[0]) / (np.pi / 4)), NUM_HEADINGS).astype(jnp.int32)
    diff = jnp.mod(desired - heading, NUM_HEADINGS)
    return jnp.where(diff == 0, FORWARD, jnp.where(diff <= 4, TURN_LEFT, TURN_RIGHT)).astype(jnp.int32)


def navigate(carry: NavCarry, state: MazeState, cell_size: float) -> tuple[NavCarry, jax.Array]:
    """One step towards box ``carry.target``: at the waypoint's centre, the waypoint advances to the
    neighbour one step closer on the distance field (ending on the box's cell); then :func:`steer`."""
    field = carry.fields[carry.target]
    centre = cell_centre(carry.waypoint, cell_size)
    arrived = jnp.max(jnp.abs(state.position - centre)) < 1e-3
    neighbours = carry.waypoint + jnp.asarray(_NEIGHBOURS)
    best = neighbours[jnp.argmin(_field_at(field, neighbours))]
    advance = arrived & (_field_at(field, carry.waypoint) > 0)
    waypoint = jnp.where(advance, best, carry.waypoint)
    action = steer(state.position, state.heading, cell_centre(waypoint, cell_size))
    return carry.replace(waypoint=waypoint), action


def _init_carry(task: MazeTask, target: jax.Array, belief: jax.Array) -> NavCarry:
    return NavCarry(
        fields=distance_fields(task),
        waypoint=task.start,
        target=jnp.asarray(target, jnp.int32),
        belief=jnp.asarray(belief, jnp.int32),
    )


# ---------------------------------------------------------------- reading the reveal


def read_reveal_2d(obs: jax.Array, grid_shape: tuple[int, int]) -> jax.Array:
    """int32: the goal colour shown in a maze2d observation (0 blue, 1 red), -1 if none is shown."""
    reveal = split_observation_2d(obs, grid_shape)["reveal"]
    return jnp.where(reveal.sum() > 0.5, jnp.argmax(reveal), -1).astype(jnp.int32)


def read_reveal_3d(obs: jax.Array, image_shape: tuple[int, int], patch: int = 2, margin: float = 0.25) -> jax.Array:
    """int32: the colour at the centre of a maze3d observation (mean of a ``2 patch`` square of
    pixels): 0 if blue exceeds red by ``margin``, 1 if red exceeds blue by ``margin``, else -1."""
    height, width = image_shape
    image = obs.reshape(height, width, 3)
    centre = image[height // 2 - patch : height // 2 + patch, width // 2 - patch : width // 2 + patch]
    red, blue = centre[..., 0].mean(), centre[..., 2].mean()
    return jnp.where(blue - red > margin, 0, jnp.where(red - blue > margin, 1, -1)).astype(jnp.int32)


def facing_grey(state: MazeState, task: MazeTask, env: MazeBase) -> jax.Array:
    """bool: within reveal distance of the grey box and heading within 22.5 deg of its centre."""
    p = env.params
    near = box_distances(state.position, task, p.cell_size)[GREY] < p.reveal_distance
    vec = cell_centre(task.boxes[GREY], p.cell_size) - state.position
    return near & (steer(state.position, state.heading, state.position + vec) == FORWARD)


def reveal_reader(env: MazeBase) -> Callable[[jax.Array, MazeState, MazeTask], jax.Array]:
    """``read(obs, state, task) -> int32`` colour seen in the observation (-1 none) for ``env``.

    maze2d: the reveal entries. maze3d: the image centre, looked at only while facing the grey box
    from within reveal distance (state-based gating: elsewhere the centre may show the coloured
    boxes themselves); the colour itself comes from the pixels.
    """
    env = unwrap(env)  # the validated env from jmeta.make wraps the maze class
    if isinstance(env, Maze2D):
        shape = env.grid_shape
        return lambda obs, state, task: read_reveal_2d(obs, shape)
    if isinstance(env, Maze3D):
        image_shape = (env.params.image_height, env.params.image_width)

        def read(obs, state, task):
            seen = read_reveal_3d(obs, image_shape)
            return jnp.where(facing_grey(state, task, env), seen, -1)

        return read
    raise TypeError(f"no reveal reader for {type(env).__name__}")


# ---------------------------------------------------------------- policies

#: The scripted behaviours; a policy is one of them, selected by a (traceable) index so that one
#: compiled runner serves all four.
MODES = ("random", "guesser", "explorer", "oracle")
RANDOM, GUESSER, EXPLORER, ORACLE = range(4)


@dataclasses.dataclass(frozen=True)
class ScriptedPolicy:
    """A scripted behaviour: ``name`` in :data:`MODES` and its index ``mode``.

    random: uniform over the 3 actions. guesser: walks to the blue or the red box, chosen
    uniformly at the start of the episode. explorer: walks to the grey box, reads the goal colour
    from the observation (:func:`reveal_reader`), then walks to the box of that colour (if it never
    reads a colour it stays at the grey box; it never uses ``task.goal``). oracle: walks to the goal
    box given by ``task.goal``.
    """

    name: str
    mode: int


def random_policy() -> ScriptedPolicy:
    return ScriptedPolicy("random", RANDOM)


def guesser() -> ScriptedPolicy:
    return ScriptedPolicy("guesser", GUESSER)


def explorer() -> ScriptedPolicy:
    return ScriptedPolicy("explorer", EXPLORER)


def oracle() -> ScriptedPolicy:
    return ScriptedPolicy("oracle", ORACLE)


def all_policies() -> list[ScriptedPolicy]:
    """random, guesser, explorer, oracle."""
    return [ScriptedPolicy(name, i) for i, name in enumerate(MODES)]


def policy_init(mode: jax.Array, task: MazeTask, key: jax.Array) -> NavCarry:
    """The carry at the start of an episode for behaviour ``mode`` (int32, see :data:`MODES`)."""
    guess = jax.random.randint(key, (), 0, 2)
    belief = jnp.where(mode == GUESSER, guess, jnp.where(mode == ORACLE, task.goal, -1))
    target = jnp.where(belief < 0, GREY, belief + 1)
    return _init_carry(task, target, belief)


def policy_act(
    env: MazeBase, mode: jax.Array, carry: NavCarry, obs: jax.Array, state: MazeState, task: MazeTask, key: jax.Array
) -> tuple[NavCarry, jax.Array]:
    """One step of behaviour ``mode``: ``(carry, action int32)``. Only the explorer updates its belief,
    and only from ``obs`` (through :func:`reveal_reader`)."""
    cs = env.params.cell_size
    seen = reveal_reader(env)(obs, state, task)
    learned = (mode == EXPLORER) & (carry.belief < 0) & (seen >= 0)
    belief = jnp.where(learned, seen, carry.belief)
    target = jnp.where(belief < 0, GREY, belief + 1).astype(jnp.int32)
    # Re-plan from the nearest free cell centre when the target changes.
    waypoint = jnp.where(learned, nearest_free_cell(state.position, task, cs), carry.waypoint)
    carry, action = navigate(carry.replace(belief=belief, target=target, waypoint=waypoint), state, cs)
    random_action = jax.random.randint(key, (), 0, NUM_ACTIONS, jnp.int32)
    return carry, jnp.where(mode == RANDOM, random_action, action).astype(jnp.int32)


# ---------------------------------------------------------------- runner


@struct.dataclass
class EpisodeStats:
    """Per-episode float32[...]: return, success (goal box touched), failure (wrong box touched),
    length (steps until termination or the horizon), revealed (the reveal was active at some step)."""

    episode_return: jax.Array
    success: jax.Array
    failure: jax.Array
    length: jax.Array
    revealed: jax.Array


@dataclasses.dataclass(frozen=True)
class MazeActor(ActorBase):
    """The scripted behaviours as a privileged actor (it sees the env state and the task, for
    navigation and for the oracle's goal); ``params`` is the behaviour index (int32, :data:`MODES`),
    so one compiled rollout serves all four. The carry is a :class:`NavCarry`, planned at every
    episode start from the task's layout."""

    env: MazeBase
    privileged = True

    def initial_carry(self, params: jax.Array, key: jax.Array) -> NavCarry:
        rows, cols = self.env.grid_shape
        return NavCarry(fields=jnp.zeros((3, rows, cols), jnp.int32), waypoint=jnp.zeros(2, jnp.int32),
                        target=jnp.zeros((), jnp.int32), belief=jnp.zeros((), jnp.int32))

    def episode_start(self, params: jax.Array, carry: NavCarry, inputs: StepInputs, key: jax.Array) -> NavCarry:
        return policy_init(params, inputs.task, key)

    def act(self, params: jax.Array, carry: NavCarry, inputs: StepInputs, key: jax.Array):
        carry, action = policy_act(self.env, params, carry, inputs.obs, inputs.env_state, inputs.task, key)
        return carry, action, jnp.zeros(()), {}


def run_episode(env: MazeBase, mode: jax.Array, task: MazeTask, key: jax.Array) -> EpisodeStats:
    """One episode of ``task`` under behaviour ``mode`` (scalars) through the rollout engine
    (``env.spec.horizon`` steps; steps after a termination are masked)."""
    traj = rollout_episode(env, MazeActor(env), mode, task, key, next_obs=False, record_info=True)
    info = traj.extras["info"]
    return EpisodeStats(
        episode_return=traj.episode_return(),
        success=info["success"].max(),
        failure=info["failure"].max(),
        length=traj.mask.sum(),
        revealed=info["reveal"].max(),
    )


def run_episodes(
    env: MazeBase, policies: ScriptedPolicy | list[ScriptedPolicy], tasks: MazeTask, key: jax.Array
) -> EpisodeStats:
    """One episode per task (leading axis N) for each policy, jitted and vmapped over tasks.

    With one policy the leaves are float32[N]; with a list of P policies, float32[P, N] (every
    policy gets the same tasks and the same keys). All policies share one compiled program per
    ``(env, N)``: the behaviour is a traced argument.
    """
    single = isinstance(policies, ScriptedPolicy)
    num = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, num)
    runner = _runner(env)
    stats = [runner(jnp.int32(p.mode), tasks, keys) for p in ([policies] if single else policies)]
    return stats[0] if single else jax.tree_util.tree_map(lambda *x: jnp.stack(x), *stats)


_RUNNERS: dict[int, tuple[MazeBase, Callable]] = {}


def _runner(env: MazeBase) -> Callable:
    """The jitted ``(mode, tasks [N], keys [N]) -> EpisodeStats [N]`` of ``env`` (cached per env)."""
    cached = _RUNNERS.get(id(env))
    if cached is None or cached[0] is not env:
        one = lambda m, t, k: run_episode(env, m, t, k)  # noqa: E731
        fn = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
        cached = _RUNNERS[id(env)] = (env, fn)
    return cached[1]


__all__ = [
    "BLUE",
    "GREY",
    "MODES",
    "RED",
    "EpisodeStats",
    "MazeActor",
    "NavCarry",
    "ScriptedPolicy",
    "all_policies",
    "distance_fields",
    "explorer",
    "guesser",
    "navigate",
    "oracle",
    "policy_act",
    "policy_init",
    "random_policy",
    "read_reveal_2d",
    "read_reveal_3d",
    "reveal_reader",
    "run_episode",
    "run_episodes",
]
