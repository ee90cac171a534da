"""Frames per second of the JAX quad renderer on the visual_nav scene (47 quads, 80x60).

    python benchmarks/render_throughput.py --batch 1 64 256 1024 [--out benchmarks/results/render.json]

Each batch renders the visual_nav scene from random poses with ``jax.jit(jax.vmap(render))``;
the first call (compile) is timed separately and excluded from the rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from jmeta import _xla_flags  # noqa: E402

_xla_flags.configure_cpu_flags()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import write_result  # noqa: E402

from jmeta.envs.pixel import render as rd  # noqa: E402
from jmeta.envs.pixel import visual_nav as vn  # noqa: E402


def measure(batch: int, seconds: float) -> dict[str, float]:
    params = vn.VisualNavParams()
    key = jax.random.key(batch)
    kp, kh = jax.random.split(key)
    positions = jax.random.uniform(kp, (batch, 2), jnp.float32, jnp.array([0.5, 0.5]), jnp.array([9.5, 6.0]))
    headings = jax.random.uniform(kh, (batch,), jnp.float32, -jnp.pi, jnp.pi)
    state = vn.VisualNavState(
        position=jnp.zeros(2), heading=jnp.float32(0), time=jnp.int32(0), instruction=jnp.int32(0),
        object_angles=jnp.zeros(6),
    )
    scene = vn.build_scene(state, vn.VisualNavTask(color=jnp.int32(0)))
    fn = jax.jit(jax.vmap(lambda p, h: rd.render(scene, p, h, params.camera)))
    start = time.perf_counter()
    jax.block_until_ready(fn(positions, headings))
    compile_s = time.perf_counter() - start
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        jax.block_until_ready(fn(positions, headings))
        calls += 1
    elapsed = time.perf_counter() - start
    return {"batch": batch, "frames_per_s": calls * batch / elapsed, "compile_s": compile_s, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = [measure(b, args.seconds) for b in args.batch]
    write_result(args.out, {"benchmark": "render_throughput", "scene": "visual_nav (47 quads, 80x60)", "results": rows})


if __name__ == "__main__":
    main()
