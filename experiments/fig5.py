"""MAML's ICML 2017 Fig. 5 beside jmeta's runs of its protocol: one adaptation-curve figure per task and
a table, from the results grid's records.

    python experiments/fig5.py                 # every task with at least one finished seed
    python experiments/fig5.py --only cheetah_dir_fig5

For each Fig. 5 grid entry (``experiments/grid.py``: ``cheetah_vel_fig5``, ``cheetah_dir_fig5``, the
TRPO-step-0.01 variant ``cheetah_dir_fig5_kl001`` and the VPG-surrogate variant ``cheetah_dir_fig5_vpg``), the
held-out return after 0-3 test-time VPG steps of every finished seed is read from compare.py's
store (``experiments/results/compare/{stem}/maml_seed{s}.json``). The figure
``docs/img/fig5_{stem}.png`` shows jmeta's mean over seeds with its 95% CI (Student t over seeds;
with one seed, the seed's own standard error over the 40 held-out tasks, labelled so) beside the
paper's mean ± standard error over its 40 test tasks and its oracle. The table
``experiments/results/fig5.md`` gives both per step, the gap in units of the paper's standard
error, and whether the target (within two standard errors of the paper or above it, after 1-3
steps) is met; for forward/back also each seed's return on the forward and the backward tasks
separately, beside the paper's split of the same raw data.

The paper's values (``PAPER``) were recomputed from the raw data the authors ship with their code
(cbfinn/maml_rl ``icml/*.pkl``): mean ± standard error over 40 test tasks, 20 rollouts per step,
step size 0.1, rllab physics (the env cards ``docs/envs/cheetah_vel.md`` and ``cheetah_dir.md`` cite
them).
"""

from __future__ import annotations

import argparse
import json
import os

import compare
import grid
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jmeta.stats import mean_ci95  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIGURES = os.path.join(REPO, "docs", "img")
TABLE = os.path.join(HERE, "results", "fig5.md")

#: stem -> (task name, mean after 0..3 steps, standard error, oracle mean, oracle standard error).
PAPER: dict[str, tuple[str, tuple[float, ...], tuple[float, ...], float, float]] = {
    "cheetah_vel_fig5": ("cheetah velocity", (-129.5, -78.6, -66.6, -60.8), (8.4, 5.0, 4.6, 4.4), -54.5, 3.5),
    "cheetah_dir_fig5": ("cheetah forward/back", (-50.7, 293.2, 313.5, 315.7), (2.9, 8.7, 8.0, 7.1), 442.7, 4.3),
    "cheetah_dir_fig5_kl001": ("cheetah forward/back, TRPO step 0.01", (-50.7, 293.2, 313.5, 315.7),
                               (2.9, 8.7, 8.0, 7.1), 442.7, 4.3),
}
PAPER["cheetah_dir_fig5_vpg"] = ("cheetah forward/back, VPG inner surrogate", *PAPER["cheetah_dir_fig5"][1:])

#: The forward/back paper values split by direction (same raw data: the authors' test goals are
#: ``np.random.seed(1)``'s 40 draws of U(0, 2), forward when >= 1): direction -> (mean after 0..3
#: steps, standard error, number of test tasks).
PAPER_DIRECTIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...], int]] = {
    "forward": ((-37.7, 320.3, 341.4, 338.8), (3.1, 12.2, 7.2, 6.0), 18),
    "backward": ((-61.3, 271.0, 290.6, 296.7), (3.4, 10.5, 11.6, 10.5), 22),
}


def held_out_directions(num_tasks: int) -> np.ndarray:
    """The direction (+1 forward, -1 backward) of each of the forward/back protocol's held-out tasks: [num_tasks]."""
    import jmeta
    from jmeta.trainer import evaluation_bank

    _, dist = jmeta.make("cheetah_dir", "maml_rllab")
    return np.asarray(evaluation_bank(dist, num_tasks).tasks.target)[:, 0]


def direction_table(rows: list[tuple[str, list[dict]]]) -> list[str]:
    """Per seed of each forward/back entry: the held-out return after 0-3 steps on the forward and the
    backward tasks separately, beside the paper's split."""
    lines = ["", "## Forward/back by direction", "",
             "Held-out return after 0-3 steps on each direction's tasks (jmeta: per seed, mean over that "
             "direction's held-out tasks; paper: mean ± s.e. over its test tasks of that direction).", "",
             "| task | seed | direction | tasks | step 0 | step 1 | step 2 | step 3 |", "|---" * 8 + "|"]
    for direction, (mean, se, n) in PAPER_DIRECTIONS.items():
        cells = " | ".join(f"{m:.1f} ± {e:.1f}" for m, e in zip(mean, se, strict=True))
        lines.append(f"| paper | | {direction} | {n} | {cells} |")
    for stem, records in rows:
        if not stem.startswith("cheetah_dir"):
            continue
        for r in records:
            per_task = np.asarray(r["eval"]["per_task"], np.float64)  # [T, K + 1]
            sign = held_out_directions(per_task.shape[0])
            for direction, chosen in (("forward", sign > 0), ("backward", sign < 0)):
                cells = " | ".join(f"{v:.1f}" for v in per_task[chosen].mean(axis=0))
                lines.append(f"| {PAPER[stem][0]} | {r['seed']} | {direction} | {int(chosen.sum())} | {cells} |")
    return lines


def seed_records(stem: str) -> list[dict]:
    """The finished seeds' records of ``stem`` (compare.py's store), in seed order."""
    folder = os.path.join(compare.RESULTS, "compare", stem)
    if not os.path.isdir(folder):
        return []
    records = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("maml_seed") and name.endswith(".json") and not name.endswith(".failed.json"):
            records.extend(grid.read_records(os.path.join(folder, name)))
    return sorted(records, key=lambda r: r["seed"])


def ours(records: list[dict]) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean after 0..K steps and its interval half-width, and what the interval is."""
    per_seed = np.array([r["eval"]["mean"] for r in records], np.float64)
    if len(records) == 1:
        per_task = np.array(records[0]["eval"]["per_task"], np.float64)
        stderr = per_task.std(axis=0, ddof=1) / np.sqrt(per_task.shape[0])
        return per_seed[0], stderr, "± s.e. over held-out tasks (1 seed)"
    mean, half = mean_ci95(per_seed)
    return mean, half, f"95% CI over {len(records)} seeds"


def target_met(mean: np.ndarray, paper_mean: tuple[float, ...], paper_se: tuple[float, ...]) -> bool:
    """After 1-3 steps, within two of the paper's standard errors of its mean, or above it."""
    return all(mean[k] >= paper_mean[k] - 2 * paper_se[k] for k in range(1, 4))


def figure(stem: str, records: list[dict]) -> str:
    task, paper_mean, paper_se, oracle, oracle_se = PAPER[stem]
    mean, half, label = ours(records)
    steps = np.arange(len(mean))
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    ax.errorbar(steps[: len(paper_mean)], paper_mean, yerr=paper_se, marker="o", capsize=3,
                label="MAML paper (± s.e., 40 tasks)")
    ax.errorbar(steps, mean, yerr=half, marker="s", capsize=3, label=f"jmeta ({label})")
    ax.axhspan(oracle - oracle_se, oracle + oracle_se, color="0.85", label="paper's oracle (± s.e.)")
    ax.set_xticks(steps)
    ax.set_xlabel("test-time VPG steps")
    ax.set_ylabel("held-out return (H 200)")
    ax.set_title(f"MAML Fig. 5, {task}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(FIGURES, exist_ok=True)
    path = os.path.join(FIGURES, f"fig5_{stem}.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def table(rows: list[tuple[str, list[dict]]]) -> list[str]:
    lines = ["# MAML ICML 2017 Fig. 5 beside jmeta", "",
             "Generated by `python experiments/fig5.py` from the results grid's records; do not edit by hand. "
             "Held-out return after 0-3 test-time VPG steps (40 held-out tasks, 20 episodes per step, step size "
             "0.1, H 200). Paper: mean ± s.e. over 40 test tasks. jmeta: mean over seeds ± 95% CI (one seed: ± "
             "s.e. over the held-out tasks). Target: after 1-3 steps within two of the paper's standard errors "
             "or above.", "",
             "| task | seeds | step | paper | jmeta | gap / paper s.e. | wall-clock per seed |",
             "|---|---|---|---|---|---|---|"]
    for stem, records in rows:
        task, paper_mean, paper_se, _, _ = PAPER[stem]
        mean, half, _ = ours(records)
        wall = np.mean([r.get("wall_s") or 0.0 for r in records])
        for k in range(len(paper_mean)):
            lines.append(f"| {task} | {len(records)} | {k} | {paper_mean[k]:.1f} ± {paper_se[k]:.1f} | "
                         f"{mean[k]:.1f} ± {half[k]:.1f} | {(mean[k] - paper_mean[k]) / paper_se[k]:+.1f} | "
                         f"{wall / 60:.0f} min |")
        lines.append(f"| {task} | | target | | {'met' if target_met(mean, paper_mean, paper_se) else 'not met'} | | |")
    lines += ["", "Commands: " + "; ".join(f"`python experiments/grid.py --only {stem}`" for stem, _ in rows) + "."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(PAPER), default=sorted(PAPER))
    args = parser.parse_args()
    rows = [(stem, seed_records(stem)) for stem in args.only]
    rows = [(stem, records) for stem, records in rows if records]
    if not rows:
        raise SystemExit("fig5: no finished seed yet for " + ", ".join(args.only))
    for stem, records in rows:
        print("wrote", os.path.relpath(figure(stem, records), REPO))
    with open(TABLE, "w", encoding="utf-8") as f:
        f.write("\n".join(table(rows) + direction_table(rows)) + "\n")
    print("wrote", os.path.relpath(TABLE, REPO))
    print(json.dumps({stem: [r["seed"] for r in records] for stem, records in rows}))


if __name__ == "__main__":
    main()
