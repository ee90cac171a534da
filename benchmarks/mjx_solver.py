"""Effect of MJX solver settings on speed and on the dynamics (against MuJoCo's C engine).

    python benchmarks/mjx_solver.py --out benchmarks/results/mjx_solver_cpu.json

For each robot and each (iterations, ls_iterations) setting: MJX env steps/s at ``--batch``
(one env step = 5 physics steps), the largest |qpos| difference to the C engine after 1, 2 and
5 env steps from the same random starts and actions, and over a ``--horizon``-step random-action
rollout the mean torso height and mean x velocity (MJX and C side by side).
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
import numpy as np  # noqa: E402

from jmeta.envs.mujoco import physics as phys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_result  # noqa: E402

SETTINGS = [(0, 0), (4, 8), (1, 4)]  # 0 = the MJCF's own value (MuJoCo default 100 / 50)


def _trajectory(step, qpos, qvel, actions):
    q, v = jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32)
    qs = []
    for a in actions:
        out = step(q, v, jnp.asarray(a, jnp.float32))
        q, v = out.qpos, out.qvel
        qs.append(np.asarray(q))
    return np.stack(qs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robots", nargs="+", default=["half_cheetah", "ant"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    enable_compilation_cache()

    results = []
    for robot in args.robots:
        model = phys.load_model(f"{robot}.xml")
        contact = robot == "ant"
        rng = np.random.default_rng(0)
        qpos = np.tile(model.qpos0, (args.batch, 1)) + rng.uniform(-0.1, 0.1, (args.batch, model.nq))
        qvel = 0.1 * rng.standard_normal((args.batch, model.nv))
        actions = rng.uniform(-1, 1, (args.horizon, args.batch, model.nu))
        c_step = jax.jit(jax.vmap(phys.MujocoPhysics(model, 5, contact).step))
        c_q = _trajectory(c_step, qpos, qvel, actions)
        z_index = 1 if robot == "half_cheetah" else 2
        c_stats = {"mean_height": float(c_q[..., z_index].mean()),
                   "mean_x_velocity": float((c_q[-1, :, 0] - qpos[:, 0]).mean() / (0.05 * args.horizon))}
        for iterations, ls_iterations in SETTINGS:
            solver = phys.SolverSettings(iterations or None, ls_iterations or None)
            physics = phys.MjxPhysics(model, 5, contact, solver)
            step = jax.jit(jax.vmap(physics.step))
            t0 = time.perf_counter()
            jax.block_until_ready(step(jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32),
                                       jnp.asarray(actions[0], jnp.float32)))
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            m_q = _trajectory(step, qpos, qvel, actions)
            seconds = time.perf_counter() - t0
            diff = np.abs(m_q - c_q).max(axis=(1, 2))
            row = {
                "robot": robot,
                "iterations": int(physics.mjx_model.opt.iterations),
                "ls_iterations": int(physics.mjx_model.opt.ls_iterations),
                "compile_s": compile_s,
                "env_steps_per_s": args.batch * args.horizon / seconds,
                "max_qpos_diff_after": {str(k): float(diff[k - 1]) for k in (1, 2, 5)},
                "mjx_mean_height": float(m_q[..., z_index].mean()),
                "mjx_mean_x_velocity": float((m_q[-1, :, 0] - qpos[:, 0]).mean() / (0.05 * args.horizon)),
                "c_mean_height": c_stats["mean_height"],
                "c_mean_x_velocity": c_stats["mean_x_velocity"],
                "finite": bool(np.isfinite(m_q).all()),
            }
            results.append(row)
            print(row, flush=True)

    write_result(args.out, {"benchmark": "mjx_solver", "config": vars(args), "results": results})


if __name__ == "__main__":
    main()
