"""Benchmark: compile time, meta-iterations/s and env steps/s of one compiled meta-iteration.

    python benchmarks/meta_step.py --algo maml --env point_nav --meta-batch-sizes 10 20 40 \
        --set episodes_per_task=20 --out benchmarks/results/meta_step_cpu.json
    python benchmarks/meta_step.py --algo rl2 --env grid_nav --meta-batch-sizes 16 64 256 \
        --set hidden_size=128 --out benchmarks/results/meta_step_rl2_grid_nav_cpu.json

Any registered algorithm: its config starts from its defaults (or the (algo, env) preset with
``--preset``) and ``--set FIELD=VALUE`` overrides fields of the algorithm's Config. Each
configuration jits one whole meta-iteration (task sampling, rollouts, adaptation, update),
measures its compile time (AOT ``lower().compile()``), then times ``--iters`` compiled calls after
one warm-up call. Env steps per iteration count every sampled step.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jmeta._xla_flags import configure_cpu_flags  # noqa: E402

configure_cpu_flags()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
import typing  # noqa: E402

import jax  # noqa: E402
from _common import write_result  # noqa: E402

from jmeta.algos import algorithm_class, list_algorithms  # noqa: E402
from jmeta.config import TrainConfig, preset_config  # noqa: E402
from jmeta.trainer import build  # noqa: E402


def bench_one(config: TrainConfig, iters: int) -> dict:
    config.validate()
    _, _, algo = build(config)
    state = algo.init(jax.random.key(0))
    step = jax.jit(algo.meta_step)
    t0 = time.perf_counter()
    compiled = step.lower(state, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - t0
    state, metrics = compiled(state, jax.random.key(1))  # warm-up
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for i in range(iters):
        state, metrics = compiled(state, jax.random.key(2 + i))
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - t0
    steps = algo.env_steps_per_iteration()
    return {
        "meta_batch_size": config.meta_batch_size,
        "env_steps_per_iteration": steps,
        "compile_s": round(compile_s, 3),
        "seconds_per_iteration": round(elapsed / iters, 4),
        "meta_iters_per_s": round(iters / elapsed, 4),
        "env_steps_per_s": round(steps * iters / elapsed, 1),
    }


def parse_overrides(config_cls: type, items: list[str]) -> dict:
    """``["field=value", ...]`` -> typed overrides of ``config_cls``'s fields."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for item in items:
        name, _, raw = item.partition("=")
        if name not in hints:
            raise SystemExit(f"--set: {config_cls.__name__} has no field {name!r}; fields: {sorted(hints)}")
        default = getattr(config_cls(), name)
        if isinstance(default, bool):
            out[name] = raw.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):
            out[name] = tuple(int(x) for x in raw.split(",") if x)
        elif default is None:
            out[name] = int(raw) if raw.lstrip("-").isdigit() else raw
        else:
            out[name] = type(default)(raw)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=list_algorithms(), default="maml")
    parser.add_argument("--env", default="point_nav")
    parser.add_argument("--env-variant", default="default")
    parser.add_argument("--meta-batch-sizes", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--preset", action="store_true", help="start from the (algo, env) preset")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="algorithm config overrides")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--out", default=None, help="JSON output path")
    args = parser.parse_args()
    cls = algorithm_class(args.algo)
    base = preset_config(args.algo, args.env) if args.preset else TrainConfig(algo=args.algo, env=args.env)
    algo_config = dataclasses.replace(base.algo_config, **parse_overrides(cls.Config, args.set))
    results = []

    def save(quiet: bool = True) -> None:  # after every size: a run cut short keeps what it measured
        write_result(args.out, {"benchmark": "meta_step", "env": args.env, "env_variant": args.env_variant,
                                "algo": args.algo, "config": dataclasses.asdict(algo_config),
                                "timed_iters": args.iters, "results": results}, quiet=quiet)

    for n in args.meta_batch_sizes:
        config = dataclasses.replace(base, env_variant=args.env_variant, meta_batch_size=n, algo_config=algo_config)
        results.append(bench_one(config, args.iters))
        print(results[-1], file=sys.stderr, flush=True)
        save()
    save(quiet=False)


if __name__ == "__main__":
    main()
