"""Prints markdown tables of ``benchmarks/results/meta_step*.json``, ``env_throughput*.json`` and
``seeds*.json``.

    python benchmarks/summarize.py
    python benchmarks/summarize.py --write-docs   # also rewrites the seeds table of docs/scaling.md
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
        config = f"{data['algo']} {_env_label(data)}, {_config_label(data['config'])}, jax {data['versions']['jax']}"
        for r in data["results"]:
            print(f"| {os.path.basename(path)} | {device} | {config} | {r['meta_batch_size']} | "
                  f"{r['env_steps_per_iteration']:,} | {r['compile_s']:.1f} | {r['seconds_per_iteration']:.2f} | "
                  f"{r['env_steps_per_s']:,.0f} | {_share(r)} |")


def _env_label(data: dict) -> str:
    variant = data.get("env_variant", "default")
    return data["env"] + ("" if variant == "default" else f" ({variant})")


def _config_label(c: dict) -> str:
    """The settings that size a meta-iteration, from whichever fields the algorithm's config has."""
    parts = []
    if "episodes_per_task" in c:
        parts += [f"{c['episodes_per_task']} ep/task", f"{c['num_inner_steps']} inner"]
    if "hidden_size" in c:
        parts.append(f"GRU {c['hidden_size']}")
    if "encoder_hidden_size" in c:  # VariBAD / task inference
        elbo = "all" if not c["subsample_elbos"] else f"{c['subsample_elbos']}x{c['subsample_decodes']}"
        parts += [f"encoder GRU {c['encoder_hidden_size']}", f"{c['vae_updates']} VAE steps x {c['vae_batch_trials']} "
                  f"trials, ELBO terms {elbo}"]
    if "trials_per_task" in c:
        parts.append(f"{c['trials_per_task']} trial/task")
    if "num_minibatches" in c:
        parts.append(f"PPO {c['ppo_epochs']}x{c['num_minibatches']}")
    elif "outer" in c and "outer_optimizer" not in c:
        parts.append(c["outer"] + (f" {c['ppo_epochs']} epochs" if c["outer"] == "ppo" else ""))
    if c.get("first_order"):
        parts.append("first-order")
    if "outer_optimizer" in c:
        parts.append(f"{c['outer_optimizer']} outer step")
    if "num_train_steps_per_itr" in c:  # off-policy (PEARL)
        parts += [f"{c['num_train_steps_per_itr']} SAC steps x {c['batch_size']}/task",
                  "nets " + "x".join(map(str, c["hidden_sizes"]))]
    return ", ".join(parts)


def off_policy() -> None:
    """Off-policy learners timed with ``--split``: gradient steps/s and the collection's env steps/s."""
    rows = []
    for path in sorted(glob.glob(os.path.join(HERE, "results", "meta_step*.json"))):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for r in data["results"]:
            if "gradient_steps_per_s" in r:
                rows.append(f"| {os.path.basename(path)} | {data['algo']} {_env_label(data)}, "
                            f"{_config_label(data['config'])} | {r['meta_batch_size']} | "
                            f"{r['split_s']['update'] * 1e3:.2f} | {r['gradient_steps_per_s']:,.1f} | "
                            f"{r['split_s']['collect']:.3f} | {r['collect_env_steps_per_s']:,.0f} |")
    if rows:
        print()
        print("| file | config | meta-batch (tasks per gradient step) | ms / gradient step | gradient steps/s | "
              "collection s / iter | collection env steps/s |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows))


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


def _device(hw: dict) -> str:
    gpu = hw.get("gpus", [None])[0]
    return gpu.split(": ", 1)[-1].split(" (UUID")[0] if gpu else f"{hw.get('cpu_model', hw['processor'])} ({hw['cpu_count']} cores)"


def seeds_table() -> str:
    """One row per ``seeds*.json`` (benchmarks/seeds.py): N sequential runs against one --num-seeds N run."""
    rows = ["| algo, env (preset) | device | seeds | meta-iters | N sequential runs: wall s (compile s each) | "
            "one --num-seeds run: wall s (compile s) | speed-up, wall | speed-up, training | "
            "iteration 1: largest relative difference | drift > 1e-3 from iteration |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(glob.glob(os.path.join(HERE, "results", "seeds*.json"))):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        c, seq, many = data["config"], data["sequential"], data["num_seeds_run"]
        compile_each = sum(p["compile_s"] for p in seq["per_run"]) / len(seq["per_run"])
        rows.append(f"| {c['algo']}, {c['env']} | {_device(data['hardware'])} | {c['num_seeds']} | {c['meta_iters']} | "
                    f"{seq['wall_s']:.0f} ({compile_each:.1f}) | {many['wall_s']:.0f} ({many['compile_s']:.1f}) | "
                    f"{data['speedup_wall']:.2f}x | {data['speedup_training']:.2f}x | "
                    f"{max(d['first_iteration'] for d in data['divergence']):.1e} | {_drift_start(data['divergence'])} |")
    return "\n".join(rows)


def _drift_start(divergence: list[dict]) -> str:
    """The earliest iteration at which any seed's drift passed 1e-3, or "never"."""
    starts = [d["exceeds_1e-3_at_iteration"] for d in divergence if d["exceeds_1e-3_at_iteration"] is not None]
    return str(min(starts)) if starts else "never"


def write_docs(table: str, path: str = os.path.join(HERE, "..", "docs", "scaling.md")) -> None:
    """Replaces the block between the seeds-benchmark markers of docs/scaling.md with ``table``."""
    start, end = "<!-- seeds-benchmark:start -->", "<!-- seeds-benchmark:end -->"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if start not in text or end not in text:
        raise SystemExit(f"summarize: {path} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    note = "<!-- generated by `python benchmarks/summarize.py --write-docs`; do not edit by hand -->"
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{start}\n{note}\n\n{table}\n{end}{tail}")


def _share(result: dict) -> str:
    return f"{100 * result['collect_fraction']:.0f}%" if "collect_fraction" in result else "n/a"


if __name__ == "__main__":
    import sys

    main()
    off_policy()
    env_throughput()
    print()
    print(seeds_table())
    if "--write-docs" in sys.argv[1:]:
        write_docs(seeds_table())
