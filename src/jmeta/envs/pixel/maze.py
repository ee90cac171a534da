"""Information-seeking mazes: a grey box reveals which of a blue and a red box is the goal.

Seed: Kamienny et al. 2020, "Learning Adaptive Exploration Strategies in Dynamic Environments
Through Informed Policy Regularization" (IMPORT), Maze2D / Maze3D; the IMPORT code is not
available. Closest verified relative: facebookresearch/mtenv ``mtenv/envs/mpte/two_goal_maze_env.py``
(``MT-TwoGoalMaze-v0``, MiniWorld), from which the action set (turn left 45 deg, turn right 45 deg,
move forward), the reward (+1 for the right box, -1 for the wrong one, both end the episode), the
Euclidean touch test between the agent's and the box's centres and the horizon (200) are taken;
MiniWorld gives the agent (radius 0.4, camera 1.5 high, 60 deg field of view) and the box and wall
sizes. Everything about the maze itself is jmeta's own (see ``docs/envs/maze2d.md``).

Definition shared by ``maze2d`` and ``maze3d`` (they differ only in the observation):

  A layout is a grid of ``rows x cols`` square cells of side ``cell_size`` (default 2.0), each a
  wall or free, with a wall border, a start cell and three box cells (grey, blue, red). World
  coordinates ``(x, y)`` have the origin at the bottom-left corner of cell ``(col 0, row 0)``;
  cell ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)`` times ``cell_size``. Layout
  strings are written as a map seen from above, north (+y) up, so their *last* line is row 0.
  The agent is a disc of radius ``agent_radius`` (0.4, MiniWorld's) with a heading ``k`` in
  ``{0, ..., 7}`` (angle ``k * 45`` deg from +x, counter-clockwise). Actions (MT-TwoGoalMaze's
  order): 0 turn left (``k + 1``), 1 turn right (``k - 1``), 2 move ``forward_step`` (0.5) along
  the heading. A move whose end point would put the disc inside a wall cell or a box (an
  axis-aligned square of half side ``box_half_size``, 0.4) is not made (MiniWorld rejects
  intersecting moves). Each episode starts at the centre of the layout's start cell, facing the
  layout's start heading: in every layout the agent starts 3-4 cells straight in front of one of
  the coloured boxes, facing it down a clear corridor (the tempting exploit is a coin flip).
  ``random_start_heading=True`` draws the heading uniformly from the 8 instead, as MT-TwoGoalMaze.

  After every step: the Euclidean distance ``d`` between the agent's centre and each box's
  centre is measured. ``d < touch_distance`` (1.25) to the goal box gives ``+1`` and ends the
  episode, to the other coloured box ``-1`` and ends it (if both, ``-1``, MT-TwoGoalMaze's
  order); otherwise the reward is 0. ``d < reveal_distance`` (1.25) to the grey box *reveals* the
  goal colour in the observation of that step, and only then. Episodes are truncated at
  ``horizon`` (200).

Task: :class:`MazeTask` — the goal colour (0 blue, 1 red, uniform) and the layout (walls, start,
box cells, wall faces; ``default``: the fixed :data:`DEFAULT_LAYOUT`, ``random_layout``: one of a
fixed, seeded bank of 100 generated 9 x 9 mazes, uniform). Shapes are static per variant, so one
compile serves every task. ``maze2d`` observes a symbolic vector (:class:`Maze2D`), ``maze3d`` an
egocentric image rendered by :mod:`jmeta.envs.pixel.render` (:class:`Maze3D`). The layouts
themselves (parsing, validation, the seeded generator) are host-side numpy code in
:mod:`jmeta.envs.pixel.maze_layouts`; this module is the JAX env core.
"""

from __future__ import annotations

import abc
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.pixel import render
from jmeta.envs.pixel.maze_layouts import (
    BLUE,
    DEFAULT_LAYOUT,
    DEFAULT_START_HEADING,
    GREY,
    RED,
    SMALL_LAYOUT,
    SMALL_START_HEADING,
    LayoutBank,
    parse_layout,
    random_layouts,
)
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box, Discrete
from jmeta.tasks import TaskDistributionBase

# ---------------------------------------------------------------- constants

NUM_ACTIONS = 3
ACTION_NAMES = ("turn_left", "turn_right", "forward")
TURN_LEFT, TURN_RIGHT, FORWARD = 0, 1, 2
NUM_HEADINGS = 8

#: Goal colour ids stored in :attr:`MazeTask.goal`: 0 blue, 1 red (box index ``goal + 1``).
GOAL_NAMES = ("blue", "red")

_S = float(np.sqrt(0.5))
#: Unit vector of each heading ``k`` (angle ``45 k`` deg from +x, counter-clockwise), float32[8, 2].
HEADINGS = np.array(
    [[1, 0], [_S, _S], [0, 1], [-_S, _S], [-1, 0], [-_S, -_S], [0, -1], [_S, -_S]], np.float32
)

LAYOUT_CHOICES = ("default", "small", "random")


# ---------------------------------------------------------------- params, task, state


@dataclasses.dataclass(frozen=True)
class MazeParams:
    """Static definition of one maze variant (every field overridable through ``jmeta.make``).

    layout: ``"default"`` (the fixed :data:`DEFAULT_LAYOUT`), ``"small"`` (the fixed
    :data:`SMALL_LAYOUT`, for CPU-sized learning tests) or ``"random"`` (a bank of
    ``num_layouts`` generated ``layout_size x layout_size`` mazes from ``layout_seed``).
    Lengths are in world units (a cell is ``cell_size`` wide); rewards are per touch.
    """

    horizon: int = 200
    episodes_per_trial: int = 1
    layout: str = "default"
    num_layouts: int = 100
    layout_size: int = 9
    layout_seed: int = 0
    cell_size: float = 2.0
    agent_radius: float = 0.4
    forward_step: float = 0.5
    box_half_size: float = 0.4
    touch_distance: float = 1.25
    reveal_distance: float = 1.25
    goal_reward: float = 1.0
    wrong_reward: float = -1.0
    random_start_heading: bool = False

    def validate(self) -> None:
        """Raises :class:`ConfigError` naming the first invalid field and its valid values."""
        if self.layout not in LAYOUT_CHOICES:
            raise ConfigError(f"maze.layout must be one of {', '.join(LAYOUT_CHOICES)}; got {self.layout!r}")
        if self.episodes_per_trial < 1:
            raise ConfigError(f"maze.episodes_per_trial must be >= 1, got {self.episodes_per_trial}")
        if self.num_layouts < 1:
            raise ConfigError(f"maze.num_layouts must be >= 1, got {self.num_layouts}")
        if self.layout_size < 7 or self.layout_size % 2 == 0:
            raise ConfigError(f"maze.layout_size must be odd and >= 7, got {self.layout_size}")
        if not 0 < self.agent_radius < self.cell_size / 2:
            raise ConfigError(
                f"maze.agent_radius must be in (0, cell_size / 2) = (0, {self.cell_size / 2}), got {self.agent_radius}"
            )
        if not 0 < self.box_half_size < self.cell_size / 2:
            raise ConfigError(f"maze.box_half_size must be in (0, cell_size / 2), got {self.box_half_size}")
        if not 0 < self.forward_step <= self.cell_size / 2:
            raise ConfigError(f"maze.forward_step must be in (0, cell_size / 2], got {self.forward_step}")
        reach = self.box_half_size + self.agent_radius
        for name in ("touch_distance", "reveal_distance"):
            value = getattr(self, name)
            if not reach < value < self.cell_size:
                raise ConfigError(
                    f"maze.{name} must be in (box_half_size + agent_radius, cell_size) = ({reach}, {self.cell_size}) "
                    f"so that it can be reached but not through a wall; got {value}"
                )


@struct.dataclass
class MazeTask:
    """One task. goal: int32 (0 blue, 1 red); layout: int32 index in the variant's bank;
    walls: bool[rows, cols] (``[row, col]``, row 0 south); start: int32[2] cell ``(col, row)``;
    start_heading: int32 heading index at the start; boxes: int32[3, 2] cells of the grey, blue and red boxes; wall_segments: float32[Q, 4] and
    wall_mask: bool[Q], the layout's merged wall faces (cell units, renderer frame; drawn by
    maze3d). All but ``goal`` come from one layout of the variant's :class:`LayoutBank`."""

    goal: jax.Array
    layout: jax.Array
    walls: jax.Array
    start: jax.Array
    start_heading: jax.Array
    boxes: jax.Array
    wall_segments: jax.Array
    wall_mask: jax.Array


@struct.dataclass
class MazeState:
    """position: float32[2] world ``(x, y)``; heading: int32 in ``{0..7}``; time: int32 steps."""

    position: jax.Array
    heading: jax.Array
    time: jax.Array


def layout_bank(params: MazeParams) -> LayoutBank:
    """The variant's layout bank: the fixed default layout, or the generated bank."""
    if params.layout == "default":
        return parse_layout(DEFAULT_LAYOUT, DEFAULT_START_HEADING)
    if params.layout == "small":
        return parse_layout(SMALL_LAYOUT, SMALL_START_HEADING)
    return random_layouts(params.num_layouts, params.layout_size, params.layout_seed)


def task_from_bank(bank: LayoutBank, index: jax.Array | int, goal: jax.Array | int) -> MazeTask:
    """The task of layout ``index`` of ``bank`` with goal colour ``goal`` (traced values are fine)."""
    index = jnp.asarray(index, jnp.int32)
    return MazeTask(
        goal=jnp.asarray(goal, jnp.int32),
        layout=index,
        walls=jnp.asarray(bank.walls)[index],
        start=jnp.asarray(bank.start)[index],
        start_heading=jnp.asarray(bank.start_heading)[index],
        boxes=jnp.asarray(bank.boxes)[index],
        wall_segments=jnp.asarray(bank.segments)[index],
        wall_mask=jnp.asarray(bank.segment_mask)[index],
    )


@dataclasses.dataclass(frozen=True)
class MazeTaskDistribution(TaskDistributionBase):
    """Goal colour uniform over {blue, red}; layout uniform over the variant's bank."""

    params: MazeParams

    @property
    def bank(self) -> LayoutBank:
        return layout_bank(self.params)

    def sample(self, key: jax.Array) -> MazeTask:
        layout_key, goal_key = jax.random.split(key)
        bank = self.bank
        index = jax.random.randint(layout_key, (), 0, bank.size)
        goal = jax.random.randint(goal_key, (), 0, 2)
        return task_from_bank(bank, index, goal)


# ---------------------------------------------------------------- dynamics (pure JAX)


def cell_centre(cell: jax.Array, cell_size: float) -> jax.Array:
    """World centre of cell(s) ``(col, row)``: int[..., 2] -> float32[..., 2]."""
    return (jnp.asarray(cell, jnp.float32) + 0.5) * jnp.float32(cell_size)


def cell_of(position: jax.Array, cell_size: float) -> jax.Array:
    """Cell ``(col, row)`` containing a world position: float[..., 2] -> int32[..., 2]."""
    return jnp.floor(position / cell_size).astype(jnp.int32)


def box_centres(task: MazeTask, cell_size: float) -> jax.Array:
    """float32[3, 2] world centres of the grey, blue and red boxes."""
    return cell_centre(task.boxes, cell_size)


def box_distances(position: jax.Array, task: MazeTask, cell_size: float) -> jax.Array:
    """float32[3] Euclidean distances from ``position`` to the grey, blue and red box centres."""
    return jnp.linalg.norm(box_centres(task, cell_size) - position, axis=-1)


def _disc_hits_squares(position: jax.Array, lo: jax.Array, hi: jax.Array, radius: float) -> jax.Array:
    """bool[n]: a disc at ``position`` overlaps the axis-aligned squares ``[lo, hi]`` (float[n, 2])."""
    nearest = jnp.clip(position, lo, hi)
    return jnp.sum(jnp.square(position - nearest), axis=-1) < radius * radius


def collides(position: jax.Array, task: MazeTask, params: MazeParams) -> jax.Array:
    """bool: the agent's disc at ``position`` overlaps a wall cell or a box.

    Only the 3x3 cells around the disc's cell can touch it (``agent_radius < cell_size / 2``);
    cells outside the grid count as walls.
    """
    cs = params.cell_size
    rows, cols = task.walls.shape
    offsets = jnp.asarray([[dc, dr] for dr in (-1, 0, 1) for dc in (-1, 0, 1)], jnp.int32)
    cells = cell_of(position, cs) + offsets
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < cols) & (cells[:, 1] >= 0) & (cells[:, 1] < rows)
    wall = task.walls[jnp.clip(cells[:, 1], 0, rows - 1), jnp.clip(cells[:, 0], 0, cols - 1)] | ~inside
    lo = cells.astype(jnp.float32) * cs
    hit_wall = wall & _disc_hits_squares(position, lo, lo + cs, params.agent_radius)
    centres = box_centres(task, cs)
    h = params.box_half_size
    hit_box = _disc_hits_squares(position, centres - h, centres + h, params.agent_radius)
    return hit_wall.any() | hit_box.any()


def move(state: MazeState, action: jax.Array, task: MazeTask, params: MazeParams) -> MazeState:
    """Applies one action (clipped into ``{0, 1, 2}``); a colliding forward move is not made."""
    action = jnp.clip(jnp.asarray(action, jnp.int32), 0, NUM_ACTIONS - 1)
    turn = jnp.where(action == TURN_LEFT, 1, jnp.where(action == TURN_RIGHT, -1, 0))
    heading = jnp.mod(state.heading + turn, NUM_HEADINGS).astype(jnp.int32)
    proposal = state.position + jnp.asarray(HEADINGS)[state.heading] * jnp.float32(params.forward_step)
    moves = (action == FORWARD) & ~collides(proposal, task, params)
    position = jnp.where(moves, proposal, state.position)
    return MazeState(position=position, heading=heading, time=state.time + 1)


def outcome(position: jax.Array, task: MazeTask, params: MazeParams) -> dict[str, jax.Array]:
    """Touches and reveal at ``position``: bool scalars ``success`` (goal box touched), ``failure``
    (wrong box touched), ``reveal`` (within ``reveal_distance`` of the grey box) and float32
    ``reward`` (``wrong_reward`` wins if both boxes are touched)."""
    d = box_distances(position, task, params.cell_size)
    goal_box = task.goal + 1
    wrong_box = 2 - task.goal
    success = d[goal_box] < params.touch_distance
    failure = d[wrong_box] < params.touch_distance
    reward = jnp.where(failure, params.wrong_reward, jnp.where(success, params.goal_reward, 0.0))
    return {
        "success": success,
        "failure": failure,
        "reveal": d[GREY] < params.reveal_distance,
        "reward": reward.astype(jnp.float32),
    }


def revealed_colour(state: MazeState, task: MazeTask, params: MazeParams) -> jax.Array:
    """float32[2]: one-hot (blue, red) of the goal while the agent is within reveal distance, else 0."""
    near = outcome(state.position, task, params)["reveal"]
    return jax.nn.one_hot(task.goal, 2, dtype=jnp.float32) * near


def start_state(key: jax.Array, task: MazeTask, params: MazeParams) -> MazeState:
    """The start cell's centre, facing the layout's start heading (or, with
    ``random_start_heading``, a heading uniform over the 8, as in MT-TwoGoalMaze)."""
    if params.random_start_heading:
        heading = jax.random.randint(key, (), 0, NUM_HEADINGS)
    else:
        heading = task.start_heading
    return MazeState(
        position=cell_centre(task.start, params.cell_size),
        heading=jnp.asarray(heading, jnp.int32),
        time=jnp.zeros((), jnp.int32),
    )


# ---------------------------------------------------------------- the environments


SOURCE = (
    "Kamienny et al. 2020 (IMPORT) Maze2D/Maze3D, code not available; action set, rewards, touch test "
    "and horizon from facebookresearch/mtenv mtenv/envs/mpte/two_goal_maze_env.py (MT-TwoGoalMaze-v0)"
)


class MazeBase(abc.ABC):
    """Shared reset/step; subclasses define ``observation_space`` and ``observe(state, task)``.

    ``reset`` and ``step`` are jitted per instance (inlined when called under an outer ``jit`` or
    ``vmap``), so eager calls run one compiled program instead of hundreds of single ops.
    """

    NAME = "maze"
    VERSION = "1"

    def __init__(self, params: MazeParams, variant: str = "default"):
        params.validate()
        self.params = params
        self.bank = layout_bank(params)
        self.spec = EnvSpec.from_params(
            self.NAME, variant, params,
            observation_space=self.observation_space(),
            action_space=Discrete(NUM_ACTIONS),
            version=self.VERSION,
            source=SOURCE,
        )
        self._jit_reset = jax.jit(self._reset)
        self._jit_step = jax.jit(self._step)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of every layout of this variant."""
        return self.bank.shape

    @abc.abstractmethod
    def observation_space(self) -> Box:
        """Defined by each subclass."""

    @abc.abstractmethod
    def observe(self, state: MazeState, task: MazeTask) -> jax.Array:
        """Defined by each subclass."""

    def task_features(self, task: MazeTask) -> jax.Array:
        """The unobserved part of the task: the goal colour one-hot ``(blue, red)``, float32[2] (the
        layout is seen)."""
        return jax.nn.one_hot(task.goal, len(GOAL_NAMES), dtype=jnp.float32)

    def reset(self, key: jax.Array, task: MazeTask) -> tuple[jax.Array, MazeState]:
        """Starts an episode: ``(obs, state)``; see :func:`start_state`."""
        return self._jit_reset(key, task)

    def step(self, key: jax.Array, state: MazeState, action: jax.Array, task: MazeTask) -> StepOut:
        """One action (int32 in ``{0, 1, 2}``); ``info`` holds float32 ``success``, ``failure``, ``reveal``."""
        return self._jit_step(key, state, action, task)

    def _reset(self, key: jax.Array, task: MazeTask) -> tuple[jax.Array, MazeState]:
        state = start_state(key, task, self.params)
        return self.observe(state, task), state

    def _step(self, key: jax.Array, state: MazeState, action: jax.Array, task: MazeTask) -> StepOut:
        del key  # deterministic dynamics
        new_state = move(state, action, task, self.params)
        out = outcome(new_state.position, task, self.params)
        return StepOut(
            obs=self.observe(new_state, task),
            state=new_state,
            reward=out["reward"],
            terminated=out["success"] | out["failure"],
            truncated=new_state.time >= self.params.horizon,
            info={
                "success": out["success"].astype(jnp.float32),
                "failure": out["failure"].astype(jnp.float32),
                "reveal": out["reveal"].astype(jnp.float32),
            },
        )


#: maze2d observation channels over the grid, in order.
CHANNELS = ("wall", "agent", "grey", "blue", "red")


class Maze2D(MazeBase):
    """Symbolic, allocentric, fully observed maze except for the goal colour.

    Observation, float32 in [0, 1], flat, ``5 * rows * cols + 12`` (397 for the default 7 x 11
    layout, 417 for the 9 x 9 random layouts):
    ``[grid (rows, cols, 5) channels wall/agent cell/grey/blue/red, flattened row-major;
    position (x / width, y / height) (2); heading one-hot (8); revealed goal one-hot (blue, red)
    (2), all zero unless the agent is within ``reveal_distance`` of the grey box]``.
    """

    NAME = "maze2d"

    def observation_space(self) -> Box:
        rows, cols = self.grid_shape
        return Box(0.0, 1.0, (len(CHANNELS) * rows * cols + 2 + NUM_HEADINGS + 2,))

    def observe(self, state: MazeState, task: MazeTask) -> jax.Array:
        rows, cols = task.walls.shape
        p = self.params
        cell = jnp.clip(cell_of(state.position, p.cell_size), 0, jnp.array([cols - 1, rows - 1]))

        row_ids = jnp.arange(rows)[:, None]
        col_ids = jnp.arange(cols)[None, :]

        def one_hot_cell(c):
            return ((row_ids == c[1]) & (col_ids == c[0])).astype(jnp.float32)

        grid = jnp.stack(
            [task.walls.astype(jnp.float32), one_hot_cell(cell)]
            + [one_hot_cell(task.boxes[i]) for i in range(3)],
            axis=-1,
        )
        extent = jnp.array([cols, rows], jnp.float32) * p.cell_size
        return jnp.concatenate(
            [
                grid.reshape(-1),
                state.position / extent,
                jax.nn.one_hot(state.heading, NUM_HEADINGS, dtype=jnp.float32),
                revealed_colour(state, task, p),
            ]
        )


def split_observation_2d(obs: jax.Array, grid_shape: tuple[int, int]) -> dict[str, jax.Array]:
    """Splits maze2d observations ``[..., D]`` into ``grid [..., rows, cols, 5]``, ``position
    [..., 2]``, ``heading [..., 8]`` and ``reveal [..., 2]``."""
    rows, cols = grid_shape
    n = len(CHANNELS) * rows * cols
    return {
        "grid": obs[..., :n].reshape(*obs.shape[:-1], rows, cols, len(CHANNELS)),
        "position": obs[..., n : n + 2],
        "heading": obs[..., n + 2 : n + 2 + NUM_HEADINGS],
        "reveal": obs[..., n + 2 + NUM_HEADINGS :],
    }


VARIANTS_2D: dict[str, MazeParams] = {
    "default": MazeParams(),
    "random_layout": MazeParams(layout="random"),
    "small": MazeParams(layout="small", horizon=50),
}


# ---------------------------------------------------------------- maze3d: egocentric RGB


#: Colours (RGB in [0, 1]): MiniWorld's box colours, jmeta's wall colour (distinct from the grey box).
COLORS = {
    "grey": (0.39, 0.39, 0.39),
    "blue": (0.0, 0.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "wall": (0.78, 0.72, 0.58),
}


@dataclasses.dataclass(frozen=True)
class Maze3DParams(MazeParams):
    """:class:`MazeParams` plus the camera and the scene's heights (world units).

    image_width x image_height: the egocentric image (default 64 x 48); fov_y_deg, eye_height:
    MiniWorld's 60 deg and 1.5; wall_height: MiniWorld's default 2.74; box_height: the coloured
    boxes (MiniWorld's 0.8); grey_height: the grey box, taller than the eye (2.0) so that its faces
    fill the view at reveal distance.
    """

    image_width: int = 64
    image_height: int = 48
    fov_y_deg: float = 60.0
    eye_height: float = 1.5
    wall_height: float = 2.74
    box_height: float = 0.8
    grey_height: float = 2.0

    def validate(self) -> None:
        super().validate()
        if self.image_width < 8 or self.image_height < 8:
            raise ConfigError(f"maze3d image size must be >= 8 x 8, got {self.image_width} x {self.image_height}")
        if not 0 < self.fov_y_deg < 180:
            raise ConfigError(f"maze3d.fov_y_deg must be in (0, 180), got {self.fov_y_deg}")
        if not 0 < self.eye_height < self.wall_height:
            raise ConfigError(f"maze3d.eye_height must be in (0, wall_height), got {self.eye_height}")
        if self.grey_height <= self.eye_height:
            raise ConfigError(
                f"maze3d.grey_height must exceed eye_height ({self.eye_height}) so the reveal fills the view; "
                f"got {self.grey_height}"
            )


def wall_faces(walls: jax.Array, cell_size: float) -> tuple[jax.Array, jax.Array]:
    """Every cell boundary of the grid as a renderer segment, fronts facing the free cell.

    Returns ``(segments float32[F, 4], visible bool[F])`` in the renderer's ``(x, z)`` with
    ``z = -y``; ``F = (rows - 1) cols + rows (cols - 1)``, a boundary is visible iff exactly one of
    its two cells is a wall. Traceable: the layout may be a task array.
    """
    rows, cols = walls.shape
    cs = float(cell_size)
    # Horizontal boundaries y = r cs, r = 1..rows-1, between row r-1 (south) and row r (north).
    r = np.arange(1, rows)[:, None] * np.ones((1, cols))
    c = np.ones((rows - 1, 1)) * np.arange(cols)[None, :]
    south, north = walls[:-1, :], walls[1:, :]
    h_vis = south != north
    # Free cell north (z < boundary): front normal -z, so x runs from (c+1) cs down to c cs.
    free_north = south  # the wall is south
    x_a = jnp.where(free_north, (c + 1) * cs, c * cs)
    x_b = jnp.where(free_north, c * cs, (c + 1) * cs)
    z = jnp.asarray(-r * cs, jnp.float32)
    h_seg = jnp.stack([x_a, z, x_b, z], axis=-1).reshape(-1, 4)
    # Vertical boundaries x = c cs, c = 1..cols-1, between col c-1 (west) and col c (east).
    c2 = np.ones((rows, 1)) * np.arange(1, cols)[None, :]
    r2 = np.arange(rows)[:, None] * np.ones((1, cols - 1))
    west, east = walls[:, :-1], walls[:, 1:]
    v_vis = west != east
    # Free cell east: front normal +x, so z runs from -r cs to -(r+1) cs.
    free_east = west
    z_a = jnp.where(free_east, -r2 * cs, -(r2 + 1) * cs)
    z_b = jnp.where(free_east, -(r2 + 1) * cs, -r2 * cs)
    x = jnp.asarray(c2 * cs, jnp.float32)
    v_seg = jnp.stack([x, z_a, x, z_b], axis=-1).reshape(-1, 4)
    segments = jnp.concatenate([h_seg, v_seg]).astype(jnp.float32)
    visible = jnp.concatenate([h_vis.reshape(-1), v_vis.reshape(-1)])
    return segments, visible


def to_render_frame(position: jax.Array, heading: jax.Array) -> tuple[jax.Array, jax.Array]:
    """World ``(x, y)`` and heading index -> the renderer's ``(x, z)`` (``z = -y``) and angle (rad)."""
    return position * jnp.array([1.0, -1.0], jnp.float32), heading.astype(jnp.float32) * (np.pi / 4)


class Maze3D(MazeBase):
    """Egocentric RGB view of the same maze, rendered in JAX by :mod:`jmeta.envs.pixel.render`.

    Observation: the image ``uint8[image_height, image_width, 3]`` scaled to float32 in [0, 1] and
    flattened row-major (``64 * 48 * 3 = 9216`` by default); :meth:`image` gives the uint8 image.
    Scene: every wall face of the layout (flat ``wall`` colour, shaded by orientation), the blue and
    red boxes (``box_height``) and the grey box (``grey_height``), whose four faces take the goal's
    colour while the agent is within ``reveal_distance`` of it (the visual reveal) and are grey
    otherwise. Floor and ceiling are the renderer's background colours.
    """

    NAME = "maze3d"

    def __init__(self, params: Maze3DParams, variant: str = "default"):
        self.camera = render.Camera(
            width=params.image_width,
            height=params.image_height,
            fov_y_deg=params.fov_y_deg,
            eye_height=params.eye_height,
        )
        super().__init__(params, variant)

    def observation_space(self) -> Box:
        p = self.params
        return Box(0.0, 1.0, (p.image_height * p.image_width * 3,))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)``: the whole observation is this image (for :mod:`jmeta.networks.cnn`)."""
        return (self.params.image_height, self.params.image_width, 3)

    def scene(self, state: MazeState, task: MazeTask):
        """The :class:`jmeta.envs.pixel.render.Scene` of ``task`` as seen in ``state`` (the reveal applied)."""
        r, p = render, self.params
        segments = task.wall_segments * jnp.float32(p.cell_size)
        walls = r.quads_scene(segments, 0.0, p.wall_height, COLORS["wall"], visible=task.wall_mask)
        centres, _ = to_render_frame(box_centres(task, p.cell_size), jnp.zeros((), jnp.int32))
        reveal = outcome(state.position, task, p)["reveal"]
        goal_colour = jnp.where(task.goal == 0, jnp.asarray(COLORS["blue"]), jnp.asarray(COLORS["red"]))
        grey_colour = jnp.where(reveal, goal_colour, jnp.asarray(COLORS["grey"]))
        boxes = [
            r.box_quads(centres[GREY], p.box_half_size, p.grey_height, grey_colour),
            r.box_quads(centres[BLUE], p.box_half_size, p.box_height, COLORS["blue"]),
            r.box_quads(centres[RED], p.box_half_size, p.box_height, COLORS["red"]),
        ]
        return r.merge_scenes(walls, *boxes)

    def image(self, state: MazeState, task: MazeTask) -> jax.Array:
        """The egocentric view, uint8[image_height, image_width, 3]."""
        position, angle = to_render_frame(state.position, state.heading)
        return render.render(self.scene(state, task), position, angle, self.camera)

    def observe(self, state: MazeState, task: MazeTask) -> jax.Array:
        return (self.image(state, task).astype(jnp.float32) / 255.0).reshape(-1)


VARIANTS_3D: dict[str, Maze3DParams] = {
    "default": Maze3DParams(),
    "random_layout": Maze3DParams(layout="random"),
    "small": Maze3DParams(layout="small", horizon=50),
}


register(
    "maze2d",
    EnvEntry(
        variants=VARIANTS_2D,
        build=lambda p, v: (Maze2D(p, v), MazeTaskDistribution(p)),
        description="IMPORT Maze2D: a grey box reveals which of a blue/red box is the goal (+1/-1); symbolic obs",
    ),
)
register(
    "maze3d",
    EnvEntry(
        variants=VARIANTS_3D,
        build=lambda p, v: (Maze3D(p, v), MazeTaskDistribution(p)),
        description="IMPORT Maze3D: the same maze seen egocentrically, 64x48 RGB rendered in JAX",
    ),
)
