"""Env steps per second of jmeta's environments: the MuJoCo envs on each physics path, side by
side with raw ``vmap(mjx.step)``, ``mujoco.rollout`` on all cores and gymnasium's single-env loop;
the pure-JAX envs (navigation, mazes, the rendered visual envs) on the default JAX backend.

    python benchmarks/env_throughput.py --out benchmarks/results/env_throughput_cpu.json
    python benchmarks/env_throughput.py --batch-sizes 1024 4096 8192 --paths mjx --out ...gpu.json
    python benchmarks/env_throughput.py --envs maze2d maze3d visual_nav --batch-sizes 64 1024 --out ...

What each row times (after compiling; compile seconds are reported separately):
* ``jmeta/<path>``: one jitted call = reset + ``lax.scan`` of ``--steps`` env steps with uniform
  random actions drawn inside, vmapped over the batch (observations, rewards, termination included;
  the call returns the sum of rewards and observations so that nothing is compiled away).
  ``<path>`` is the physics path of a MuJoCo env, or ``jax`` for a pure-JAX env. For envs whose
  observation is an image every env step renders one frame, so env steps/s = frames/s (the row
  also gives ``frames_per_s`` and the frame shape).
* ``raw_mjx``: ``vmap`` of ``frame_skip`` x ``mjx.step`` per env step on the same MJCF with the envs'
  MJX solver settings (no observation, reward or contact-force code).
* ``mujoco_rollout``: ``mujoco.rollout`` over the batch with ``nthread = os.cpu_count()``,
  ``frame_skip`` physics steps per env step (no observation or reward code).
* ``gymnasium``: HalfCheetah-v5 / Ant-v5 on the same MJCF, one env, a Python loop of ``env.step``.
Throughput is env steps/s (one env step = ``frame_skip`` physics steps).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from jmeta._xla_flags import configure_cpu_flags, enable_compilation_cache  # noqa: E402

configure_cpu_flags()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import jmeta  # noqa: E402
from jmeta.envs.mujoco import physics as phys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_result  # noqa: E402

MUJOCO_DEFAULT_ENVS = ["cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal"]
GYM_IDS = {"half_cheetah": "HalfCheetah-v5", "ant": "Ant-v5"}


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def is_mujoco(name: str) -> bool:
    """True when ``name`` is a MuJoCo env (its params choose a physics path)."""
    from jmeta.envs.registry import variant_params

    return hasattr(variant_params(name), "physics")


def time_jmeta(name: str, path: str | None, batch: int, steps: int, repeats: int) -> dict:
    """``path``: the physics path of a MuJoCo env, None for a pure-JAX env."""
    overrides = {"physics": path} if path else {}
    env, dist = jmeta.make(name, horizon=steps, **overrides)
    space = env.spec.action_space

    def run(key):
        k_task, k_reset, k_act = jax.random.split(key, 3)
        tasks = jax.vmap(dist.sample)(jax.random.split(k_task, batch))
        _, states = jax.vmap(env.reset)(jax.random.split(k_reset, batch), tasks)

        def body(carry, k):
            k_a, k_s = jax.random.split(k)
            actions = jax.vmap(space.sample)(jax.random.split(k_a, batch))
            out = jax.vmap(env.step)(jax.random.split(k_s, batch), carry, actions, tasks)
            # The observation feeds the output, so XLA cannot drop it (e.g. the rendering of pixel envs).
            return out.state, out.reward.sum() + out.obs.astype(jnp.float32).sum()

        _, rewards = jax.lax.scan(body, states, jax.random.split(k_act, steps))
        return rewards.sum()

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.key(1)))  # warm-up (thread pools, buffers)
    seconds = _best_of(lambda: jax.block_until_ready(compiled(jax.random.key(2))), repeats)
    result = {"compile_s": compile_s, "seconds": seconds, "env_steps_per_s": batch * steps / seconds}
    obs_shape = getattr(env, "image_shape", None)
    if obs_shape is not None:  # pixel envs render one frame per env step
        result.update(frames_per_s=batch * steps / seconds, frame_shape=list(obs_shape))
    return result


def time_raw_mjx(model_or_xml, batch: int, steps: int, frame_skip: int, repeats: int,
                 iterations: int, ls_iterations: int) -> dict:
    import copy

    from jmeta.envs.mujoco.physics import _mjx

    mjx = _mjx()

    model = copy.copy(phys.load_model(model_or_xml) if isinstance(model_or_xml, str) else model_or_xml)
    model.opt.iterations, model.opt.ls_iterations = iterations, ls_iterations  # as the envs' MJX path
    mjx_model = mjx.put_model(model)
    qpos0 = jnp.asarray(model.qpos0, jnp.float32)

    def run(key):
        data = jax.vmap(lambda _: mjx.make_data(mjx_model).replace(qpos=qpos0))(jnp.arange(batch))

        def body(d, k):
            ctrl = jax.random.uniform(k, (batch, model.nu), minval=-1.0, maxval=1.0)
            d = d.replace(ctrl=ctrl)
            d = jax.lax.fori_loop(0, frame_skip, lambda _, x: jax.vmap(mjx.step, in_axes=(None, 0))(mjx_model, x), d)
            return d, None

        data, _ = jax.lax.scan(body, data, jax.random.split(key, steps))
        return data.qpos.sum()

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.key(1)))
    seconds = _best_of(lambda: jax.block_until_ready(compiled(jax.random.key(2))), repeats)
    return {"compile_s": compile_s, "seconds": seconds, "env_steps_per_s": batch * steps / seconds}


def time_mujoco_rollout(model_or_xml, batch: int, steps: int, frame_skip: int, repeats: int) -> dict:
    from mujoco import rollout

    model = phys.load_model(model_or_xml) if isinstance(model_or_xml, str) else model_or_xml
    nthread = os.cpu_count() or 1
    datas = [mujoco.MjData(model) for _ in range(nthread)]
    state0 = np.zeros((batch, mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)))
    mujoco.mj_getState(model, datas[0], state0[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    state0[:] = state0[0]
    control = np.random.default_rng(0).uniform(-1, 1, (batch, steps * frame_skip, model.nu))
    runner = rollout.Rollout(nthread=nthread)
    runner.rollout(model, datas, state0, control)
    seconds = _best_of(lambda: runner.rollout(model, datas, state0, control), repeats)
    return {"nthread": nthread, "seconds": seconds, "env_steps_per_s": batch * steps / seconds}


def time_gymnasium(robot: str, steps: int) -> dict:
    import gymnasium

    env = gymnasium.make(GYM_IDS[robot], xml_file=phys.model_path(f"{robot}.xml"))
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, env.action_space.shape[0]))
    t0 = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - t0
    env.close()
    return {"seconds": seconds, "env_steps_per_s": steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=MUJOCO_DEFAULT_ENVS, choices=jmeta.list_envs(),
                        help="registered env names (default: the five MuJoCo locomotion families)")
    parser.add_argument("--paths", nargs="+", default=["mujoco", "mjx"], choices=["mujoco", "mjx"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--mjx-batch-sizes", type=int, nargs="+", default=None,
                        help="batch sizes for the MJX rows (default: --batch-sizes)")
    parser.add_argument("--steps", type=int, default=100, help="env steps per timed call")
    parser.add_argument("--mjx-steps", type=int, default=None, help="env steps per timed MJX call (default: --steps)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gym-steps", type=int, default=2000)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-rollout-baseline", action="store_true",
                        help="skip mujoco.rollout (long on the host CPU at accelerator batch sizes)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    enable_compilation_cache()

    mjx_batches = args.mjx_batch_sizes or args.batch_sizes
    mjx_steps = args.mjx_steps or args.steps
    rows, baselines = [], {}

    def save(quiet: bool = True) -> None:
        """Writes what has been measured so far (a run cut short by a time limit keeps its rows)."""
        write_result(args.out, {
            "benchmark": "env_throughput",
            "config": {"steps": args.steps, "mjx_steps": mjx_steps, "repeats": args.repeats,
                       "batch_sizes": args.batch_sizes, "mjx_batch_sizes": mjx_batches, "paths": args.paths,
                       "gym_steps": args.gym_steps},
            "results": rows,
            "baselines": baselines,
        }, quiet=quiet)

    for name in args.envs:
        env, _ = jmeta.make(name)
        if not is_mujoco(name):
            for batch in args.batch_sizes:
                result = time_jmeta(name, None, batch, args.steps, args.repeats)
                rows.append({"env": name, "runner": "jmeta/jax", "batch": batch, **result})
                print(rows[-1], flush=True)
                save()
            continue
        robot = getattr(env.params, "robot", name)
        frame_skip = env.physics.frame_skip
        model = env.physics.model
        for path in args.paths:
            for batch in mjx_batches if path == "mjx" else args.batch_sizes:
                steps = mjx_steps if path == "mjx" else args.steps
                result = time_jmeta(name, path, batch, steps, args.repeats)
                rows.append({"env": name, "robot": robot, "runner": f"jmeta/{path}", "batch": batch, **result})
                print(rows[-1], flush=True)
                save()
        if args.no_baselines or robot in baselines:
            continue
        base = []
        for batch in [] if args.no_rollout_baseline else args.batch_sizes:
            base.append({"runner": "mujoco_rollout", "batch": batch,
                         **time_mujoco_rollout(model, batch, args.steps, frame_skip, args.repeats)})
            print(robot, base[-1], flush=True)
            baselines[robot] = base
            save()
        if "mjx" in args.paths:
            for batch in mjx_batches:
                base.append({"runner": "raw_mjx", "batch": batch,
                             **time_raw_mjx(model, batch, mjx_steps, frame_skip, args.repeats,
                                           env.params.mjx_iterations, env.params.mjx_ls_iterations)})
                print(robot, base[-1], flush=True)
                baselines[robot] = base
                save()
        if jax.default_backend() == "cpu" and robot in GYM_IDS:
            base.append({"runner": "gymnasium", "batch": 1, **time_gymnasium(robot, args.gym_steps)})
            print(robot, base[-1], flush=True)
            baselines[robot] = base
            save()

    save(quiet=False)


if __name__ == "__main__":
    main()
