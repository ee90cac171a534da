"""The contract every registered algorithm meets, on one discrete and one continuous env.

Registering an algorithm (one line in ``jmeta.algos._REGISTRY``) puts it under these checks:
its class declares the protocol's class attributes; ``init`` agrees with ``jax.eval_shape``;
``meta_step`` compiles once and stays compiled across states and keys; its metrics are finite
scalars named ``train/...`` and include the headline metrics; ``evaluate`` returns an
``EvalOut`` [N, K + 1] on its declared axis; a run (on the continuous env) checkpoints, restores and
resumes to exactly the metrics and parameters of an uninterrupted run (2 + 2 iterations equal 4).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
import pytest

from jmeta.algos import AXIS_LABELS, EvalOut, algorithm_class, list_algorithms
from jmeta.config import TrainConfig, preset_config
from jmeta.logging import read_metrics
from jmeta.tasks import sample_tasks
from jmeta.trainer import build, restore_run, train

ENVS = {"discrete": "grid_nav", "continuous": "point_nav"}


def _config(algo: str, env: str, logdir: str, **overrides) -> TrainConfig:
    base = TrainConfig(
        algo=algo, env=env, env_horizon=5, meta_iters=4, meta_batch_size=4, chunk_size=2, eval_every=0,
        eval_tasks=3, checkpoint_every=2, logdir=logdir, progress=False, plots=False, report=False, tensorboard=False,
        algo_config=algorithm_class(algo).TINY,
    )
    return dataclasses.replace(base, **overrides)


@pytest.mark.parametrize("algo", list_algorithms())
def test_class_declares_the_protocol(algo):
    cls = algorithm_class(algo)
    assert cls.name == algo
    assert dataclasses.is_dataclass(cls.Config) and isinstance(cls.TINY, cls.Config)
    assert cls.EVAL_AXIS in AXIS_LABELS
    cls.validate_config(cls.TINY)
    eval_fields = [f.name for f in dataclasses.fields(cls.Config) if f.name.startswith("eval_")]
    assert eval_fields, "meta-test settings are Config fields named eval_*"
    for key, preset in cls.PRESETS.items():
        env, _, variant = key.partition(":")
        config = preset_config(algo, env, variant or None)  # every preset builds a valid config
        config.validate()
        if variant:
            assert config.env_variant == variant
        assert preset.source, f"preset ({algo}, {env}) names its source"


_PAIRS = [(algo, kind) for algo in list_algorithms() for kind in sorted(ENVS)
          if kind in algorithm_class(algo).ACTION_SPACES]


@pytest.mark.parametrize(("algo", "kind"), _PAIRS, ids=[f"{kind}-{algo}" for algo, kind in _PAIRS])
def test_algorithm_contract(algo, kind, tmp_path):
    env_name = ENVS[kind]
    config = _config(algo, env_name, str(tmp_path))
    config.validate()
    _, dist, learner = build(config)
    key = jax.random.key(0)

    # init agrees with its abstract evaluation (what checkpoint restores are built against).
    abstract = jax.eval_shape(learner.init, key)
    state = learner.init(key)
    assert jax.tree_util.tree_structure(abstract) == jax.tree_util.tree_structure(state)
    for a, x in zip(jax.tree_util.tree_leaves(abstract), jax.tree_util.tree_leaves(state), strict=True):
        assert a.shape == x.shape and a.dtype == x.dtype
    assert int(state.iteration) == 0

    def records(run, kind):
        rows = read_metrics(os.path.join(run.run_dir, "metrics.jsonl"), kind)
        return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]

    # meta_step compiles once across states and keys; metrics are finite scalars. On the continuous
    # env through the trainer (its chunk of 2 meta-iterations compiles once for 4 iterations), which
    # the resume check below needs anyway; on the discrete env directly.
    if kind == "continuous":
        full = train(_config(algo, env_name, str(tmp_path), run_name="full"))
        compiles = [r for r in read_metrics(os.path.join(full.run_dir, "metrics.jsonl"), "perf") if "chunk_length" in r]
        assert len(compiles) == 1
        all_metrics = [{k: v for k, v in r.items() if k.startswith("train/")} for r in records(full, "train")]
        trained = full.state
    else:
        traces = []

        def counted(s, k):
            traces.append(1)  # runs only while tracing
            return learner.meta_step(s, k)

        step = jax.jit(counted)
        s1, m1 = step(state, jax.random.key(1))
        trained, m2 = step(s1, jax.random.key(2))
        assert len(traces) == 1
        all_metrics = [{k: float(v) for k, v in m.items()} for m in (m1, m2)]
        assert all(name.startswith("train/") for m in (m1, m2) for name in m)
        assert all(np.shape(v) == () for m in (m1, m2) for v in m.values())
    assert int(trained.iteration) == len(all_metrics) and all_metrics
    for metrics in all_metrics:
        for name, value in metrics.items():
            assert isinstance(value, float) and np.isfinite(value), (name, value)
    assert set(learner.headline()) <= set(all_metrics[0])
    assert learner.env_steps_per_iteration() > 0

    # evaluate: [N, K + 1] on the declared axis.
    tasks = sample_tasks(dist, jax.random.key(3), 3)
    out = jax.jit(learner.evaluate)(trained, tasks, jax.random.key(4))
    assert isinstance(out, EvalOut) and out.axis == learner.EVAL_AXIS
    assert out.returns.ndim == 2 and out.returns.shape[0] == 3 and out.returns.shape[1] >= 1
    assert np.all(np.isfinite(np.asarray(out.returns)))

    assert TrainConfig.from_dict(config.to_dict()) == config  # config.json round-trips through the registry
    if kind != "continuous":
        return  # the trainer-level checks below are the same for every env: one env keeps the suite's budget

    # Checkpoint round trip and resume equality: 2 + 2 iterations equal 4.
    part = train(_config(algo, env_name, str(tmp_path), run_name="part"), stop_after=2)
    assert part.interrupted and part.iteration == 2
    _, _, _, restored = restore_run(part.run_dir)
    for x, y in zip(jax.tree_util.tree_leaves(part.state), jax.tree_util.tree_leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    resumed = train(_config(algo, env_name, str(tmp_path), run_name="part", resume=part.run_dir))
    assert resumed.iteration == 4 and not resumed.interrupted

    assert [r["iteration"] for r in records(resumed, "train")] == [1, 2, 3, 4]
    assert records(full, "train") == records(resumed, "train")  # bit-identical on CPU
    assert records(full, "eval") == records(resumed, "eval")
    for x, y in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("algo", ["maml", "maesn"])  # maesn samples rows of its training set itself
def test_task_sharding_is_the_one_place_a_mesh_enters(algo):
    """A task-axis sharding given to ``build`` constrains every sampled task batch; on one device the
    metrics equal the unsharded run's."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    config = _config(algo, "point_nav", "unused")
    mesh = Mesh(np.array(jax.devices()[:1]), ("tasks",))
    _, _, plain = build(config)
    _, _, sharded = build(config, task_sharding=NamedSharding(mesh, PartitionSpec("tasks")))
    assert sharded.task_sharding is not None
    tasks = jax.jit(lambda k: sharded.sample_tasks(k))(jax.random.key(5))
    assert jax.tree_util.tree_leaves(tasks)[0].shape[0] == config.meta_batch_size
    state = plain.init(jax.random.key(0))
    _, m_plain = jax.jit(plain.meta_step)(state, jax.random.key(1))
    _, m_sharded = jax.jit(sharded.meta_step)(state, jax.random.key(1))
    for name in m_plain:
        np.testing.assert_allclose(float(m_plain[name]), float(m_sharded[name]), rtol=1e-6, err_msg=name)


#: One algorithm per implementation of ``viewer_rollouts`` runs in the default tier (the gradient
#: family's skeleton is checked through the report test's MAML run); the rest in ``extended``.
_VIEWER_DEFAULT = {"rl2", "dream", "pearl", "varibad"}


@pytest.mark.parametrize("algo", [pytest.param(a, marks=() if a in _VIEWER_DEFAULT else pytest.mark.extended)
                                  for a in list_algorithms()])
def test_viewer_rollouts_give_one_episode_per_adaptation_point(algo):
    """What jmeta.visualize draws: leaves [N, P, T, ...] with the env states, P labels."""
    kind = "continuous" if "continuous" in algorithm_class(algo).ACTION_SPACES else "discrete"
    env_name = ENVS[kind]
    config = _config(algo, env_name, "unused")
    _, _, learner = build(config)
    state = learner.init(jax.random.key(0))
    tasks = sample_tasks(learner.task_dist, jax.random.key(1), 2)
    rollouts = jax.jit(learner.viewer_rollouts)(state, tasks, jax.random.key(2))
    points = len(rollouts.labels)
    evaluated = jax.eval_shape(learner.evaluate, state, tasks, jax.random.key(2)).returns.shape[1]
    assert points == evaluated, "one episode per point of the meta-test's adaptation axis"
    assert all(isinstance(label, str) and label for label in rollouts.labels)
    assert rollouts.traj.mask.shape == (2, points, 5)
    position = rollouts.traj.extras["env_state"].position
    assert position.shape == (2, points, 5, 2)
    assert bool((rollouts.traj.mask[:, :, 0] == 1).all())
