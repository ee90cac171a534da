"""Prints markdown tables of ``benchmarks/results/meta_step*.json`` and ``env_throughput*.json``.

    python benchmarks/summarize.py
"""

from __future__ import annotations

import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    print("| file | device | config | meta-batch | env steps / iter | compile s | s / iter | env steps/s | sampling share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(HERE, "results", "meta_step*.json"))):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        hw = data["hardware"]
        gpu = hw.get("gpus", [None])[0]
        device = gpu.split(": ", 1)[-1].split(" (UUID")[0] if gpu else f"{hw.get('cpu_model', hw['processor'])} ({hw['cpu_count']} cores)"
        c = data["config"]
        if data["algo"] == "rl2":
            variant = data.get("env_variant", "default")
            env = data["env"] + ("" if variant == "default" else f" ({variant})")
            config = (f"rl2 {env}, GRU {c['hidden_size']}, {c['trials_per_task']} trial/task, "
                      f"PPO {c['ppo_epochs']}x{c['num_minibatches']}, jax {data['versions']['jax']}")
        else:
            config = (f"{data['algo']} {data['env']}, {c['episodes_per_task']} ep/task, {c['num_inner_steps']} inner, "
                      f"{c['outer']}{', first-order' if c['first_order'] else ''}, jax {data['versions']['jax']}")
        for r in data["results"]:
            print(f"| {os.path.basename(path)} | {device} | {config} | {r['meta_batch_size']} | "
                  f"{r['env_steps_per_iteration']:,} | {r['compile_s']:.1f} | {r['seconds_per_iteration']:.2f} | "
                  f"{r['env_steps_per_s']:,.0f} | {_share(r)} |")


def env_throughput() -> None:
    """One row per (file, env, runner, batch): env steps/s and its ratio to the baselines."""
    print()
    print("| file | env | runner | batch | compile s | env steps/s | vs mujoco.rollout | vs gymnasium | vs raw vmap(mjx.step) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(HERE, "results", "env_throughput*.json"))):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        robots = {"cheetah": "half_cheetah", "ant": "ant"}  # files written before rows named their robot
        for r in data["results"]:
            robot = r.get("robot") or robots.get(r["env"].split("_")[0])
            base = data["baselines"].get(robot, [])
            ref = {(b["runner"], b["batch"]): b["env_steps_per_s"] for b in base}
            gym = next((b["env_steps_per_s"] for b in base if b["runner"] == "gymnasium"), None)
            steps_per_s = r["env_steps_per_s"]
            runner = r["runner"] + (f" ({'x'.join(map(str, r['frame_shape']))} frames)" if "frame_shape" in r else "")

            def ratio(key, steps_per_s=steps_per_s, ref=ref):
                return f"{steps_per_s / ref[key]:.2f}x" if key in ref else "n/a"

            vs_gym = f"{steps_per_s / gym:.1f}x" if gym else "n/a"
            print(f"| {os.path.basename(path)} | {r['env']} | {runner} | {r['batch']} | {r['compile_s']:.1f} | "
                  f"{steps_per_s:,.0f} | {ratio(('mujoco_rollout', r['batch']))} | {vs_gym} | "
                  f"{ratio(('raw_mjx', r['batch']))} |")
        for robot, base in data["baselines"].items():
            for b in base:
                print(f"| {os.path.basename(path)} | ({robot}) | {b['runner']} | {b['batch']} | "
                      f"{b.get('compile_s', 0.0):.1f} | {b['env_steps_per_s']:,.0f} | | | |")


def _share(result: dict) -> str:
    return f"{100 * result['collect_fraction']:.0f}%" if "collect_fraction" in result else "n/a"


if __name__ == "__main__":
    main()
    env_throughput()
