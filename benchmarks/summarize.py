"""Prints a markdown table of every ``benchmarks/results/meta_step*.json`` (for the READMEs).

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
        device = hw.get("gpus", [None])[0] or f"{hw.get('cpu_model', hw['processor'])} ({hw['cpu_count']} cores)"
        c = data["config"]
        config = (f"{data['algo']} {data['env']}, {c['episodes_per_task']} ep/task, {c['num_inner_steps']} inner, "
                  f"{c['outer']}{', first-order' if c['first_order'] else ''}, jax {data['versions']['jax']}")
        for r in data["results"]:
            print(f"| {os.path.basename(path)} | {device} | {config} | {r['meta_batch_size']} | "
                  f"{r['env_steps_per_iteration']:,} | {r['compile_s']:.1f} | {r['seconds_per_iteration']:.2f} | "
                  f"{r['env_steps_per_s']:,.0f} | {_share(r)} |")


def _share(result: dict) -> str:
    return f"{100 * result['collect_fraction']:.0f}%" if "collect_fraction" in result else "n/a"


if __name__ == "__main__":
    main()
