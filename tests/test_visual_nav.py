"""visual_nav (DREAM's sign env) against ezliu/dream envs/miniworld/sign.py and gym-miniworld."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.baselines import visual_nav as vp
from jmeta.envs.pixel import visual_nav as vn
from jmeta.errors import ConfigError

ENV, DIST = jmeta.make("visual_nav")
STEP = jax.jit(ENV.step)


def _task(color):
    return vn.VisualNavTask(color=jnp.int32(color))


def _state(x, z, heading=0.0, instruction=0, time=0):
    return vn.VisualNavState(
        position=jnp.array([x, z], jnp.float32),
        heading=jnp.float32(heading),
        time=jnp.int32(time),
        instruction=jnp.int32(instruction),
        object_angles=jnp.zeros(6, jnp.float32),
    )


def test_spec_and_params():
    spec = ENV.spec
    assert spec.horizon == 20 and spec.episodes_per_trial == 2
    assert spec.action_space.n == 4
    assert spec.observation_space.shape == (60 * 80 * 3 + 2,)
    np.testing.assert_allclose(vn.BOX_RADIUS, 0.5657, atol=1e-4)
    np.testing.assert_allclose(vn.KEY_RADIUS, 0.7355, atol=1e-3)
    np.testing.assert_allclose(vn.VisualNavParams().near_distance[:3], 0.5657 + 0.4 + 0.77, atol=1e-4)
    with pytest.raises(ConfigError):
        jmeta.make("visual_nav", agent_radius=0.0)
    with pytest.raises(ConfigError):
        jmeta.make("visual_nav", start_x=(4.0, 4.5))


def test_reset_ranges():
    keys = jax.random.split(jax.random.key(0), 256)
    tasks = jax.vmap(DIST.sample)(keys)
    assert set(np.unique(np.asarray(tasks.color))) == {0, 1, 2}
    obs, states = jax.jit(jax.vmap(ENV.reset))(keys, tasks)
    pos, heading = np.asarray(states.position), np.asarray(states.heading)
    # place_agent(min_x=4, max_x=5, min_z=4, max_z=6) with the 0.4 radius kept inside the bounds.
    assert pos[:, 0].min() >= 4.4 and pos[:, 0].max() <= 4.6
    assert pos[:, 1].min() >= 4.4 and pos[:, 1].max() <= 5.6
    assert heading.min() >= -math.pi and heading.max() < math.pi
    assert heading.min() < -2.5 and heading.max() > 2.5
    assert set(np.unique(np.asarray(states.instruction))) == {0, 1}
    assert np.all(np.asarray(states.time) == 0)
    image, instruction = vn.split_observation(obs)
    assert image.shape == (256, 60, 80, 3) and image.dtype == jnp.uint8
    np.testing.assert_array_equal(instruction, states.instruction)
    np.testing.assert_array_equal(np.asarray(obs[:, -2:]).sum(axis=1), 1.0)
    assert float(obs.min()) >= 0.0 and float(obs.max()) <= 1.0


def test_turns_and_moves():
    task = _task(0)
    s = _state(4.5, 5.0, 0.0)
    out = STEP(jax.random.key(0), s, jnp.int32(vn.FORWARD), task)
    np.testing.assert_allclose(out.state.position, [5.2, 5.0], atol=1e-6)
    assert not bool(out.terminated) and float(out.reward) == 0.0 and int(out.state.time) == 1
    out = STEP(jax.random.key(0), s, jnp.int32(vn.TURN_LEFT), task)
    np.testing.assert_allclose(out.state.heading, math.pi / 4, atol=1e-6)
    np.testing.assert_allclose(out.state.position, [4.5, 5.0])
    out = STEP(jax.random.key(0), out.state, jnp.int32(vn.FORWARD), task)  # forward = (cos h, -sin h)
    np.testing.assert_allclose(out.state.position, [4.5 + 0.7 / math.sqrt(2), 5.0 - 0.7 / math.sqrt(2)], atol=1e-5)
    out = STEP(jax.random.key(0), s, jnp.int32(vn.TURN_RIGHT), task)
    np.testing.assert_allclose(out.state.heading, -math.pi / 4, atol=1e-6)
    # End episode: MiniWorld's move_back index, so the agent steps back 0.7 and the episode ends.
    out = STEP(jax.random.key(0), s, jnp.int32(vn.END_EPISODE), task)
    np.testing.assert_allclose(out.state.position, [3.8, 5.0], atol=1e-6)
    assert bool(out.terminated) and float(out.reward) == 0.0


def test_walls_block_moves_and_keep_agent_inside():
    task = _task(0)
    # Facing the west wall from 0.9 m: a 0.7 step would leave 0.2 < 0.4 of clearance.
    out = STEP(jax.random.key(0), _state(0.9, 3.0, math.pi), jnp.int32(vn.FORWARD), task)
    np.testing.assert_allclose(out.state.position, [0.9, 3.0])
    # The double wall between the top room and the right room (x in [6, 10], z in [6.5, 6.75]).
    out = STEP(jax.random.key(0), _state(8.0, 6.0, -math.pi / 2), jnp.int32(vn.FORWARD), task)
    np.testing.assert_allclose(out.state.position, [8.0, 6.0])
    # ...but the opening over x in [0, 6] lets the agent through.
    s = _state(3.0, 6.0, -math.pi / 2)
    for _ in range(2):
        s = STEP(jax.random.key(0), s, jnp.int32(vn.FORWARD), task).state
    np.testing.assert_allclose(s.position, [3.0, 7.4], atol=1e-5)

    # Long random walks (ignoring terminations) never leave the rooms.
    def walk(key):
        def body(state, k):
            action = jax.random.choice(k, jnp.array([0, 1, 2, 2, 2]))
            state = ENV.step(k, state, action, task).state
            return state, state.position

        return jax.lax.scan(body, _state(4.5, 5.0, 0.0), jax.random.split(key, 150))[1]

    pos = np.asarray(jax.jit(jax.vmap(walk))(jax.random.split(jax.random.key(1), 32))).reshape(-1, 2)
    x, z = pos[:, 0], pos[:, 1]
    assert x.min() >= 0.4 - 1e-5 and x.max() <= 9.6 + 1e-5 and z.min() >= 0.4 - 1e-5 and z.max() <= 12.6 + 1e-5
    clearance = jax.vmap(lambda p: vn._segment_distance(p, jnp.asarray(vn.WALL_SEGMENTS)).min())(pos)
    assert float(clearance.min()) >= 0.4 - 1e-5  # MiniWorld: no wall within the agent radius
    assert not np.any((x > 6.4) & (z > 6.1 + 1e-4) & (z < 7.15 - 1e-4))  # never in/through the double wall
    assert (z > 7.15).any()  # the walks do reach the hall


@pytest.mark.parametrize(
    ("color", "instruction", "expected"),
    [(0, 0, 1.0), (1, 0, -1.0), (2, 0, -1.0), (0, 1, -1.0)],
)
def test_touching_blue_box(color, instruction, expected):
    # Blue box at (1, 1): near when closer than 0.566 + 0.4 + 0.77 = 1.736.
    s = _state(3.0, 1.0, math.pi, instruction)  # facing -x
    out = STEP(jax.random.key(0), s, jnp.int32(vn.FORWARD), _task(color))
    np.testing.assert_allclose(out.state.position, [2.3, 1.0], atol=1e-6)
    assert float(out.reward) == expected and bool(out.terminated)
    assert float(out.info["touched"]) == 1.0 and float(out.info["success"]) == float(expected > 0)
    # At 1.8 m it is not touched yet.
    out = STEP(jax.random.key(0), _state(3.5, 1.0, math.pi, instruction), jnp.int32(vn.FORWARD), _task(color))
    assert float(out.reward) == 0.0 and not bool(out.terminated)


def test_touching_keys_and_turning_near_objects():
    # Green key at (1, 9): near within 0.736 + 0.4 + 0.77 = 1.906; turning there also ends the episode.
    s = _state(2.8, 9.0, 0.0, instruction=1)
    out = STEP(jax.random.key(0), s, jnp.int32(vn.TURN_LEFT), _task(2))
    assert float(out.reward) == 1.0 and bool(out.terminated)
    out = STEP(jax.random.key(0), s, jnp.int32(vn.TURN_LEFT), _task(1))
    assert float(out.reward) == -1.0 and bool(out.terminated)
    assert float(STEP(jax.random.key(0), _state(3.0, 9.0), jnp.int32(0), _task(2)).reward) == 0.0


def test_truncated_at_twenty_steps():
    s = _state(4.5, 5.0, 0.0, time=18)
    out = STEP(jax.random.key(0), s, jnp.int32(vn.TURN_LEFT), _task(0))
    assert not bool(out.truncated)
    out = STEP(jax.random.key(0), out.state, jnp.int32(vn.TURN_LEFT), _task(0))
    assert bool(out.truncated) and int(out.state.time) == 20


def test_sign_shows_the_task_colour():
    render = jax.jit(lambda s, c: vn.render_view(s, vn.VisualNavTask(color=c)))
    # Reading poses from the sign reader's table (heading, viewpoint), and one frontal view.
    poses = [(math.radians(h), p) for h, p in zip(vp.VIEW_HEADINGS_DEG, vp.VIEWPOINTS, strict=True)][::3]
    poses.append((0.0, (5.0, 10.25)))
    for heading, (x, z) in poses:
        images = [np.asarray(render(_state(x, z, heading), jnp.int32(c))) for c in range(3)]
        assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])
        decoded = [int(vp.read_sign(jnp.asarray(img))) for img in images]
        assert decoded == [0, 1, 2], (heading, x, z, decoded)
    # The start area does not show the sign (the hall is out of sight from the top room).
    assert int(vp.count_letters(render(_state(4.5, 5.0, 0.0), jnp.int32(0)))) == 0


@pytest.mark.slow
def test_scripted_policies_expected_returns():
    n = 48
    tasks = vn.VisualNavTask(color=jnp.arange(n, dtype=jnp.int32) % 3)
    results = {}
    for name, make in vp.POLICIES.items():
        out, carry = vp.run_trials(ENV, make(), tasks, jax.random.key(0))
        results[name] = {k: np.asarray(v) for k, v in out.items()}
        if name == "sign_reader":
            np.testing.assert_array_equal(np.asarray(carry.color), np.asarray(tasks.color))
    execution = {name: r["return"][:, 1].mean() for name, r in results.items()}
    success = {name: r["success"][:, 1].mean() for name, r in results.items()}
    # Oracle and sign reader: (near) every execution episode succeeds.
    assert success["oracle"] >= 0.95 and success["sign_reader"] >= 0.95
    assert execution["sign_reader"] >= 0.9
    # The sign reader spends the exploration episode reading (no object touched, reward 0).
    assert np.all(results["sign_reader"]["touched"][:, 0] == 0)
    # Guesser: right colour about a third of the time (binomial s.e. ~0.07 at n = 48).
    assert 0.15 <= success["guesser"] <= 0.55
    assert results["guesser"]["touched"][:, 1].mean() >= 0.9  # it always reaches some object
    # Random: far lower.
    assert success["random"] <= 0.1 < success["guesser"]
    # (Random rarely touches anything, so its return is near 0, above the guesser's 2/3 x -1 + 1/3 x 1.)
