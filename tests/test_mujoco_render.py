"""Headless MuJoCo frames (jmeta.viewers.mujoco_render): qpos from env states on both physics
paths, frames of cheetah_vel and ant_goal from short rollouts on the "mujoco" path, goal markers,
the no-backend error and the GIF writer. Render tests skip when no OpenGL backend works here."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmeta
from jmeta.viewers import mujoco_render as mr

STEPS = 8
WIDTH, HEIGHT = 160, 120


def _rollout(name: str):
    """(env, task, states [STEPS + 1, ...]): reset plus STEPS steps of full-scale random actions."""
    env, tasks = jmeta.make(name, physics="mujoco")
    task = tasks.sample(jax.random.key(0))
    size = env.spec.action_space.shape[0]

    @jax.jit
    def run(key):
        _, state = env.reset(key, task)

        def step(state, k):
            action = jnp.where(jax.random.bernoulli(k, 0.5, (size,)), 1.0, -1.0)
            out = env.step(k, state, action, task)
            return out.state, out.state

        _, states = jax.lax.scan(step, state, jax.random.split(key, STEPS))
        return jax.tree_util.tree_map(lambda first, rest: jnp.concatenate([first[None], rest]), state, states)

    return env, task, run(jax.random.key(1))


@pytest.fixture(scope="module")
def cheetah():
    return _rollout("cheetah_vel")


@pytest.fixture(scope="module")
def ant():
    return _rollout("ant_goal")


@pytest.fixture(scope="module")
def backend():
    """The working MUJOCO_GL backend (skips when none); the environment variables the renderer
    sets are restored afterwards."""
    found = mr.headless_backend()
    if found is None:
        pytest.skip(f"no headless OpenGL backend: {mr._no_backend_message()}")
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("MUJOCO_GL"):
            patch.setenv("MUJOCO_GL", found)
        if found in ("egl", "osmesa") and "PYOPENGL_PLATFORM" not in os.environ:
            patch.setenv("PYOPENGL_PLATFORM", found)  # what mujoco.egl / mujoco.osmesa would set
        yield found


def test_qpos_of_stacked_and_single_states(cheetah):
    env, _, states = cheetah
    qpos = mr.qpos_of(env, states)
    assert qpos.shape == (STEPS + 1, 9) and qpos.dtype == np.float64
    # the "mujoco" path carries float64 state; its float32 view is the state's qpos
    np.testing.assert_array_equal(qpos.astype(np.float32), np.asarray(states.qpos))
    single = jax.tree_util.tree_map(lambda x: x[3], states)
    np.testing.assert_array_equal(mr.qpos_of(env, single), qpos[3])
    # MJX states carry no exact state (exact is [0, 2]): qpos is read from the float32 field
    mjx_like = states.replace(exact=jnp.zeros((STEPS + 1, 0, 2), jnp.uint32))
    np.testing.assert_array_equal(mr.qpos_of(env, mjx_like), np.asarray(states.qpos, np.float64))
    with pytest.raises(ValueError, match="nq=9"):
        mr.qpos_of(env, np.zeros((3, 8)))


def test_goal_markers(ant, cheetah):
    env, task, _ = ant
    np.testing.assert_array_equal(mr.goal_markers(env, task), np.asarray(task.target)[None])
    assert mr.goal_markers(cheetah[0], cheetah[1]) is None


def test_cheetah_frames_move(backend, cheetah):
    env, _, states = cheetah
    qpos = mr.qpos_of(env, states)[[0, STEPS // 2, STEPS]]
    assert np.abs(qpos[-1] - qpos[0]).max() > 0.05  # the robot moved
    with mr.MujocoRenderer(env, WIDTH, HEIGHT) as renderer:
        frames = renderer.render(qpos)
        again = renderer.render(qpos[:1])
    assert frames.shape == (3, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert frames.std() > 10  # not blank
    np.testing.assert_array_equal(again[0], frames[0])  # deterministic
    changed = np.any(frames[0] != frames[-1], axis=-1).mean()
    assert changed > 0.01, f"only {changed:.2%} of pixels changed although the cheetah moved"


def test_ant_frames_and_marker(backend, ant):
    env, _, states = ant
    qpos = mr.qpos_of(env, states)[[0, STEPS // 2, STEPS]]
    frames = mr.render_frames(env, qpos, width=WIDTH, height=HEIGHT)
    assert frames.shape == (3, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    assert np.any(frames[0] != frames[-1])
    goal = qpos[0, :2] + np.array([0.8, 0.0])  # on the floor, in view of the tracking camera
    marked = mr.render_frames(env, qpos, width=WIDTH, height=HEIGHT, markers=goal, marker_rgba=(1, 0, 0, 1))
    changed = np.any(marked != frames, axis=-1)
    assert changed.mean(axis=(1, 2)).min() > 0.001, "the marker changed no pixels"
    red = lambda img: (img[..., 0] > 150) & (img[..., 1] < 60) & (img[..., 2] < 60)  # noqa: E731
    assert red(marked).sum() > red(frames).sum() + 20


def test_no_backend_names_packages(monkeypatch, cheetah):
    monkeypatch.setenv("MUJOCO_GL", "off")
    assert mr.headless_backend() is None
    with pytest.raises(RuntimeError, match="libegl1.*libosmesa6"):
        mr.render_frames(cheetah[0], np.zeros((1, 9)))


def test_write_gif(tmp_path):
    from PIL import Image

    frames = np.zeros((3, 24, 32, 3), np.uint8)
    frames[1, :, :, 0] = 255
    frames[2, :, :, 2] = 255
    path = tmp_path / "clip.gif"
    mr.write_gif(frames, path, fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (32, 24)
        gif.seek(1)
        assert np.asarray(gif.convert("RGB"))[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ValueError, match="uint8"):
        mr.write_gif(frames.astype(np.float32), path)
