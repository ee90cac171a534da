"""MAESN's tasks (wheeled_nav, ant_goal_ring, block_push): models, rewards, task sets, physics parity.

References: russellmendonca/maesn_suite maesn/rllab/envs/mujoco/{wheeled_robot,
ant_env_rand_goal_ring, pusher}.py and maesn/vendor/mujoco_models/{wheeled, low_gear_ratio_ant,
pusher_env}.xml (see docs/envs/<name>.md).

Tolerances (float32 in jmeta against float64 in MuJoCo):
* C path vs plain ``mj_step`` + ``mj_forward`` (rllab's step) and MAESN's observation and reward in
  numpy: qpos, observations and rewards within 1e-4 over 5 steps at batch 3 (the ant's observation,
  which holds clipped contact forces, within 1e-3); contact forces within 1e-3 abs / 1e-3 rel.
* MJX vs the C path over the first 5 steps at batch 3 (see MJX_CASES): wheeled within 1e-4; the ant
  within 1e-3 (qpos, rewards) and 5e-2 (velocities) because its feet touch down in those steps.
  The pusher's MJX parity is measured in docs/envs/block_push.md (its MJX compile is too slow for here).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import jmeta
from _tiny import FAST_COMPILE
from jmeta.envs.mujoco import assets as model_assets
from jmeta.envs.mujoco import maesn
from jmeta.envs.mujoco import physics as phys
from jmeta.envs.mujoco.maesn import GoalTask, MaesnState, PushTask
from jmeta.errors import ConfigError
from jmeta.tasks import evaluation_bank

FAMILIES = ("wheeled_nav", "ant_goal_ring", "block_push")


@functools.cache
def _make(name, variant="default", **overrides):
    return jmeta.make(name, variant=variant, physics="mujoco", **overrides)


@functools.cache
def _vstep(name):
    """The C-path env's step, vmapped and jitted once per family (shared by the parity tests)."""
    return jax.jit(jax.vmap(_make(name)[0].step), compiler_options=FAST_COMPILE)


@functools.cache
def _vreset(name):
    """The C-path env's reset, vmapped and jitted once per family."""
    return jax.jit(jax.vmap(_make(name)[0].reset), compiler_options=FAST_COMPILE)


def _state(env, qpos, qvel=None, cfrc=None, poses=True):
    """A state at ``qpos`` as ``mj_forward`` shows it (body poses only for the envs that keep them,
    and only with ``poses``)."""
    p = env.physics
    qpos = jnp.asarray(qpos, jnp.float32)
    qvel = jnp.zeros(p.nv, jnp.float32) if qvel is None else jnp.asarray(qvel, jnp.float32)
    if env.READS_POSES and poses:
        xpos, xmat = p.body_poses(qpos)
    else:
        xpos, xmat = jnp.zeros((0, 3), jnp.float32), jnp.zeros((0, 9), jnp.float32)
    cfrc = jnp.zeros((p.ncfrc, 6), jnp.float32) if cfrc is None else jnp.asarray(cfrc, jnp.float32)
    return MaesnState(qpos=qpos, qvel=qvel, xpos=xpos, xmat=xmat, cfrc_ext=cfrc, time=jnp.zeros((), jnp.int32),
                      exact=p.exact_state(qpos, qvel))


@functools.cache
def _rewards(name):
    """(dense reward, sparse reward, dense info, probe) at a batch of poses ``qpos`` [B, nq] with
    contact forces ``cfrc`` [B, ncfrc, 6], for one action and task; jitted once per family. probe:
    the ant's centre of mass, the pusher's block positions, else the chassis xy."""
    dense, _ = _make(name)
    sparse, _ = _make(name, "sparse")

    def one(qpos, cfrc, action, task):
        state = _state(dense, qpos, cfrc=cfrc)
        r_dense, info = dense.reward(state, action, task)
        r_sparse, _ = sparse.reward(state, action, task)
        if name == "ant_goal_ring":
            probe = dense.center_of_mass(state)[:2]
        elif name == "block_push":
            probe = dense.block_positions(state)
        else:
            probe = state.qpos[:2]
        return r_dense, r_sparse, info, probe

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)), compiler_options=FAST_COMPILE)


def _no_contacts(name, batch):
    return np.zeros((batch, _make(name)[0].physics.ncfrc, 6), np.float32)


def _goal(x, y):
    return GoalTask(goal=jnp.array([x, y], jnp.float32))


# ---------------------------------------------------------------- models


def test_models_are_maesns():
    wheeled = phys.load_model("wheeled.xml")
    assert (wheeled.nq, wheeled.nv, wheeled.nu) == (6, 6, 2)
    np.testing.assert_allclose(wheeled.body_mass.sum(), 14.0, rtol=1e-12)  # MAESN's settotalmass
    np.testing.assert_allclose(wheeled.body_mass[1:4], [4.989244, 2.612362, 2.612362], atol=1e-6)
    np.testing.assert_array_equal(wheeled.actuator_ctrlrange, [[-2, 2], [-2, 2]])
    assert [wheeled.joint(i).name for i in range(6)] == [
        "xmove", "ymove", "zmove", "zrotate", "rotate_wheels1", "rotate_wheels2"]
    ant = phys.load_model("ant_low_gear.xml")
    assert (ant.nq, ant.nv, ant.nu, ant.nbody) == (15, 14, 8, 14)
    np.testing.assert_array_equal(ant.actuator_gear[:, 0], 30.0)
    assert ant.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_allclose(phys.initial_qpos(ant), [0, 0, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1])
    pusher = phys.load_model("pusher.xml")
    assert (pusher.nq, pusher.nv, pusher.nu) == (13, 13, 3)
    assert pusher.opt.iterations == 20 and pusher.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    np.testing.assert_array_equal(pusher.opt.gravity, 0.0)
    for model in (wheeled, ant, pusher):
        assert model.opt.timestep == pytest.approx(0.01)


def test_specs_and_action_spaces():
    expected = {"wheeled_nav": (12, 2, 2.0, 200), "ant_goal_ring": (125, 8, 1.0, 200), "block_push": (26, 3, 2.0, 100)}
    for name, (obs_dim, nu, bound, horizon) in expected.items():
        env, _ = _make(name)
        spec = env.spec
        assert spec.observation_space.shape == (obs_dim,)
        assert spec.action_space.shape == (nu,)
        assert spec.action_space.low == -bound and spec.action_space.high == bound
        assert spec.horizon == horizon and spec.episodes_per_trial == 1
        assert env.physics.dt == pytest.approx(0.01)  # rllab: frame_skip 1
        assert "maesn_suite" in spec.source
    assert set(jmeta.list_variants("wheeled_nav")) >= {"default", "sparse"}
    assert maesn.VARIANTS["ant_goal_ring"]["default"].reward == "dense"
    sparse = maesn.VARIANTS["block_push"]["sparse"]
    assert (sparse.reward, sparse.split) == ("sparse", "test")


def test_bad_options_are_refused_with_valid_values():
    with pytest.raises(ConfigError, match=r"wheeled_nav\.reward='medium' is invalid; valid values are: dense, sparse"):
        jmeta.make("wheeled_nav", reward="medium")
    with pytest.raises(ConfigError, match="valid values are: train, test"):
        jmeta.make("ant_goal_ring", split="val")
    with pytest.raises(ConfigError, match="valid values are: auto, mjx, mujoco"):
        jmeta.make("block_push", physics="bullet")
    with pytest.raises(ConfigError, match="multiples of 5"):
        jmeta.make("block_push", task_set="seeded", train_tasks=12)
    assert jmeta.make("block_push", train_tasks=12)[1].fixed_split.train.size == 12  # the authors' first 12
    with pytest.raises(ConfigError, match=r"block_push\.task_set='mine' is invalid; valid values are: authors, seeded"):
        jmeta.make("block_push", task_set="mine")
    with pytest.raises(ConfigError, match="must be <= 100 with task_set='authors'"):
        jmeta.make("wheeled_nav", test_tasks=101)
    with pytest.raises(ConfigError, match=r"ant_goal_ring\.goal_radius=1\.0 needs task_set='seeded'"):
        jmeta.make("ant_goal_ring", goal_radius=1.0)
    with pytest.raises(ConfigError, match="reward"):  # unknown field lists the valid ones
        jmeta.make("wheeled_nav", rewards="dense")


# ---------------------------------------------------------------- rewards by hand


def test_sparse_threshold_keeps_the_dense_value_on_the_boundary():
    dense, at_origin = jnp.float32(-0.5), jnp.float32(-2.0)
    for distance, sparse, expected in ((0.8, True, -0.5), (0.8001, True, -2.0), (0.7, True, -0.5),
                                       (5.0, False, -0.5)):
        got = maesn.sparse_goal_term(dense, at_origin, jnp.float32(distance), 0.8, sparse)
        assert float(got) == expected


def test_wheeled_rewards_dense_and_sparse():
    task = _goal(0.0, 2.0)
    action = jnp.array([1.0, -2.0])
    ctrl = 0.05 * 5.0
    distances = np.array([0.5, 0.8 - 1e-3, 0.8 + 1e-3, 1.5])
    qpos = np.zeros((4, 6))
    qpos[:, 1] = 2.0 - distances
    qpos[:, 3:] = [0.3, 1.0, 2.0]  # yaw and wheel angles do not enter the reward
    r_dense, r_sparse, info, _ = _rewards("wheeled_nav")(qpos, _no_contacts("wheeled_nav", 4), action, task)
    np.testing.assert_allclose(r_dense, -distances - ctrl, atol=1e-5)
    np.testing.assert_allclose(info["goal_distance"], distances, atol=1e-5)
    np.testing.assert_allclose(info["ctrl_cost"], ctrl, atol=1e-6)
    expected = np.where(distances <= 0.8, -distances, -2.0) - ctrl  # beyond 0.8: -||g|| - ctrl
    np.testing.assert_allclose(r_sparse, expected, atol=1e-5)


def test_wheeled_sparse_pays_differently_per_task_only_near_the_goal():
    qpos = np.zeros((4, 6))
    qpos[1:, :2] = [1.5, 0.2]  # within 0.8 of the first goal only
    rewards = []
    for task in (_goal(2.0, 0.0), _goal(0.0, 2.0), _goal(-1.2, 1.6)):
        rewards.append(np.asarray(_rewards("wheeled_nav")(qpos, _no_contacts("wheeled_nav", 4), jnp.zeros(2), task)[1]))
    rewards = np.stack(rewards)  # [task, state]
    np.testing.assert_allclose(rewards[:, 0], -2.0, atol=1e-6)  # at the start: every goal is 2 away
    np.testing.assert_allclose(rewards[:, 1], [-np.hypot(0.5, 0.2), -2.0, -2.0], atol=1e-5)


def test_ant_rewards_dense_and_sparse():
    rewards = _rewards("ant_goal_ring")
    init = np.asarray(phys.initial_qpos(_make("ant_goal_ring")[0].physics.model))
    goal = np.array([-1.2, 1.6])
    task = _goal(*goal)
    action = jnp.full((8,), 0.5)
    cfrc = _no_contacts("ant_goal_ring", 4)
    cfrc[:, 1, 2], cfrc[:, 3, 5] = 3.0, -0.4  # clipped to 1 and -0.4
    contact = 5e-4 * (1.0 + 0.16)
    ctrl = 0.005 * 8 * 0.25
    com0 = np.asarray(rewards(np.tile(init, (4, 1)), cfrc, action, task)[3][0])
    offsets = np.array([[0.3, -0.4], [0.479, -0.639], [0.481, -0.641], [1.2, -1.6]])  # d 0.5, <0.8, >0.8, 2
    qpos = np.tile(init, (4, 1))
    qpos[:, :2] += goal + offsets - com0  # the whole ant shifted: its centre of mass at goal + offset
    r_dense, r_sparse, info, com = rewards(qpos, cfrc, action, task)
    np.testing.assert_allclose(com, goal + offsets, atol=1e-5)
    l1, l2 = np.abs(offsets).sum(1), np.linalg.norm(offsets, axis=1)
    np.testing.assert_allclose(r_dense, -l1 + 4.0 - ctrl - contact + 0.05, atol=1e-5)
    np.testing.assert_allclose(info["contact_cost"], contact, atol=1e-7)
    np.testing.assert_allclose(info["goal_distance"], l2, atol=1e-5)
    term = np.where(l2 <= 0.8, -l1, -np.abs(goal).sum()) + 4.0  # sparse: L2 threshold, L1 term
    np.testing.assert_allclose(r_sparse, term - ctrl - contact + 0.05, atol=1e-5)


def test_ant_terminates_outside_z_range_and_others_never():
    env, _ = _make("ant_goal_ring")
    init = np.asarray(phys.initial_qpos(env.physics.model))
    for z, done in ((0.55, False), (0.2, False), (1.0, False), (0.19, True), (1.01, True)):
        qpos = init.copy()
        qpos[2] = z
        assert bool(env.terminated(_state(env, qpos, poses=False))) is done
    nan = _state(env, init, poses=False)
    assert bool(env.terminated(nan.replace(qvel=nan.qvel.at[0].set(jnp.nan))))
    assert not bool(_make("ant_goal_ring", terminate=False)[0].terminated(nan))
    wheeled, _ = _make("wheeled_nav")
    assert not bool(wheeled.terminated(_state(wheeled, [0, 0, -5.0, 0, 0, 0])))


def test_block_push_rewards_dense_and_sparse():
    env, dist = _make("block_push")
    task = jax.tree_util.tree_map(lambda x: x[0], dist.fixed_split.train.tasks)
    goal, block = np.asarray(task.goal), int(task.block)
    offsets = np.array([[0.1, 0.05], [0.12, -0.159], [0.12, -0.161], [0.0, 0.5]])  # d 0.11, <0.2, >0.2, 0.5
    qpos = []
    for offset in offsets:
        blocks = np.asarray(task.blocks).copy()
        blocks[block] = goal + offset
        q = np.array(env.start_qpos(task.replace(blocks=jnp.asarray(blocks))))
        q[:3] = [0.3, -0.1, 0.5]  # the wrist anywhere: it does not enter the reward
        qpos.append(q)
    r_dense, r_sparse, info, blocks = _rewards("block_push")(np.stack(qpos), _no_contacts("block_push", 4), jnp.ones(3), task)
    np.testing.assert_allclose(blocks[:, block], goal + offsets, atol=1e-6)
    np.testing.assert_allclose(np.delete(np.asarray(blocks), block, axis=1),
                               np.broadcast_to(np.delete(np.asarray(task.blocks), block, axis=0), (4, 4, 2)), atol=1e-6)
    d = np.linalg.norm(offsets, axis=1)
    np.testing.assert_allclose(r_dense, -5 * d, atol=1e-5)
    np.testing.assert_allclose(info["goal_distance"], d, atol=1e-5)
    np.testing.assert_allclose(r_sparse, np.where(d <= 0.2, -5 * d, -5 * np.linalg.norm(goal)), atol=1e-5)


# ---------------------------------------------------------------- task sets


#: The authors' numbers, read from russellmendonca/maesn_suite@e9444915ef6bb8194bb3228b1c53c1f249305933
#: maesn/rllab/envs/goals/<key>.pkl: the first and last row of each pickle, and the float64 sum of
#: the whole array (so a swapped, reordered or edited file fails).
AUTHORS_ROWS = {
    "wheeled_trainSet": ([-0.4783652312, 1.9419492026], [-0.0419325421, 1.9995603672], 118.15490414116135),
    "wheeled_valSet": ([-1.6093304106, 1.1874576327], [0.5811903407, 1.9136921873], 140.37839613362462),
    "ant_trainSet": ([-1.2380297667, 1.5707585100], [-0.5096890765, 1.9339640755], 119.82780604104529),
    "ant_valSet": ([1.3363083745, 1.4880456741], [-1.6969506091, 1.0584699478], 115.70807150023390),
    # [block, goal x, goal y, start qpos: wrist (3), then the slide offsets (x, y) of obj1..obj5]
    "pusher_trainSet": (
        [3, 0.8289535232, -0.3922607137, 0, 0, 0, 0.3457293032, 0.3284229742, 0.1239644796, -0.1806672227,
         -0.2179453405, 0.1935743027, -0.2446028341, -0.3215975419, -0.4675767577, 0.0810407977],
        [4, 0.8508049673, 0.0620787055, 0, 0, 0, 0.3457293032, 0.3284229742, 0.1239644796, -0.1806672227,
         -0.2179453405, 0.1935743027, -0.2446028341, -0.3215975419, -0.4675767577, 0.0810407977],
        238.78962230894055),
    "pusher_valSet": (
        [3, 0.7990631226, 0.1876663245, 0, 0, 0, 0.4129105393, 0.4795061736, 0.1621220550, -0.0124019581,
         0.0461624534, -0.4203818954, -0.3884362846, 0.1616896598, -0.6220221785, -0.1013118021],
        [1, 0.8595585916, -0.0403182521, 0, 0, 0, 0.3933636237, 0.2032724929, 0.1860597965, -0.0981699181,
         -0.1219608682, -0.3140665004, -0.1945332754, -0.1959406440, -0.4407480001, 0.4796916473],
        238.56405271295645),
}
AUTHORS_KEY = {"wheeled_nav": "wheeled", "ant_goal_ring": "ant", "block_push": "pusher"}


def _authors_file():
    with np.load(model_assets.data_path(maesn.AUTHORS_GOALS_FILE), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_authors_goal_file_holds_their_numbers():
    data = _authors_file()
    assert set(data) == {*AUTHORS_ROWS, "provenance"}
    provenance = str(data["provenance"])
    assert "russellmendonca/maesn_suite @ e9444915ef6bb8194bb3228b1c53c1f249305933" in provenance
    for key, (first, last, total) in AUTHORS_ROWS.items():
        rows = data[key]
        assert rows.dtype == np.float64 and rows.shape == (100, 16 if key.startswith("pusher") else 2)
        assert f"maesn/rllab/envs/goals/{key}.pkl" in provenance
        np.testing.assert_allclose(rows[0], first, rtol=0, atol=1e-9)
        np.testing.assert_allclose(rows[-1], last, rtol=0, atol=1e-9)
        assert float(rows.sum()) == pytest.approx(total, rel=1e-13)
        assert len(np.unique(rows, axis=0)) == 100
    for name in ("wheeled", "ant"):  # generate_goals: radius 2, theta in [0, pi)
        for split in ("trainSet", "valSet"):
            goals = data[f"{name}_{split}"]
            np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 2.0, rtol=1e-12)
            assert (goals[:, 1] >= 0).all()
    for split in ("trainSet", "valSet"):  # save_goal_samples: the wrist starts at 0
        np.testing.assert_array_equal(data[f"pusher_{split}"][:, 3:6], 0.0)


def test_block_offsets_are_the_pushers_bodies():
    model = _make("block_push")[0].physics.model
    ids = [int(model.body(body).id) for body in maesn.BLOCK_BODIES]
    np.testing.assert_array_equal(model.body_pos[ids, :2], maesn.BLOCK_OFFSETS)


@pytest.mark.parametrize("name", FAMILIES)
def test_task_sets_are_the_authors_numbers(name):
    """train = the authors' trainSet, held-out = their valSet, in their order; default and sparse
    variants alike; ``train_tasks`` / ``test_tasks`` keep the first rows."""
    data = _authors_file()
    train_rows, test_rows = (data[f"{AUTHORS_KEY[name]}_{s}"] for s in ("trainSet", "valSet"))
    for variant in ("default", "sparse"):
        _, dist = _make(name, variant)
        assert dist.params.task_set == "authors"
        banks = (dist.fixed_split.train, dist.held_out)
        for bank, rows in zip(banks, (train_rows, test_rows), strict=True):
            tasks = jax.tree_util.tree_map(np.asarray, bank.tasks)
            assert bank.size == 100
            if name == "block_push":
                assert isinstance(tasks, PushTask)
                assert tasks.block.dtype == np.int32 and tasks.goal.dtype == np.float32 and tasks.blocks.dtype == np.float32
                assert tasks.block.shape == (100,) and tasks.goal.shape == (100, 2) and tasks.blocks.shape == (100, 5, 2)
                np.testing.assert_array_equal(tasks.block, rows[:, 0])
                np.testing.assert_array_equal(tasks.goal, rows[:, 1:3].astype(np.float32))
                world = maesn.BLOCK_OFFSETS + rows[:, 6:].reshape(100, 5, 2)
                np.testing.assert_array_equal(tasks.blocks, world.astype(np.float32))
            else:
                assert isinstance(tasks, GoalTask) and tasks.goal.dtype == np.float32 and tasks.goal.shape == (100, 2)
                np.testing.assert_array_equal(tasks.goal, rows.astype(np.float32))
        # The authors' sets are disjoint: no task appears in both (exact comparison; ant train 82 and
        # validation 28 are only ~9e-7 apart in L1, which is still two different goals).
        train, test = (np.concatenate([np.asarray(x, np.float64).reshape(100, -1)
                                       for x in jax.tree_util.tree_leaves(b.tasks)], axis=1) for b in banks)
        assert not (train[:, None] == test[None]).all(-1).any()
    first = {"wheeled_nav": [-0.478365, 1.941949], "ant_goal_ring": [-1.238030, 1.570759],
             "block_push": [0.828954, -0.392261]}[name]
    np.testing.assert_allclose(np.asarray(dist.fixed_split.train.tasks.goal[0]), first, atol=1e-6)
    _, short = jmeta.make(name, physics="mujoco", train_tasks=10, test_tasks=30)
    for bank, full in ((short.fixed_split.train, dist.fixed_split.train), (short.held_out, dist.held_out)):
        size = bank.size
        head = jax.tree_util.tree_map(lambda x, n=size: np.asarray(x)[:n], full.tasks)
        jax.tree_util.tree_map(np.testing.assert_array_equal, jax.tree_util.tree_map(np.asarray, bank.tasks), head)
    assert (short.fixed_split.train.size, short.held_out.size) == (10, 30)


def test_seeded_task_sets_remain_available():
    for name in ("wheeled_nav", "ant_goal_ring", "block_push"):
        _, seeded = _make(name, task_set="seeded")
        _, authors = _make(name)
        assert seeded.fixed_split.train.size == 100 and seeded.held_out.size == 100
        assert not np.allclose(np.asarray(seeded.fixed_split.train.tasks.goal), np.asarray(authors.fixed_split.train.tasks.goal))
    _, small = _make("wheeled_nav", task_set="seeded", train_tasks=40, test_tasks=7, goal_radius=1.5)
    goals = np.asarray(small.fixed_split.train.tasks.goal)
    assert goals.shape == (40, 2) and small.held_out.size == 7
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.5, atol=1e-5)


@pytest.mark.parametrize("task_set", maesn.TASK_SETS)
def test_semicircle_goal_sets_fixed_and_disjoint(task_set):
    for name in ("wheeled_nav", "ant_goal_ring"):
        _, dist = _make(name, task_set=task_set)
        train, test = (np.asarray(b.tasks.goal) for b in (dist.fixed_split.train, dist.held_out))
        assert train.shape == (100, 2) and test.shape == (100, 2)
        for goals in (train, test):
            np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 2.0, atol=1e-5)
            angles = np.arctan2(goals[:, 1], goals[:, 0])
            assert angles.min() >= -1e-6 and angles.max() <= np.pi + 1e-6
            assert angles.min() < 0.2 and angles.max() > np.pi - 0.2  # covers the semicircle
        assert not (train[:, None] == test[None]).all(-1).any()  # disjoint
        # Fixed: a fresh build gives the same sets; sample draws from the split's set.
        _, again = jmeta.make(name, physics="mujoco", reward="sparse", task_set=task_set)
        np.testing.assert_array_equal(np.asarray(again.fixed_split.train.tasks.goal), train)
        drawn = np.asarray(jax.vmap(dist.sample)(jax.random.split(jax.random.key(0), 32)).goal)
        assert (np.abs(drawn[:, None] - train[None]).sum(-1) < 1e-7).any(axis=1).all()
        _, test_dist = _make(name, "sparse", task_set=task_set)
        drawn = np.asarray(jax.jit(test_dist.sample)(jax.random.key(3)).goal)
        assert (np.abs(drawn - test).sum(-1) < 1e-7).any()
        held = evaluation_bank(dist, 30)  # the meta-test protocol uses the held-out goals
        np.testing.assert_array_equal(np.asarray(held.tasks.goal), test[:30])
    wheeled = np.asarray(_make("wheeled_nav", task_set=task_set)[1].fixed_split.train.tasks.goal)
    ant = np.asarray(_make("ant_goal_ring", task_set=task_set)[1].fixed_split.train.tasks.goal)
    assert not np.allclose(wheeled, ant)


@pytest.mark.parametrize("task_set", maesn.TASK_SETS)
def test_block_push_task_sets(task_set):
    _, dist = _make("block_push", task_set=task_set)
    banks = (dist.fixed_split.train, dist.held_out)
    lanes_low = -0.5 + 0.2 * np.arange(5)
    for bank in banks:
        assert isinstance(bank.tasks, PushTask)
        tasks = jax.tree_util.tree_map(np.asarray, bank.tasks)
        assert tasks.block.shape == (100,) and tasks.goal.shape == (100, 2) and tasks.blocks.shape == (100, 5, 2)
        assert tasks.block.dtype == np.int32
        np.testing.assert_array_equal(np.bincount(tasks.block, minlength=5), [20] * 5)
        layouts = np.unique(tasks.blocks.reshape(100, -1), axis=0)
        assert len(layouts) == 20  # 20 layouts, 5 tasks (one per block) each
        for layout in layouts:
            members = np.flatnonzero((tasks.blocks.reshape(100, -1) == layout).all(axis=1))
            assert sorted(tasks.block[members].tolist()) == [0, 1, 2, 3, 4]
        blocks = tasks.blocks
        assert blocks[..., 0].min() >= 0.35 and blocks[..., 0].max() <= 0.65
        lane = np.floor((blocks[..., 1] + 0.5) / 0.2).astype(int)  # each block in its own lane
        assert (np.sort(lane, axis=1) == np.arange(5)).all()
        assert tasks.goal[:, 0].min() >= 0.75 and tasks.goal[:, 0].max() <= 0.95
        own = lane[np.arange(100), tasks.block]  # the goal lies in the lane of the task's block
        assert (tasks.goal[:, 1] >= lanes_low[own] - 1e-6).all()
        assert (tasks.goal[:, 1] <= lanes_low[own] + 0.2 + 1e-6).all()
    train, test = (np.asarray(b.tasks.goal) for b in banks)
    assert not (np.abs(train[:, None] - test[None]).sum(-1) < 1e-6).any()
    train_layouts, test_layouts = (np.unique(np.asarray(b.tasks.blocks).reshape(100, -1), axis=0) for b in banks)
    assert not (train_layouts[:, None] == test_layouts[None]).all(-1).any()  # no layout in both sets
    assert evaluation_bank(dist, 30).size == 30


def test_block_push_reset_places_the_layout():
    env, dist = _make("block_push")
    tasks = jax.tree_util.tree_map(lambda x: x[5:8], dist.held_out.tasks)
    obs, _ = _vreset("block_push")(jax.random.split(jax.random.key(0), 3), tasks)
    assert obs.shape == (3, env.spec.observation_space.shape[0])
    np.testing.assert_allclose(obs[:, :3], 0.0)  # the wrist at the origin, no noise
    np.testing.assert_allclose(obs[:, 3:13].reshape(3, 5, 2), tasks.blocks, atol=1e-6)
    np.testing.assert_allclose(obs[:, 13:], 0.0)


# ---------------------------------------------------------------- physics parity


def _reference(name, model, qpos, qvel, actions, goals, blocks):
    """rllab's step in plain MuJoCo: per env, mj_step, mj_forward (+ mj_rnePostConstraint for the
    contact forces), then MAESN's observation and dense reward in numpy. Returns qpos, obs, cfrc and
    rewards per step."""
    steps, batch = actions.shape[:2]
    out = {k: [] for k in ("qpos", "obs", "cfrc", "reward")}
    datas = []
    for b in range(batch):
        data = mujoco.MjData(model)
        data.qpos[:], data.qvel[:] = qpos[b], qvel[b]
        mujoco.mj_forward(model, data)
        datas.append(data)
    for t in range(steps):
        rows = {k: [] for k in out}
        for b, data in enumerate(datas):
            data.ctrl[:] = actions[t, b]
            mujoco.mj_step(model, data)
            mujoco.mj_forward(model, data)
            mujoco.mj_rnePostConstraint(model, data)
            goal = goals[b]
            if name == "wheeled_nav":
                obs = np.concatenate([data.qpos, data.qvel])
                reward = -np.linalg.norm(data.qpos[:2] - goal) - 0.05 * np.sum(actions[t, b] ** 2)
            elif name == "ant_goal_ring":
                com = data.subtree_com[1]
                obs = np.concatenate([data.qpos, data.qvel, np.clip(data.cfrc_ext, -1, 1).ravel(),
                                      data.xmat[1], com])
                reward = (-np.abs(com[:2] - goal).sum() + 4.0 - 0.005 * np.sum(actions[t, b] ** 2)
                          - 5e-4 * np.sum(np.clip(data.cfrc_ext, -1, 1) ** 2) + 0.05)
            else:
                block_xy = data.geom_xpos[-6:-1, :2]  # rllab reads the block geoms
                obs = np.concatenate([data.qpos[:3], block_xy.ravel(), data.qvel])
                reward = -5.0 * np.linalg.norm(goal - block_xy[blocks[b]])
            rows["qpos"].append(data.qpos.copy())
            rows["obs"].append(obs)
            rows["cfrc"].append(data.cfrc_ext.copy())
            rows["reward"].append(reward)
        for k in out:
            out[k].append(np.stack(rows[k]))
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("name", FAMILIES)
def test_c_path_matches_plain_mujoco_and_maesn_rewards(name):
    env, dist = _make(name)
    model = env.physics.model
    batch, steps = 3, 5
    tasks = jax.tree_util.tree_map(lambda x: x[:batch], dist.fixed_split.train.tasks)
    _, states = _vreset(name)(jax.random.split(jax.random.key(1), batch), tasks)
    qpos, qvel = np.asarray(states.qpos, np.float64), np.asarray(states.qvel, np.float64)
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    actions = np.random.default_rng(2).uniform(lo, hi, (steps, batch, model.nu)).astype(np.float32)
    if name == "block_push":  # start the wrist right behind each task's block and push it
        blocks = np.asarray(tasks.blocks)[np.arange(batch), np.asarray(tasks.block)]
        qpos[:, :2] = blocks - [0.16, 0.0]
        actions[..., 0] = 2.0
        actions[..., 1:] *= 0.1
    goals = np.asarray(tasks.goal, np.float64)
    task_blocks = np.asarray(getattr(tasks, "block", np.zeros(batch, int)))
    ref = _reference(name, model, qpos, qvel, actions, goals, task_blocks)
    step = _vstep(name)
    carried = np.zeros((batch, env.physics.nexact), "<f8")  # the float64 start, warm start 0
    carried[:, : model.nq + model.nv] = np.concatenate([qpos, qvel], axis=1)
    states = states.replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.asarray(qvel, jnp.float32),
                            exact=jnp.asarray(carried.view("<u4").reshape(batch, -1, 2)))
    got = {k: [] for k in ("qpos", "obs", "cfrc", "reward")}
    keys = jax.random.split(jax.random.key(3), batch)
    for t in range(steps):
        out = step(keys, states, jnp.asarray(actions[t]), tasks)
        states = out.state
        for k, v in (("qpos", out.state.qpos), ("obs", out.obs), ("cfrc", out.state.cfrc_ext),
                     ("reward", out.reward)):
            got[k].append(np.asarray(v))
    got = {k: np.stack(v) for k, v in got.items()}
    np.testing.assert_allclose(got["qpos"], ref["qpos"], atol=1e-4)
    np.testing.assert_allclose(got["obs"], ref["obs"], atol=1e-3 if name == "ant_goal_ring" else 1e-4)
    np.testing.assert_allclose(got["reward"], ref["reward"], atol=1e-4)
    if name == "ant_goal_ring":
        np.testing.assert_allclose(got["cfrc"], ref["cfrc"], atol=1e-3, rtol=1e-3)
    if name == "block_push":  # the block really moved under the push
        moved = np.abs(got["qpos"][-1, :, 3:] - qpos[:, 3:]).max()
        assert moved > 1e-3


# MJX compiles are slow on CPU (XLA's default optimisation, 2 loaded cores: wheeled ~27 s, ant ~80 s,
# pusher ~65 s); without backend optimisations (FAST_COMPILE, and the suite's conftest flags) they
# take ~13 s / ~35 s / ~27 s. From the reset the pusher's wrist does not reach a block within these
# 5 steps (the wrist-pushes-a-block parity over 20 steps is measured in docs/envs/block_push.md; the C
# path's push is checked against plain MuJoCo above).
# Tolerances per quantity: (qpos, qvel, reward). The ant's feet touch down within the first steps;
# the contact is solved in float32 by MJX and in float64 by MuJoCo (measured over these 5 steps:
# qpos 1.0e-4, qvel 1.1e-2, reward 1.7e-4, the same with the MJCF's full solver), so its clipped
# contact forces (up to 0.55 apart at touchdown) are compared through the contact cost only.
MJX_CASES = [
    pytest.param("wheeled_nav", (1e-4, 1e-3, 1e-4), id="wheeled_nav"),
    # the two heavier MJX compiles run in the extended tier (the default suite keeps wheeled_nav's)
    pytest.param("ant_goal_ring", (1e-3, 5e-2, 1e-3), id="ant_goal_ring", marks=[pytest.mark.slow, pytest.mark.extended]),
    pytest.param("block_push", (1e-4, 1e-3, 1e-4), id="block_push", marks=[pytest.mark.slow, pytest.mark.extended]),
]


@pytest.mark.parametrize(("name", "tols"), MJX_CASES)
def test_mjx_matches_c_path_over_first_steps(name, tols):
    qpos_tol, qvel_tol, reward_tol = tols
    env_c, dist = _make(name)
    env_m, _ = jmeta.make(name, physics="mjx")
    assert env_m.physics.name == "mjx"
    assert env_m.physics.solver == phys.SolverSettings(4, 8)
    batch, steps = 3, 5
    tasks = jax.tree_util.tree_map(lambda x: x[:batch], dist.fixed_split.train.tasks)
    keys = jax.random.split(jax.random.key(1), batch)
    _, s_c = _vreset(name)(keys, tasks)
    s_m = s_c
    space = env_c.spec.action_space
    actions = jax.random.uniform(jax.random.key(2), (steps, batch, *space.shape), jnp.float32, space.low, space.high)
    step_c, step_m = _vstep(name), jax.jit(jax.vmap(env_m.step), compiler_options=FAST_COMPILE)
    for t in range(steps):
        out_c, out_m = step_c(keys, s_c, actions[t], tasks), step_m(keys, s_m, actions[t], tasks)
        s_c, s_m = out_c.state, out_m.state
        np.testing.assert_allclose(out_m.state.qpos, out_c.state.qpos, atol=qpos_tol)
        np.testing.assert_allclose(out_m.state.qvel, out_c.state.qvel, atol=qvel_tol)
        np.testing.assert_allclose(out_m.reward, out_c.reward, atol=reward_tol)
        for term in ("task_reward", "ctrl_cost", "contact_cost"):
            if term in out_c.info:
                np.testing.assert_allclose(out_m.info[term], out_c.info[term], atol=reward_tol)
        obs_m, obs_c = np.asarray(out_m.obs), np.asarray(out_c.obs)
        if name == "ant_goal_ring":  # all but the clipped contact forces (entries 29-112)
            obs_m, obs_c = (np.concatenate([o[:, :29], o[:, 113:]], axis=1) for o in (obs_m, obs_c))
        np.testing.assert_allclose(obs_m, obs_c, atol=qvel_tol)


def test_params_dataclasses_are_frozen_and_overridable():
    env, _ = _make("ant_goal_ring", "sparse", sparse_radius=0.5, horizon=50)
    assert env.params.sparse_radius == 0.5 and env.spec.horizon == 50
    assert env.params.split == "test" and env.spec.variant == "sparse"
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.params.reward = "dense"
