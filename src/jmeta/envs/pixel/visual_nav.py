"""DREAM's sign environment: first-person visual navigation where a sign names the goal colour.

Source: ezliu/dream ``envs/miniworld/sign.py`` (``SignEnv``, ``InstructionWrapper``,
``MiniWorldSign``) on gym-miniworld at commit 7531d6c (pinned in dream's ``requirements.txt``):
``gym_miniworld/miniworld.py`` (``MiniWorldEnv.step``/``move_agent``/``intersect``/``near``/
``place_entity``, rooms, portals, ``DEFAULT_WALL_HEIGHT``), ``entity.py`` (``Agent``, ``Box``,
``TextFrame``, ``MeshEnt``), ``params.py`` (``DEFAULT_PARAMS``), ``meshes/key_*.obj``.

World (MiniWorld axes: floor ``(x, z)``, ``y`` up; ``size = 10``):

* rooms: top ``x in [0, 10], z in [0, 6.5]``; left ``x in [0, 6], z in [6.75, 13]``; right
  ``x in [6, 10], z in [6.75, 13]``. Top and left are joined by a 0.25-deep corridor over
  ``x in [0, 6]``; left and right share their whole common wall as a portal, so they form one hall
  ``x in [0, 10], z in [6.75, 13]``. Walls are 2.74 high (:data:`WALL_SEGMENTS`).
* objects (index ``type * 3 + colour``): boxes (0.8 cube, radius 0.566) blue ``(1, 1)``, red
  ``(9, 1)``, green ``(9, 5)``; keys (dream's ``BigKey``: the MiniWorld key mesh scaled to 0.6 high,
  radius 0.736) blue ``(5, 1)``, red ``(1, 5)``, green ``(1, 9)``. Each object gets a uniform random
  yaw at every reset (MiniWorld's ``place_entity`` with a position and no direction).
* sign: a ``TextFrame`` centred at ``(10, 1.35, 10.25)`` facing ``-x`` (on the right room's east
  wall), 1 high and ``len(word)`` wide, showing ``BLUE``/``RED``/``GREEN`` (the task's colour).
* agent: radius 0.4, camera 1.5 high, 60 degree vertical field of view, 80 x 60 RGB.

Episode (one ``reset`` .. termination): the agent starts uniformly in ``x in [4.4, 4.6]``,
``z in [4.4, 5.6]`` (``place_agent(min_x=4, max_x=5, min_z=4, max_z=6)`` keeps the radius inside
the bounds) with a uniform heading in ``[-pi, pi)``; an instruction ``0 = box`` or ``1 = key`` is
drawn uniformly. Actions ``Discrete(4)``: 0 turn left 45 degrees, 1 turn right 45 degrees,
2 forward 0.7, 3 end the episode (MiniWorld's ``move_back`` action index: the agent first steps
back 0.7, then the episode ends). A move is cancelled when the new position is within the agent
radius of a wall segment or within ``0.4 + r`` of an object. After every step, an object within
``r + 0.4 + 1.1 * 0.7`` of the agent (MiniWorld's ``near``) ends the episode with reward +1 if it
has the task's colour and the instructed type, else -1; otherwise the reward is 0. Episodes last
at most 20 steps. A trial is 2 episodes of one task (DREAM: one exploration and one execution
episode); the instruction is redrawn at every reset.

Observation: float32[60 * 80 * 3 + 2] = the egocentric image (row-major ``[row, column, RGB]``,
scaled to ``[0, 1]``) followed by the one-hot instruction ``[box, key]``; see
:func:`split_observation`. DREAM passes the instruction as a separate integer field beside the
image (``InstructionState.instructions``); jmeta's rollout engine takes one array, so it is appended.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jmeta.envs.base import EnvSpec, StepOut
from jmeta.envs.pixel import font
from jmeta.envs.pixel import render as rd
from jmeta.envs.registry import EnvEntry, register
from jmeta.errors import ConfigError
from jmeta.spaces import Box, Discrete
from jmeta.tasks import TaskDistributionBase

COLOR_NAMES = ("blue", "red", "green")  # dream's env_id order (text = ["BLUE", "RED", "GREEN"])
SIGN_WORDS = ("BLUE", "RED", "GREEN")
OBJECT_TYPES = ("box", "key")  # dream's instruction values 0 and 1
NUM_ACTIONS = 4
ACTION_NAMES = ("turn_left", "turn_right", "forward", "end_episode")
TURN_LEFT, TURN_RIGHT, FORWARD, END_EPISODE = range(4)

#: MiniWorld's ``COLORS`` for the three colours, RGB in [0, 1].
COLOR_RGB = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)

WALL_HEIGHT = 2.74
#: Collidable and drawn wall segments ``(x0, z0, x1, z1)``, fronts facing the rooms (see
#: :mod:`jmeta.envs.pixel.render`). MiniWorld splits the hall's south wall at ``x = 6`` (one segment per
#: room); the union is the same line.
WALL_SEGMENTS = np.array(
    [
        [0.0, 0.0, 10.0, 0.0],  # top room, north wall (z = 0)
        [10.0, 0.0, 10.0, 6.5],  # top room, east wall
        [0.0, 6.5, 0.0, 0.0],  # top room, west wall
        [10.0, 6.5, 6.0, 6.5],  # top room, south wall right of the opening x in [0, 6]
        [0.0, 6.75, 0.0, 6.5],  # corridor, west side
        [6.0, 6.5, 6.0, 6.75],  # corridor, east side
        [6.0, 6.75, 10.0, 6.75],  # right room, north wall
        [10.0, 6.75, 10.0, 13.0],  # right room, east wall (the sign's wall)
        [10.0, 13.0, 0.0, 13.0],  # left and right rooms, south walls
        [0.0, 13.0, 0.0, 6.75],  # left room, west wall
    ],
    np.float32,
)

#: Object centres ``(x, z)`` in the order boxes (blue, red, green), keys (blue, red, green).
OBJECT_POSITIONS = np.array([[1, 1], [9, 1], [9, 5], [5, 1], [1, 5], [1, 9]], np.float32)
BOX_SIZE = 0.8
BOX_RADIUS = math.sqrt(2 * BOX_SIZE**2) / 2  # MiniWorld Box: sqrt(sx^2 + sz^2) / 2
KEY_HEIGHT = 0.6
#: MeshEnt radius of the key mesh scaled to 0.6 high: sqrt(sx^2 + sz^2) * scale with the mesh's
#: recentred max coords (0.401406, 2, 2.4187405) and scale 0.6 / 2 = 0.3.
KEY_RADIUS = math.sqrt(0.401406**2 + 2.4187405**2) * 0.3
OBJECT_RADII = np.array([BOX_RADIUS] * 3 + [KEY_RADIUS] * 3, np.float32)

#: The key drawn as two boxes in its local frame (long axis = local z): the bow (ring, drawn solid)
#: and the blade, each ``(centre_lz, half_x, half_z, bottom, top)`` (from the mesh's extents).
KEY_PARTS = ((-0.423, 0.12, 0.303, 0.0, 0.6), (0.303, 0.09, 0.423, 0.03, 0.39))

SIGN_CENTER = (10.0, 10.25)  # TextFrame pos (size, size + gap)
SIGN_BOTTOM, SIGN_TOP = 0.85, 1.85  # centre height 1.35, height 1
SIGN_DEPTH = 0.05  # the frame's face stands 0.05 in front of the wall
SIGN_TEXTURE_SIZE = (28, 240)
WALL_COLOR = (0.62, 0.60, 0.56)


@struct.dataclass
class VisualNavTask:
    """color: int32, the goal colour (0 blue, 1 red, 2 green = the word on the sign)."""

    color: jax.Array


@struct.dataclass
class VisualNavState:
    """position: float32[2] ``(x, z)``; heading: float32 (MiniWorld ``dir``); time: int32;
    instruction: int32 (0 box, 1 key); object_angles: float32[6] yaws of the objects."""

    position: jax.Array
    heading: jax.Array
    time: jax.Array
    instruction: jax.Array
    object_angles: jax.Array


@dataclasses.dataclass(frozen=True)
class VisualNavParams:
    """Static definition of one visual_nav variant (overridable through ``jmeta.make``).

    ``start_*``: the bounds given to MiniWorld's ``place_agent``; the agent's centre is drawn in
    the bounds shrunk by ``agent_radius`` on each side, as MiniWorld does.
    """

    horizon: int = 20
    episodes_per_trial: int = 2
    forward_step: float = 0.7
    turn_step_deg: float = 45.0
    agent_radius: float = 0.4
    start_x: tuple[float, float] = (4.0, 5.0)
    start_z: tuple[float, float] = (4.0, 6.0)
    width: int = 80
    height: int = 60

    def validate(self) -> None:
        if self.episodes_per_trial < 1:
            raise ConfigError(f"visual_nav.episodes_per_trial must be >= 1, got {self.episodes_per_trial}")
        if self.forward_step <= 0 or self.turn_step_deg <= 0:
            raise ConfigError("visual_nav.forward_step and turn_step_deg must be > 0")
        if self.agent_radius <= 0:
            raise ConfigError(f"visual_nav.agent_radius must be > 0, got {self.agent_radius}")
        for name in ("start_x", "start_z"):
            lo, hi = getattr(self, name)
            if hi - lo < 2 * self.agent_radius:
                raise ConfigError(f"visual_nav.{name} must be at least 2 * agent_radius wide, got {(lo, hi)}")
        if self.width < 8 or self.height < 8:
            raise ConfigError(f"visual_nav image must be at least 8 x 8, got {self.width} x {self.height}")

    @property
    def camera(self) -> rd.Camera:
        return rd.Camera(width=self.width, height=self.height, fov_y_deg=60.0, eye_height=1.5)

    @property
    def near_distance(self) -> np.ndarray:
        """Per-object distance below which the object is touched (MiniWorld ``near``)."""
        return OBJECT_RADII + self.agent_radius + 1.1 * self.forward_step


VARIANTS: dict[str, VisualNavParams] = {"default": VisualNavParams()}
SOURCES = {"default": "ezliu/dream envs/miniworld/sign.py (SignEnv) on maximecb/gym-miniworld@7531d6c"}


@dataclasses.dataclass(frozen=True)
class VisualNavTaskDistribution(TaskDistributionBase):
    """Goal colour uniform over {blue, red, green} (dream: ``env_ids`` = [0, 1, 2] for train and test)."""

    params: VisualNavParams

    def sample(self, key: jax.Array) -> VisualNavTask:
        return VisualNavTask(color=jax.random.randint(key, (), 0, len(COLOR_NAMES), jnp.int32))


def image_size(params: VisualNavParams) -> int:
    return params.height * params.width * 3


def split_observation(obs: jax.Array, params: VisualNavParams = VisualNavParams()) -> tuple[jax.Array, jax.Array]:
    """``obs`` float32[..., H*W*3 + 2] -> (image uint8[..., H, W, 3], instruction int32[...])."""
    n = image_size(params)
    image = jnp.round(obs[..., :n] * 255.0).astype(jnp.uint8)
    image = image.reshape(*obs.shape[:-1], params.height, params.width, 3)
    return image, jnp.argmax(obs[..., n : n + 2], axis=-1).astype(jnp.int32)


# ---------------------------------------------------------------- geometry and dynamics


def _segment_distance(point: jax.Array, segments: jax.Array) -> jax.Array:
    """Distance from ``point`` float32[2] to each segment float32[S, 4] -> float32[S]."""
    a, b = segments[:, :2], segments[:, 2:]
    ab = b - a
    t = jnp.clip(jnp.sum((point - a) * ab, axis=-1) / jnp.sum(ab * ab, axis=-1), 0.0, 1.0)
    return jnp.linalg.norm(a + t[:, None] * ab - point, axis=-1)


def blocked(position: jax.Array, params: VisualNavParams = VisualNavParams()) -> jax.Array:
    """MiniWorld ``intersect``: the agent disc at ``position`` overlaps a wall or an object."""
    r = params.agent_radius
    walls = jnp.any(_segment_distance(position, jnp.asarray(WALL_SEGMENTS)) < r)
    objects = jnp.any(jnp.linalg.norm(jnp.asarray(OBJECT_POSITIONS) - position, axis=-1) < r + OBJECT_RADII)
    return walls | objects


def forward_vector(heading: jax.Array) -> jax.Array:
    """MiniWorld ``dir_vec`` in ``(x, z)``: ``(cos h, -sin h)``."""
    return jnp.stack([jnp.cos(heading), -jnp.sin(heading)])


def move(position: jax.Array, heading: jax.Array, distance: jax.Array, params: VisualNavParams) -> jax.Array:
    """MiniWorld ``move_agent``: step ``distance`` along the heading unless the new disc collides."""
    target = position + distance * forward_vector(heading)
    return jnp.where(blocked(target, params), position, target)


def touched(position: jax.Array, params: VisualNavParams = VisualNavParams()) -> jax.Array:
    """bool[6]: MiniWorld ``near(obj)`` for each object (boxes blue, red, green, keys ...)."""
    d = jnp.linalg.norm(jnp.asarray(OBJECT_POSITIONS) - position, axis=-1)
    return d < jnp.asarray(params.near_distance)


# ---------------------------------------------------------------- rendering


def sign_textures() -> np.ndarray:
    """float32[3, 28, 240, 3]: the three words, black on white, each stretched over its quad.

    The glyphs fill the sign's height (no margin: 7 font rows per metre, so strokes stay at least
    a pixel thick up to about 7 m away at 80 x 60) and letters are two font columns apart."""
    return np.stack([font.text_texture(w, size=SIGN_TEXTURE_SIZE, margin=0, spacing=2) for w in SIGN_WORDS])


def build_scene(state: VisualNavState, task: VisualNavTask) -> rd.Scene:
    """The scene of one state and task: 10 walls, 3 boxes (4 quads each), 3 keys (8 quads each:
    bow and blade), 1 sign quad = 47 quads. Quad order: walls, boxes, keys, sign."""
    walls = rd.wall_quads(jnp.asarray(WALL_SEGMENTS), WALL_HEIGHT, WALL_COLOR)
    parts = []
    for i in range(3):
        parts.append(
            rd.box_quads(OBJECT_POSITIONS[i], BOX_SIZE / 2, BOX_SIZE, COLOR_RGB[i], angle=state.object_angles[i])
        )
    for i in range(3):
        angle = state.object_angles[3 + i]
        side = jnp.stack([jnp.sin(angle), jnp.cos(angle)])  # local +z axis in the world
        for lz, hx, hz, bottom, top in KEY_PARTS:
            parts.append(
                rd.box_quads(
                    jnp.asarray(OBJECT_POSITIONS[3 + i]) + lz * side,
                    (hx, hz),
                    top - bottom,
                    COLOR_RGB[i],
                    angle=angle,
                    bottom=bottom,
                )
            )
    half = jnp.asarray([len(w) for w in SIGN_WORDS], jnp.float32)[task.color] / 2.0
    x = SIGN_CENTER[0] - SIGN_DEPTH
    # Seen from the room (looking +x) the right vector is +z: the word starts at the smaller z.
    sign = rd.textured_quad(
        jnp.stack([jnp.float32(x), SIGN_CENTER[1] - half]),
        jnp.stack([jnp.float32(x), SIGN_CENTER[1] + half]),
        SIGN_BOTTOM,
        SIGN_TOP,
        task.color,
    )
    return rd.merge_scenes(walls, *parts, sign, textures=jnp.asarray(sign_textures()))


def render_view(state: VisualNavState, task: VisualNavTask, params: VisualNavParams = VisualNavParams()) -> jax.Array:
    """The agent's egocentric image uint8[H, W, 3]."""
    return rd.render_jit(build_scene(state, task), state.position, state.heading, camera=params.camera)


@functools.partial(jax.jit, static_argnames=("params",))
def observe(state: VisualNavState, task: VisualNavTask, params: VisualNavParams) -> jax.Array:
    """The observation float32[H*W*3 + 2] of ``state`` (jitted: eager ``step`` calls stay fast)."""
    image = render_view(state, task, params).astype(jnp.float32) / 255.0
    instruction = jax.nn.one_hot(state.instruction, len(OBJECT_TYPES), dtype=jnp.float32)
    return jnp.concatenate([image.reshape(-1), instruction])


# ---------------------------------------------------------------- the environment


class VisualNav:
    """DREAM's sign environment. See the module docstring for the definition."""

    VERSION = "1"

    def __init__(self, params: VisualNavParams, variant: str = "default"):
        params.validate()
        self.params = params
        self.spec = EnvSpec.from_params(
            "visual_nav", variant, params,
            observation_space=Box(0.0, 1.0, (image_size(params) + len(OBJECT_TYPES),)),
            action_space=Discrete(NUM_ACTIONS),
            version=self.VERSION,
            source=SOURCES,
        )

    def task_features(self, task: VisualNavTask) -> jax.Array:
        """The task as features: the sign's colour one-hot ``(blue, red, green)``, float32[3]."""
        return jax.nn.one_hot(task.color, len(COLOR_NAMES), dtype=jnp.float32)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)`` of the image that starts each observation (the one-hot instruction follows)."""
        return (self.params.height, self.params.width, 3)

    def reset(self, key: jax.Array, task: VisualNavTask) -> tuple[jax.Array, VisualNavState]:
        p = self.params
        k_pos, k_dir, k_instr, k_obj = jax.random.split(key, 4)
        r = p.agent_radius
        low = jnp.array([p.start_x[0] + r, p.start_z[0] + r], jnp.float32)
        high = jnp.array([p.start_x[1] - r, p.start_z[1] - r], jnp.float32)
        state = VisualNavState(
            position=jax.random.uniform(k_pos, (2,), jnp.float32, low, high),
            heading=jax.random.uniform(k_dir, (), jnp.float32, -jnp.pi, jnp.pi),
            time=jnp.zeros((), jnp.int32),
            instruction=jax.random.randint(k_instr, (), 0, len(OBJECT_TYPES), jnp.int32),
            object_angles=jax.random.uniform(k_obj, (6,), jnp.float32, -jnp.pi, jnp.pi),
        )
        return observe(state, task, params=p), state

    def step(self, key: jax.Array, state: VisualNavState, action: jax.Array, task: VisualNavTask) -> StepOut:
        del key  # deterministic dynamics
        p = self.params
        action = jnp.clip(jnp.asarray(action, jnp.int32), 0, NUM_ACTIONS - 1)
        turn = math.radians(p.turn_step_deg)
        heading = state.heading + jnp.where(action == TURN_LEFT, turn, 0.0) - jnp.where(action == TURN_RIGHT, turn, 0.0)
        distance = jnp.where(action == FORWARD, p.forward_step, jnp.where(action == END_EPISODE, -p.forward_step, 0.0))
        position = jnp.where(distance != 0.0, move(state.position, state.heading, distance, p), state.position)
        near = touched(position, p)
        # dream's InstructionWrapper._reward: +1 for the object of the task's colour and the
        # instructed type, -1 for any other; objects are 4 m apart, so at most one is near.
        goal = state.instruction * 3 + task.color
        right = near[goal]
        any_near = jnp.any(near)
        reward = jnp.where(any_near, jnp.where(right, 1.0, -1.0), 0.0).astype(jnp.float32)
        new_state = state.replace(position=position, heading=heading.astype(jnp.float32), time=state.time + 1)
        return StepOut(
            obs=observe(new_state, task, params=p),
            state=new_state,
            reward=reward,
            terminated=any_near | (action == END_EPISODE),
            truncated=new_state.time >= p.horizon,
            info={
                "success": (any_near & right).astype(jnp.float32),
                "touched": any_near.astype(jnp.float32),
            },
        )


register(
    "visual_nav",
    EnvEntry(
        variants=VARIANTS,
        build=lambda p, v: (VisualNav(p, v), VisualNavTaskDistribution(p)),
        description="DREAM sign env: 3 rooms, a sign names the goal colour; go to the box/key; 80x60 RGB",
    ),
)
