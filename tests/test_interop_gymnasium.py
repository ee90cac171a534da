"""jmeta.interop.gymnasium: jmeta envs as gymnasium envs, and gymnax-style envs as jmeta envs.

Small horizons and few sub-envs keep every compile short; the vector envs the tests share are
module fixtures (each test resets them). What gymnasium's ``check_env`` checks for a single env is
checked here for the vector env (gymnasium 1.4 has no vector env checker): the spaces contain what
reset and step return, shapes and dtypes, determinism under a seed, and NEXT_STEP autoreset.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from flax import struct  # noqa: E402
from gymnasium.utils.env_checker import check_env, data_equivalence  # noqa: E402
from gymnasium.vector import AutoresetMode  # noqa: E402

import jmeta  # noqa: E402
from jmeta.envs.toy.point_nav import PointNavTask  # noqa: E402
from jmeta.errors import ConfigError, EnvInputError, UnknownNameError  # noqa: E402
from jmeta.interop import gymnasium as jg  # noqa: E402
from jmeta.rollout import rollout_episode  # noqa: E402
from jmeta.spaces import Box, Discrete  # noqa: E402
from jmeta.tasks import TaskBank, evaluation_bank  # noqa: E402


@pytest.fixture(scope="module")
def point_vec():
    """point_nav, 3 sub-envs, episodes of 4 steps (a distribution of goals)."""
    return jg.make_vec("point_nav", 3, horizon=4)


@pytest.fixture(scope="module")
def grid_vec():
    """grid_nav, 8 sub-envs, trials of 2 episodes of 3 steps."""
    return jg.make_vec("grid_nav", 8, horizon=3, episodes_per_trial=2)


def _rollout(venv, seed, steps):
    """``steps`` vector steps from ``reset(seed=seed)`` with actions from a seeded action space."""
    venv.action_space.seed(seed)
    out = [venv.reset(seed=seed)]
    out += [venv.step(venv.action_space.sample()) for _ in range(steps)]
    return out


# ------------------------------------------------------------------------------- single env


@pytest.mark.parametrize("name", ["point_nav", "grid_nav"])
def test_single_env_passes_gymnasiums_env_checker(name):
    env = jg.make(name, horizon=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # point_nav's unbounded observation Box is warned about, by design
        check_env(env, skip_render_check=True)
    obs_1, info_1 = env.reset(seed=7)
    env.reset()
    obs_2, info_2 = env.reset(seed=7)
    assert data_equivalence(obs_1, obs_2, exact=True) and data_equivalence(info_1, info_2, exact=True)
    assert isinstance(env.observation_space, gymnasium.spaces.Box)
    assert obs_1.dtype == env.observation_space.dtype and obs_1 in env.observation_space


def test_single_env_keeps_the_task_for_a_trial():
    env = jg.make("grid_nav", horizon=2, episodes_per_trial=3)
    goals, episodes = [], []
    for _ in range(6):
        _, info = env.reset()
        goals.append(tuple(info["task_features"]))
        episodes.append(info["episode_in_trial"])
        for _ in range(2):
            *_, truncated, _ = env.step(0)
        assert truncated
    assert episodes == [0, 1, 2, 0, 1, 2]
    assert goals[0] == goals[1] == goals[2] and goals[3] == goals[4] == goals[5]
    _, info = env.reset(options={"new_trial": True})
    assert info["episode_in_trial"] == 0 and info["trial_start"]


# ------------------------------------------------------------------------------- vector env


def test_vector_spaces_shapes_dtypes_and_determinism(point_vec):
    venv = point_vec
    assert isinstance(venv, gymnasium.vector.VectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert venv.single_observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    assert venv.single_action_space == gymnasium.spaces.Box(-0.1, 0.1, (2,), np.float32)
    assert venv.observation_space.shape == (3, 2) and venv.action_space.shape == (3, 2)

    first = _rollout(venv, seed=3, steps=5)
    obs, infos = first[0]
    assert obs.shape == (3, 2) and obs.dtype == np.float32 and obs in venv.observation_space
    assert infos["task_features"].shape == (3, 2) and infos["_task_features"].all()
    assert "task_index" not in infos  # tasks from a distribution have no index
    for obs, reward, terminated, truncated, infos in first[1:]:
        assert obs in venv.observation_space
        assert reward.shape == (3,) and reward.dtype == np.float32
        assert terminated.dtype == truncated.dtype == np.bool_ and terminated.shape == truncated.shape == (3,)
        assert infos["distance"].shape == (3,) and infos["_distance"].dtype == np.bool_
    assert all(data_equivalence(a, b, exact=True) for a, b in zip(first, _rollout(venv, 3, 5), strict=True))
    assert not np.array_equal(_rollout(venv, 4, 0)[0][1]["task_features"], first[0][1]["task_features"])


def test_autoreset_at_the_horizon_and_a_new_task_per_trial(grid_vec):
    venv = grid_vec  # horizon 3, 2 episodes per trial
    obs, infos = venv.reset(seed=0)
    goals = [infos["task_features"]]
    down = np.full(8, 3)  # grid_nav "down" from the start cell: stay at (0, 0)
    for episode in range(4):
        for t in range(3):
            obs, reward, terminated, truncated, infos = venv.step(down)
            assert not terminated.any() and truncated.all() == (t == 2)
            assert np.allclose(reward, -0.1) and infos["_on_goal"].all()
        # NEXT_STEP: the action is ignored, the first observation of the next episode comes back
        obs, reward, terminated, truncated, infos = venv.step(np.full(8, 2))
        assert np.array_equal(obs, np.zeros((8, 2))) and not reward.any()
        assert not terminated.any() and not truncated.any() and not infos["_on_goal"].any()
        assert (infos["episode_in_trial"] == (episode + 1) % 2).all()
        assert infos["trial_start"].all() == (episode % 2 == 1)
        goals.append(infos["task_features"])
    assert np.array_equal(goals[0], goals[1]) and np.array_equal(goals[2], goals[3])
    assert not np.array_equal(goals[1], goals[2]) and not np.array_equal(goals[3], goals[4])


def test_a_new_task_per_episode():
    venv = jg.make_vec("grid_nav", 8, horizon=1, resample="episode")
    _, infos = venv.reset(seed=0)
    features = [infos["task_features"]]
    for _ in range(2):
        venv.step(np.zeros(8, np.int32))
        _, _, _, _, infos = venv.step(np.zeros(8, np.int32))  # the autoreset step
        assert infos["trial_start"].all() and (infos["episode_in_trial"] == 0).all()
        features.append(infos["task_features"])
    assert not np.array_equal(features[0], features[1]) and not np.array_equal(features[1], features[2])


def test_a_fixed_task_gives_the_jmeta_envs_rewards():
    env, dist = jmeta.make("point_nav", horizon=5)
    task = dist.sample(jax.random.key(11))
    venv = jg.make_vec("point_nav", 2, task=task, horizon=5)
    actions = np.asarray(jax.random.uniform(jax.random.key(1), (5, 2, 2), minval=-0.1, maxval=0.1))
    _, infos = venv.reset(seed=0)
    assert np.allclose(infos["task_features"], np.asarray(task.goal)[None])
    rewards = np.stack([venv.step(a)[1] for a in actions])

    step = jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0, None)))
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), task)
    direct = []
    for a in actions:
        out = step(jax.random.key(0), state, jnp.asarray(a), task)
        state = out.state
        direct.append(np.asarray(out.reward))
    np.testing.assert_allclose(rewards, np.stack(direct), rtol=1e-6)


def test_set_tasks_and_a_masked_reset(point_vec):
    venv = point_vec
    goals = jnp.array([[0.1, 0.2], [0.3, 0.4], [-0.5, 0.0]])
    venv.set_tasks(PointNavTask(goal=goals))
    try:
        _, infos = venv.reset(seed=1)
        np.testing.assert_allclose(infos["task_features"], goals)
        for _ in range(6):  # past an autoreset: fixed tasks are never redrawn
            *_, infos = venv.step(np.zeros((3, 2), np.float32))
        np.testing.assert_allclose(infos["task_features"], goals)
    finally:
        venv.set_tasks(None)
    _, before = venv.reset(seed=2)
    venv.step(np.full((3, 2), 0.05, np.float32))
    obs, after = venv.reset(options={"reset_mask": np.array([True, False, False])})
    assert after["trial_start"].tolist() == [True, False, False]
    assert np.array_equal(after["task_features"][1:], before["task_features"][1:])
    np.testing.assert_allclose(obs[1:], 0.05)  # the unmasked sub-envs kept their positions
    np.testing.assert_allclose(obs[0], 0.0)


def test_bandit_eval_bank_and_gymnasium_wrappers():
    """A Discrete action space, horizon 1 (every step truncates), tasks from the evaluation bank
    (``task_index``), under gymnasium's RecordEpisodeStatistics and NormalizeObservation wrappers."""
    venv = jg.make_vec("bandit", 4, tasks="eval")
    assert venv.single_action_space == gymnasium.spaces.Discrete(5, dtype=np.int32)
    assert venv.action_space == gymnasium.spaces.MultiDiscrete(np.full(4, 5), dtype=np.int32)
    wrapped = gymnasium.wrappers.vector.NormalizeObservation(gymnasium.wrappers.vector.RecordEpisodeStatistics(venv))
    _, infos = wrapped.reset(seed=0)
    assert infos["_task_index"].all() and ((infos["task_index"] >= 0) & (infos["task_index"] < 40)).all()
    bank_probs = np.asarray(evaluation_bank(jmeta.make("bandit")[1]).tasks.probs)
    np.testing.assert_allclose(infos["task_features"], bank_probs[infos["task_index"]])
    _, reward, _, truncated, infos = wrapped.step(np.arange(4))
    assert truncated.all() and set(np.unique(reward)) <= {0.0, 1.0}
    np.testing.assert_array_equal(infos["episode"]["r"], reward)
    _, reward, _, truncated, infos = wrapped.step(np.arange(4))  # autoreset step
    assert not truncated.any() and not reward.any() and (infos["episode_in_trial"] == 1).all()


def test_maze2d_small_spaces():
    venv = jg.make_vec("maze2d", 2, variant="small", horizon=3)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, *venv.jmeta_spec.observation_space.shape) and obs in venv.observation_space
    assert venv.single_action_space == gymnasium.spaces.Discrete(3, dtype=np.int32)
    for _ in range(4):
        obs, reward, *_ = venv.step(venv.action_space.sample())
        assert obs in venv.observation_space and reward.shape == (2,)


def test_gymnasium_make_and_make_vec_by_id():
    ids = jg.register_gymnasium_envs()
    assert "jmeta/point_nav" in ids and jg.register_gymnasium_envs() == ids
    env = gymnasium.make("jmeta/grid_nav", horizon=2)  # with gymnasium's passive checker and order enforcing
    assert isinstance(env.unwrapped, jg.MetaGymEnv)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and env.step(1)[1] == pytest.approx(-0.1)
    venv = gymnasium.make_vec("jmeta/grid_nav", num_envs=2, horizon=2)
    assert isinstance(venv, jg.MetaVectorEnv) and venv.num_envs == 2


@pytest.mark.extended  # about 6 s on one core, mostly compiling the MuJoCo step
def test_cheetah_vel_on_mujoco():
    venv = jg.make_vec("cheetah_vel", 2, physics="mujoco", horizon=3)
    assert venv.single_observation_space.shape == (20,) and venv.single_action_space.shape == (6,)
    obs, infos = venv.reset(seed=0)
    assert obs in venv.observation_space and infos["task_features"].shape == (2, 1)  # the target velocity
    for t in range(3):
        obs, reward, terminated, truncated, infos = venv.step(venv.action_space.sample())
        assert obs in venv.observation_space and np.isfinite(reward).all() and truncated.all() == (t == 2)
    assert infos["_x_velocity"].all()


# ------------------------------------------------------------------------------- bad input


def test_bad_input_is_refused(point_vec, grid_vec):
    with pytest.raises(UnknownNameError, match="unknown environment 'nope'.*point_nav"):
        jg.make_vec("nope", 2)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError, match="num_envs must be an integer >= 1"):
            jg.make_vec("point_nav", bad)
    with pytest.raises(ConfigError, match="resample='sometimes' is invalid"):
        jg.make_vec("point_nav", 2, resample="sometimes")
    with pytest.raises(ConfigError, match="tasks='test' is invalid"):
        jg.make_vec("point_nav", 2, tasks="test")
    with pytest.raises(EnvInputError, match="structure"):
        jg.make_vec("point_nav", 2, task={"goal": np.zeros(2)})
    with pytest.raises(EnvInputError, match="leaf shapes"):
        jg.make("point_nav", tasks=TaskBank(PointNavTask(goal=jnp.zeros((4, 3)))))

    point_vec.reset(seed=0)
    with pytest.raises(EnvInputError, match=r"actions must have shape \(3, 2\)"):
        point_vec.step(np.zeros(2, np.float32))
    with pytest.raises(ConfigError, match="unknown reset option"):
        point_vec.reset(options={"task": 1})
    with pytest.raises(gymnasium.error.ResetNeeded):
        jg.make_vec("grid_nav", 2).step(np.zeros(2, np.int32))
    grid_vec.reset(seed=0)
    with pytest.raises(EnvInputError, match=r"in \[0, 5\)"):
        grid_vec.step(np.array([0, 1, 2, 3, 4, 0, 1, 5]))
    with pytest.raises(EnvInputError, match="integers"):
        grid_vec.step(np.zeros(8))


# ------------------------------------------------------------------------ gymnax-style env


@struct.dataclass
class LineParams:
    """The task: the goal on a line."""

    goal: jax.Array
    step_size: float = 0.25


@struct.dataclass
class LineState:
    x: jax.Array


class LineEnv:
    """A gymnax-style env (no gymnax needed): move left/right on a line towards ``params.goal``."""

    def reset(self, key, params):
        state = LineState(x=jnp.zeros(()))
        return state.x[None], state

    def step_env(self, key, state, action, params):
        x = state.x + jnp.where(action == 1, params.step_size, -params.step_size)
        done = jnp.abs(x - params.goal) < 0.1
        return x[None], LineState(x=x), -jnp.abs(x - params.goal), done, {"discount": 1.0 - done, "x": x[None]}


def test_a_gymnax_style_env_becomes_a_jmeta_env():
    sample = lambda key: LineParams(goal=jax.random.choice(key, jnp.array([-0.5, 0.5])))  # noqa: E731
    env, dist = jg.from_gymnax_style(LineEnv(), sample, name="line", horizon=4,
                                     observation_space=Box(-10.0, 10.0, (1,)), action_space=Discrete(2))
    assert isinstance(env, jmeta.MetaEnv) and env.spec.horizon == 4
    venv = jg.MetaVectorEnv(env, dist, 4, seed=0)
    _, infos = venv.reset()
    goal = infos["task_features"][:, 0]
    toward = (goal > 0).astype(np.int32)
    obs, reward, terminated, truncated, infos = venv.step(toward)
    np.testing.assert_allclose(obs[:, 0], np.sign(goal) * 0.25)
    np.testing.assert_allclose(reward, -0.25)
    assert set(infos) >= {"discount", "_discount"} and "x" not in infos  # only scalar info is kept
    obs, reward, terminated, truncated, _ = venv.step(toward)
    assert terminated.all() and not truncated.any()

    right = lambda params, obs, key: (jnp.ones((), jnp.int32), jnp.zeros(()))  # noqa: E731
    trajectory = jax.jit(rollout_episode, static_argnums=(0, 1))(env, right, None, LineParams(goal=jnp.asarray(0.5)),
                                                                 jax.random.key(0))
    np.testing.assert_allclose(trajectory.reward, [-0.25, 0.0, 0.0, 0.0])  # at the goal on step 2, then masked
    np.testing.assert_array_equal(trajectory.mask, [1, 1, 0, 0])
