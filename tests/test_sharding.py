"""The task axis over a device mesh (jmeta.sharding, ``--devices``).

The multi-device checks run in a fresh interpreter with 4 virtual CPU devices
(``--xla_force_host_platform_device_count=4`` must be set before JAX starts):

- MAML, RL², PEARL and DREAM trained with their tasks split over 4 devices log the same train and
  eval metrics as on one device, to a relative 1e-4 (measured: at most 3.6e-5, from the reordered
  sums of the cross-device means). PPO's minibatch shuffle permutes within each device's shard, so
  the one-device reference of RL² and DREAM is traced with the same 4 shuffle groups.
- In RL²'s compiled meta-iteration only gradients and scalar means cross devices (the global
  shuffle moved the whole trial batch).
- Parameters are replicated, task batches and PEARL's per-task replay split; two seeds
  (``--num-seeds 2``) on 4 devices train what they train on one.
- Bad settings are refused in one line.

These are in the ``extended`` tier: the 4-device interpreter compiles about forty programs
(130 s on 2 cores), which the default tier (at its 20-minute budget) cannot afford; the
one-device checks below are in the default tier.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jax
import pytest

from jmeta import sharding
from jmeta.config import TrainConfig
from jmeta.errors import ConfigError

_SCRIPT = textwrap.dedent(r'''
    import os, sys, json
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    import contextlib, dataclasses, re, jax
    from jmeta import sharding
    from jmeta.algos import algorithm_class
    from jmeta.config import TrainConfig
    from jmeta.errors import ConfigError
    from jmeta.logging import read_metrics
    from jmeta.trainer import build, train

    logdir = sys.argv[1]
    report = {"devices": len(jax.devices())}

    def config(algo, env, devices, **kw):
        tiny = algorithm_class(algo).TINY
        if algo == "pearl":  # 8 training tasks: one replay buffer each, 2 per device
            tiny = dataclasses.replace(tiny, num_train_tasks=8)
        base = TrainConfig(algo=algo, env=env, env_horizon=5, meta_iters=2, meta_batch_size=4, chunk_size=1,
                           eval_every=1, eval_tasks=4, logdir=logdir, run_name=f"{algo}{devices}", progress=False,
                           plots=False, report=False, tensorboard=False, devices=devices, algo_config=tiny)
        return dataclasses.replace(base, **kw)

    # PPO's minibatch shuffle permutes within each device's shard, so the shuffle depends on the
    # shard count: the one-device reference of the PPO learners is traced with the same 4 groups.
    four_groups = jax.sharding.AbstractMesh((4,), (sharding.TASK_AXIS,))
    for algo, env in [("maml", "point_nav"), ("rl2", "grid_nav"), ("pearl", "point_nav"), ("dream", "grid_nav")]:
        runs = {}
        for devices in (1, 4):
            same_shuffle = jax.sharding.use_abstract_mesh(four_groups) if devices == 1 and algo in ("rl2", "dream") \
                else contextlib.nullcontext()
            with same_shuffle:
                result = train(config(algo, env, devices))
            runs[devices] = [{k: v for k, v in r.items() if k.startswith(("train/", "eval/"))}
                             for r in read_metrics(os.path.join(result.run_dir, "metrics.jsonl"))
                             if r["kind"] in ("train", "eval")]
            if devices == 4:
                if algo == "pearl":  # the per-task replay is split over the devices, not replicated
                    from jmeta.rl.replay import ReplayBuffer
                    buffers = [x for x in jax.tree_util.tree_leaves(result.state, is_leaf=lambda x: isinstance(x, ReplayBuffer))
                               if isinstance(x, ReplayBuffer)]
                    report["pearl_buffers"] = [[len(b.size.sharding.device_set), b.size.sharding.is_fully_replicated,
                                                jax.tree_util.tree_leaves(b.data)[0].sharding.is_fully_replicated,
                                                b.num_buffers] for b in buffers]
                leaf = jax.tree_util.tree_leaves(result.state.params)[0]
                report[algo + "_params_devices"] = len(leaf.sharding.device_set)
                report[algo + "_params_replicated"] = bool(leaf.sharding.is_fully_replicated)
        report[algo] = runs
    # Every other registered algorithm: one meta-iteration on 4 devices against one device.
    from jmeta.algos import list_algorithms
    recurrent_envs = {"erl2": "grid_nav", "varibad": "grid_nav", "task_inference": "grid_nav"}
    mesh = sharding.task_mesh(4)
    for algo in sorted(set(list_algorithms()) - {"maml", "rl2", "pearl", "dream"}):
        cfg = config(algo, recurrent_envs.get(algo, "point_nav"), 4)
        metrics = {}
        for devices in (1, 4):
            run_mesh = mesh if devices == 4 else None
            _, _, learner = build(cfg, task_sharding=sharding.task_sharding(run_mesh))
            state = sharding.place_state(learner.init(jax.random.key(0)), run_mesh)
            context = sharding.use_mesh(run_mesh) if devices == 4 else jax.sharding.use_abstract_mesh(four_groups)
            with context:
                _, out = jax.jit(learner.meta_step)(state, jax.random.key(1))
            metrics[devices] = {k: float(v) for k, v in out.items()}
        report.setdefault("one_step", {})[algo] = metrics
    # Many seeds on a mesh: the seeds' stacked states replicated, each seed's tasks split.
    seeds_runs = {}
    for devices in (1, 4):
        result = train(config("maml", "point_nav", devices, num_seeds=2, run_name=f"seeds{devices}"))
        seeds_runs[devices] = [{k: v for k, v in r.items() if k.startswith(("train/", "eval/"))}
                               for r in read_metrics(os.path.join(result.run_dir, "seeds", "seed_1", "metrics.jsonl"))]
    report["maml_seeds"] = seeds_runs
    mesh = sharding.task_mesh(4)
    _, _, learner = build(config("maml", "point_nav", 4), task_sharding=sharding.task_sharding(mesh))
    tasks = jax.jit(learner.sample_tasks)(jax.random.key(0))
    leaf = jax.tree_util.tree_leaves(tasks)[0]
    report["task_batch_devices"] = len(leaf.sharding.device_set)
    report["task_batch_replicated"] = bool(leaf.sharding.is_fully_replicated)
    # What crosses devices in RL²'s meta-iteration: the within-shard shuffle (the trainer's mesh
    # context) against a global one (no context): elements moved by collectives, and the parameters'.
    rl2_config = dataclasses.replace(config("rl2", "grid_nav", 4, meta_batch_size=16, env_horizon=20),
                                     algo_config=dataclasses.replace(algorithm_class("rl2").TINY, num_minibatches=2))
    _, _, rl2 = build(rl2_config, task_sharding=sharding.task_sharding(mesh))
    rl2_state = sharding.place_state(rl2.init(jax.random.key(0)), mesh)

    def collective_elements(context):
        with context:
            text = jax.jit(rl2.meta_step).lower(rl2_state, jax.random.key(1)).compile().as_text()
        total = 0
        for line in text.splitlines():
            match = re.search(r"= (.*?) (all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)(-start)?\(", line)
            if match:
                for dims in re.findall(r"[a-z]+[0-9]*\[([0-9,]*)\]", match.group(1)):
                    size = 1
                    for d in filter(None, dims.split(",")):
                        size *= int(d)
                    total += size
        return total

    report["rl2_collective_elements"] = {"within_shard": collective_elements(sharding.use_mesh(mesh)),
                                         "global": collective_elements(contextlib.nullcontext())}
    report["rl2_param_elements"] = sum(x.size for x in jax.tree_util.tree_leaves(rl2_state.params))
    errors = []
    for bad in (config("maml", "point_nav", 4, meta_batch_size=6), config("maml", "cheetah_vel", 4, run_name="c")):
        try:
            train(bad)
        except ConfigError as exc:
            errors.append(str(exc))
    report["errors"] = errors
    print("REPORT " + json.dumps(report))
''')


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("sharded")
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(logdir)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.mark.extended
@pytest.mark.parametrize("algo", ["maml", "rl2", "pearl", "dream"])
def test_four_devices_give_the_single_device_metrics(four_devices, algo):
    assert four_devices["devices"] == 4
    one, four = four_devices[algo]["1"], four_devices[algo]["4"]
    assert len(one) == len(four) == 5  # evaluations at 0, 1, 2 and two train records
    for a, b in zip(one, four, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-6), name
    assert four_devices[f"{algo}_params_devices"] == 4 and four_devices[f"{algo}_params_replicated"]


_OTHERS = ["cavia", "emaml", "erl2", "fomaml", "maesn", "metasgd", "promp", "reptile", "task_inference", "varibad"]


@pytest.mark.extended
@pytest.mark.parametrize("algo", _OTHERS)
def test_every_other_algorithm_runs_split_over_four_devices(four_devices, algo):
    """No algorithm module knows about the mesh: each one's meta-iteration, split over 4 devices,
    gives its one-device metrics."""
    one, four = four_devices["one_step"][algo]["1"], four_devices["one_step"][algo]["4"]
    assert one.keys() == four.keys()
    for name in one:
        assert four[name] == pytest.approx(one[name], rel=1e-4, abs=1e-5), name


def test_the_split_check_covers_every_registered_algorithm():
    from jmeta.algos import list_algorithms

    assert sorted(["maml", "rl2", "pearl", "dream", *_OTHERS]) == list_algorithms()


@pytest.mark.extended
def test_per_task_buffers_are_split_over_the_devices(four_devices):
    buffers = four_devices["pearl_buffers"]
    assert buffers  # PEARL keeps its per-task replay in the state
    for devices, index_replicated, data_replicated, count in buffers:
        assert devices == 4 and count % 4 == 0
        assert not index_replicated and not data_replicated


@pytest.mark.extended
def test_many_seeds_on_four_devices_give_the_single_device_metrics(four_devices):
    one, four = four_devices["maml_seeds"]["1"], four_devices["maml_seeds"]["4"]
    assert len(one) == len(four) == 5
    for a, b in zip(one, four, strict=True):
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-6), name


@pytest.mark.extended
def test_ppo_minibatches_are_gathered_within_each_shard(four_devices):
    """With the global shuffle, RL²'s whole trial batch crosses devices (and every device then runs
    the whole PPO update); within shards, only gradients and scalar means do."""
    moved, params = four_devices["rl2_collective_elements"], four_devices["rl2_param_elements"]
    assert moved["within_shard"] <= params + 64, moved
    assert moved["global"] > 2 * moved["within_shard"], moved


@pytest.mark.extended
def test_task_batches_are_split_and_bad_settings_refused(four_devices):
    assert four_devices["task_batch_devices"] == 4 and not four_devices["task_batch_replicated"]
    size_error, physics_error = four_devices["errors"]
    assert size_error == "meta_batch_size: must be a multiple of the 4 devices of the task axis (--devices 4), got 6"
    assert physics_error.startswith("devices: the MuJoCo C engine path")


def test_one_device_builds_no_mesh_and_bad_counts_are_refused(tmp_path):
    available = len(jax.devices())
    assert sharding.device_count(None) == available
    if available == 1:
        assert sharding.task_mesh() is None and sharding.task_sharding(None) is None
    with pytest.raises(ConfigError, match=rf"^devices: must be in \[1, {available}\]"):
        sharding.task_mesh(available + 1)
    with pytest.raises(ConfigError, match="devices: must be >= 1"):
        TrainConfig(devices=0).validate()
    sharding.check_divisible("meta_batch_size", 7, None)  # no mesh: any size
