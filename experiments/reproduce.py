"""Runs the (algo, env) preset for several seeds and writes a result table from the runs' own files.

    python experiments/reproduce.py --algo maml --env point_nav --seeds 0 1 2 [-- extra train flags]

Each seed is a normal ``python -m jmeta.train`` run (same code path as the CLI). The final
meta-test evaluation of every run (``eval.json``: 40 held-out tasks) is aggregated into
``experiments/results/{algo}_{env}.json`` and ``.md`` together with the exact commands, and the
first seed's plots are copied next to them. ``experiments/grid.py`` reads the summaries this script wrote
for the README's rows (``record_files`` of its grid) and runs new comparisons through ``compare.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import _runs
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="maml")
    parser.add_argument("--env", default="point_nav")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--logdir", default="runs/experiments")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("extra", nargs="*", help="extra flags for jmeta.train (after --)")
    args = parser.parse_args()

    stem = f"{args.algo}_{args.env}{('_' + args.tag) if args.tag else ''}"
    runs = []
    for seed in args.seeds:
        run = _runs.train(args.algo, args.env, seed, f"{stem}__seed{seed}__{time.strftime('%Y%m%d-%H%M%S')}",
                          args.logdir, args.extra)
        if run["returncode"] != 0:
            sys.exit(f"reproduce: seed {seed} failed (exit code {run['returncode']}); see {run['run_dir']}")
        runs.append({"seed": seed, "run_dir": run["run_dir"], "wall_s": run["wall_s"], "command": run["command"],
                     "eval": _runs.read_json(run["run_dir"], "eval.json")})

    per_seed = np.array([r["eval"]["mean"] for r in runs])  # [seeds, K + 1]
    axis = runs[0]["eval"]["axis"]
    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    summary = {"algo": args.algo, "env": args.env, "axis": axis, "seeds": args.seeds,
               "mean_over_seeds": per_seed.mean(0).round(3).tolist(), "runs": runs}
    with open(os.path.join(out_dir, stem + ".json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    header = " | ".join(f"{axis} {k}" for k in range(per_seed.shape[1]))
    lines = [f"# {args.algo} on {args.env}", "", f"| seed | {header} | wall-clock |",
             "|---" * (per_seed.shape[1] + 2) + "|"]
    for r in runs:
        cells = " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(r["eval"]["mean"], r["eval"]["stderr"], strict=True))
        lines.append(f"| {r['seed']} | {cells} | {r['wall_s']:.0f} s |")
    lines += ["", f"Mean ± s.e. over {runs[0]['eval']['num_tasks']} held-out tasks (fixed evaluation bank).",
              "", "Commands:", ""] + [f"    {r['command']}" for r in runs]
    with open(os.path.join(out_dir, stem + ".md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    for png in ("learning_curve.png", "adaptation_curve.png"):
        src = os.path.join(runs[0]["run_dir"], "plots", png)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out_dir, f"{stem}_{png}"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
