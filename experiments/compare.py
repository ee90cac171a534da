"""Runs several algorithms on one environment, each with its preset, for several seeds, and writes one
side-by-side table and one adaptation plot from the runs' own files.

    python experiments/compare.py --env point_nav --algos maml fomaml reptile cavia promp emaml metasgd \\
        --seeds 0 1 2
    python experiments/compare.py --env point_nav --algos maesn maml --seeds 0 1 2 --tag sparse \\
        -- --env-variant semicircle --eval-env-set sparse=true

Every run is a normal ``python -m jmeta.train`` (the CLI's code path; flags after ``--`` go to every
run). Each finished run's final meta-test (``eval.json``, the fixed held-out bank) is kept in
``experiments/results/compare/{stem}/{algo}_seed{seed}.json`` with its exact command and wall-clock,
and is reused on the next invocation (``--rerun`` runs it again), so a long comparison can be
built over several sessions. A run that does not finish (a refused config, a NaN stop) is kept
as ``{algo}_seed{seed}.failed.json``, never reused; the other runs go on and the script exits
non-zero naming it. The summary, ``experiments/results/compare_{stem}.{json,md}`` and
``compare_{stem}_adaptation.png`` (plus ``_success.png`` when the env reports success), gives per
algorithm the mean over seeds and the 95% confidence interval over seeds (Student t,
``t_{0.975, n-1} * sd / sqrt(n)``) of the held-out return after each adaptation step. ``stem`` is
the env name plus ``_{tag}``. ``experiments/grid.py`` declares every comparison of the README and runs
them through :func:`run_and_store`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import _runs
import numpy as np

from jmeta.stats import mean_ci95

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def confidence_interval(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and the 95% CI half-width (Student t) of ``per_seed`` [S, K + 1]; zeros for S = 1."""
    mean, half = mean_ci95(per_seed)
    return mean, np.zeros_like(mean) if half is None else half


def run_one(algo: str, env: str, seed: int, stem: str, logdir: str, extra: list[str], label: str | None = None) -> dict:
    """One training run and its record; ``failed`` is set (and ``eval`` absent) when the run did not finish.
    An unfinished run of the same (stem, label, seed) in ``logdir`` is resumed, not started over
    (``_runs.train``); ``attempts`` counts the sessions it took."""
    name = f"{stem}__{label or algo}__seed{seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    run = _runs.train(algo, env, seed, name, logdir, extra)
    record = {"algo": algo, "env": env, "seed": seed, "wall_s": run["wall_s"], "attempts": run["attempts"],
              "run_dir": run["run_dir"], "command": run["command"],
              "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count()}}
    if run["returncode"] != 0:
        return {**record, "failed": f"exit code {run['returncode']}"}
    return {**record, "env_id": _runs.env_id(run["run_dir"]), "config": _runs.read_json(run["run_dir"], "config.json"),
            "eval": _runs.read_json(run["run_dir"], "eval.json")}


def record_path(stem: str, label: str, seed: int) -> str:
    """Where the finished run of ``label`` (an algorithm or a labelled entry) for ``seed`` is kept."""
    return os.path.join(RESULTS, "compare", stem, f"{label}_seed{seed}.json")


def run_and_store(label: str, algo: str, env: str, seed: int, stem: str, logdir: str, extra: list[str]) -> dict:
    """Runs one seed of ``label`` (algorithm ``algo`` with the flags ``extra``) and stores its record at
    :func:`record_path`, or as ``.failed.json`` beside it (never reused) when the run did not finish;
    returns the record (``failed`` set in the second case)."""
    path = record_path(stem, label, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = run_one(algo, env, seed, stem, logdir, extra, label)
    record["label"] = label
    if "failed" in record:  # kept apart, so the next invocation runs it again; the others go on
        with open(path.replace(".json", ".failed.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        print(f"{label} seed {seed}: FAILED ({record['failed']}); see {record['run_dir']}", flush=True)
        return record
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print(f"{label} seed {seed}: {np.round(record['eval']['mean'], 2)} ({record['wall_s']:.0f} s)", flush=True)
    return record


def summarize(records: dict[str, list[dict]], env: str, stem: str) -> list[str]:
    from jmeta import plots

    axis = next(iter(records.values()))[0]["eval"]["axis"]
    summary, curves, success_curves = {}, {}, {}
    for algo, runs in records.items():
        per_seed = np.array([r["eval"]["mean"] for r in runs])
        mean, half = confidence_interval(per_seed)
        entry = {"seeds": [r["seed"] for r in runs], "per_seed": per_seed.round(3).tolist(),
                 "mean": mean.round(3).tolist(), "ci95": half.round(3).tolist(),
                 "wall_s_mean": round(float(np.mean([r["wall_s"] for r in runs])), 1),
                 "commands": [r["command"] for r in runs]}
        extras = [r["eval"].get("extras", {}).get("success") for r in runs]
        if all(e is not None for e in extras):
            success = np.array([np.asarray(e).mean(axis=0) for e in extras])  # [S, K + 1]
            s_mean, s_half = confidence_interval(success)
            entry.update(success_mean=s_mean.round(3).tolist(), success_ci95=s_half.round(3).tolist())
            success_curves[algo] = (s_mean, s_half)
        summary[algo] = entry
        curves[algo] = (mean, half)
    steps = len(next(iter(curves.values()))[0])
    num_tasks = next(iter(records.values()))[0]["eval"]["num_tasks"]
    config = next(iter(records.values()))[0]["config"]
    with open(os.path.join(RESULTS, f"compare_{stem}.json"), "w", encoding="utf-8") as f:
        json.dump({"env": env, "axis": axis, "num_tasks": num_tasks, "algorithms": summary}, f, indent=2)
    header = " | ".join(f"{axis} {k}" for k in range(steps))
    meta_test = f"; meta-test with {' '.join(config['eval_env_set'])}" if config.get("eval_env_set") else ""
    lines = [f"# Side by side on {env} ({config.get('env_variant', 'default')}{meta_test})", "",
             f"| algorithm | seeds | {header} | wall-clock per run |", "|---" * (steps + 3) + "|"]
    for algo, e in summary.items():
        cells = " | ".join(f"{m:.2f} ± {h:.2f}" for m, h in zip(e["mean"], e["ci95"], strict=True))
        lines.append(f"| {algo} | {len(e['seeds'])} | {cells} | {e['wall_s_mean']:.0f} s |")
    if success_curves:
        lines += ["", "Success rate (fraction of episodes that reach the goal region):", "",
                  f"| algorithm | {header} |", "|---" * (steps + 1) + "|"]
        for algo, e in summary.items():
            if "success_mean" in e:
                cells = " | ".join(f"{m:.3f} ± {h:.3f}" for m, h in
                                   zip(e["success_mean"], e["success_ci95"], strict=True))
                lines.append(f"| {algo} | {cells} |")
    lines += ["", f"Held-out return on the fixed bank of {num_tasks} tasks: mean over seeds ± the 95% confidence "
              "interval over seeds (Student t). Each algorithm runs its own preset for this env (the same "
              "meta-iterations, tasks per iteration and episodes per task for the gradient-based family); "
              "wall-clock is the whole run (compile, training, evaluations) on the machine below.", "",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs.", "", "Commands:", ""]
    for e in summary.values():
        lines += [f"    {c}" for c in e["commands"]]
    with open(os.path.join(RESULTS, f"compare_{stem}.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    label = "adaptation steps" if axis == "step" else axis
    variant = config.get("env_variant", "default")
    name = env if variant == "default" else f"{env} ({variant})"
    if config.get("eval_env_set"):
        name += ", meta-test " + " ".join(config["eval_env_set"])
    plots.adaptation_curves(curves, label, os.path.join(RESULTS, f"compare_{stem}_adaptation.png"),
                            f"{name}: held-out return (mean, 95% CI over seeds)")
    if success_curves:
        plots.adaptation_curves(success_curves, label, os.path.join(RESULTS, f"compare_{stem}_success.png"),
                                f"{name}: success rate (mean, 95% CI over seeds)", ylabel="success rate")
    return lines


def parse_entry(entry: str) -> tuple[str, tuple[str, list[str]]]:
    """``"maml"`` -> ("maml", ("maml", [])); ``"sac=pearl --pearl.no-use-context"`` -> ("sac", ("pearl",
    ["--pearl.no-use-context"])): a label, the algorithm and the flags its runs get besides the shared ones."""
    label, sep, rest = entry.partition("=")
    if not sep:
        return entry, (entry, [])
    algo, *flags = rest.split()
    return label, (algo, flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="point_nav")
    parser.add_argument("--algos", nargs="+", required=True,
                        help="algorithm names, or 'LABEL=ALGO FLAG...' for an algorithm run with flags of its own "
                             "under its own label (e.g. 'sac=pearl --pearl.no-use-context')")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--logdir", default="runs/compare")
    parser.add_argument("--rerun", action="store_true", help="run again even where a stored result exists")
    parser.add_argument("--summarize-only", action="store_true", help="only rebuild the summary from stored results")
    parser.add_argument("extra", nargs="*", help="extra flags for every jmeta.train run (after --)")
    args = parser.parse_args()

    stem = args.env + (f"_{args.tag}" if args.tag else "")
    os.makedirs(os.path.join(RESULTS, "compare", stem), exist_ok=True)
    entries = dict(parse_entry(entry) for entry in args.algos)
    records: dict[str, list[dict]] = {label: [] for label in entries}
    failures: list[dict] = []
    for seed in args.seeds:  # seed-major: every algorithm gets seed 0 before any gets seed 1
        for algo, (algo_name, own_flags) in entries.items():
            path = record_path(stem, algo, seed)
            if os.path.exists(path) and not args.rerun:
                with open(path, encoding="utf-8") as f:
                    records[algo].append(json.load(f))
                continue
            if args.summarize_only:
                continue
            record = run_and_store(algo, algo_name, args.env, seed, stem, args.logdir, args.extra + own_flags)
            (failures if "failed" in record else records[algo]).append(record)
    records = {a: r for a, r in records.items() if r}
    if records:
        print("\n".join(summarize(records, args.env, stem)))
    if failures:
        sys.exit("compare: runs that did not finish: " + ", ".join(f"{r['algo']} seed {r['seed']}" for r in failures))


if __name__ == "__main__":
    main()
