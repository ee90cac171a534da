"""Benchmark: N seeds as one ``--num-seeds N`` run against N sequential one-seed runs.

    python benchmarks/seeds.py --algo maml --env point_nav --num-seeds 4 --meta-iters 20 \
        --out benchmarks/results/seeds_maml_point_nav_cpu.json

Both sides are the command a user types (``python -m jmeta.train``, the (algo, env) preset, a
final evaluation only, no plots, report or TensorBoard, the persistent compilation cache off so
that every program is compiled as on a first run): N processes one after the other with seeds
0..N-1, then one process with ``--num-seeds N``. Recorded per side: the wall-clock of the whole
commands (interpreter start, compilation, training, evaluation) and, from the runs' own
metrics.jsonl, the compile time and the meta-iterations per second of the compiled chunks. The
seeds of the many-seed run are compared with the sequential runs: the largest relative difference
of the training metrics at the first iteration (float rounding: the vmapped program orders its
float operations differently), the iteration where the drift passes 1e-3, and the final held-out
returns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import write_result  # noqa: E402


def _train(args: argparse.Namespace, logdir: str, name: str, extra: list[str]) -> float:
    command = [sys.executable, "-m", "jmeta.train", "--algo", args.algo, "--env", args.env,
               "--meta-iters", str(args.meta_iters), "--eval-every", "0", "--chunk-size", str(args.chunk_size),
               "--logdir", logdir, "--run-name", name, "--no-progress", "--no-plots", "--no-report",
               "--no-tensorboard", "--no-compilation-cache", *extra]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _run_perf(run_dir: str) -> dict[str, float]:
    """Compile seconds (every chunk length) and meta-iterations/s of the compiled chunks after the first."""
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    compile_s = sum(r["perf/compile_s"] for r in records if "perf/compile_s" in r)
    speeds = [r["perf/iters_per_s"] for r in records if r.get("kind") == "train" and "perf/iters_per_s" in r]
    steady = speeds[len(speeds) // 2:] or speeds  # the later chunks (the first ones include warm-up)
    return {"compile_s": round(compile_s, 2), "iters_per_s": round(sum(steady) / len(steady), 3)}


def _divergence(path_a: str, path_b: str) -> dict:
    """How two runs' ``train/*`` metrics drift apart: the largest relative difference at the first
    iteration, and the first iteration where it exceeds 1e-3 (None if never)."""
    def train(path):
        with open(path, encoding="utf-8") as f:
            return [r for r in map(json.loads, f) if r.get("kind") == "train"]

    worst = [max(abs(a[k] - b[k]) / max(1e-6, abs(b[k])) for k in b if k.startswith("train/"))
             for a, b in zip(train(path_a), train(path_b), strict=False)]
    return {"first_iteration": worst[0] if worst else None,
            "exceeds_1e-3_at_iteration": next((i + 1 for i, w in enumerate(worst) if w > 1e-3), None)}


def _final_means(path: str) -> list[float]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="maml")
    parser.add_argument("--env", default="point_nav")
    parser.add_argument("--num-seeds", type=int, default=4)
    parser.add_argument("--meta-iters", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as logdir:
        sequential_s, sequential_perf = [], []
        for seed in range(args.num_seeds):
            sequential_s.append(_train(args, logdir, f"seed{seed}", ["--seed", str(seed)]))
            sequential_perf.append(_run_perf(os.path.join(logdir, f"seed{seed}")))
        many_s = _train(args, logdir, "many", ["--num-seeds", str(args.num_seeds)])
        many_perf = _run_perf(os.path.join(logdir, "many"))
        final_many = [_final_means(os.path.join(logdir, "many", "seeds", f"seed_{seed}", "eval.json"))
                      for seed in range(args.num_seeds)]
        final_sequential = [_final_means(os.path.join(logdir, f"seed{seed}", "eval.json"))
                            for seed in range(args.num_seeds)]
        divergence = [_divergence(os.path.join(logdir, "many", "seeds", f"seed_{seed}", "metrics.jsonl"),
                                  os.path.join(logdir, f"seed{seed}", "metrics.jsonl")) for seed in range(args.num_seeds)]
    relative = [abs(a - b) / max(1.0, abs(b)) for m, q in zip(final_many, final_sequential, strict=True)
                for a, b in zip(m, q, strict=True)]

    sequential_total = sum(sequential_s)
    seq_iters_per_s = sum(p["iters_per_s"] for p in sequential_perf) / len(sequential_perf)
    payload = {
        "benchmark": "seeds",
        "config": {"algo": args.algo, "env": args.env, "preset": True, "num_seeds": args.num_seeds,
                   "meta_iters": args.meta_iters, "chunk_size": args.chunk_size, "eval": "final only",
                   "compilation_cache": False},
        "sequential": {"wall_s_each": [round(s, 1) for s in sequential_s], "wall_s": round(sequential_total, 1),
                       "per_run": sequential_perf},
        "num_seeds_run": {"wall_s": round(many_s, 1), **many_perf},
        "speedup_wall": round(sequential_total / many_s, 2),
        # seed-iterations per second: one many-seed iteration advances every seed
        "speedup_training": round(many_perf["iters_per_s"] * args.num_seeds / seq_iters_per_s, 2),
        "final_eval_mean": {"num_seeds_run": final_many, "sequential": final_sequential,
                            "max_relative_difference": max(relative)},
        # per seed: float rounding of the vmapped program at iteration 1, and where the drift passes 1e-3
        "divergence": divergence,
    }
    write_result(args.out, payload)


if __name__ == "__main__":
    main()
