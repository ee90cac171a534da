"""Every comparison of the repository, declared in one place (``GRID`` below), run and tabled by one command.

    python experiments/grid.py                          # run every CPU entry's missing runs, then table everything
    python experiments/grid.py --only point_nav cheetah_vel_pearl
    python experiments/grid.py --dry-run                # the cached records, and the commands that would run
    python experiments/grid.py --summarize-only --readme   # only table what exists; rewrite the README block
    python experiments/grid.py --include-gpu --only cheetah_vel_full   # on a machine with an accelerator

Each entry of ``GRID`` is one ``experiments/compare.py`` comparison: a stem (the env name plus the
tag, as compare.py names its files), the env, the algorithms (``"maml"``, or ``"LABEL=ALGO FLAG..."``
for an algorithm run with flags of its own under its own label), the seeds, the flags every run
gets (after compare.py's ``--``), a budget description and ``needs_gpu``. Runs go through
compare.py's machinery (``compare.run_and_store``: a normal ``python -m jmeta.train`` each), and a
finished run's record, ``experiments/results/compare/{stem}/{label}_seed{seed}.json``, is reused
(never run again unless ``--rerun``). A few runs predate compare.py and are read from the files
their scripts wrote (``record_files``: ``reproduce.py`` summaries, the VariBAD 2e7 record,
``benchmarks/device_run.sh``'s full-budget record); a record in compare.py's store takes precedence.
Entries with ``needs_gpu`` run only with ``--include-gpu``; until a record exists they are listed
as "not yet run (needs a GPU)" with their exact commands.

Output: one table per env, ``experiments/results/grid/{env}.md`` and ``.json``, with per
(comparison, algorithm): the seeds, the held-out return before adaptation and after the last
adaptation step or episode (and the success rate where the env reports it), each as the mean over
seeds with the 95% confidence interval over seeds (Student t; with one seed no CI is available and
none is printed), and the interquartile mean (IQM) over all seeds x held-out tasks with its 95%
stratified-bootstrap CI (the held-out tasks are the strata; 2,000 resamples, RNG seed 0) where
there are 5 or more seeds; the wall-clock and the exact commands. ``--readme`` rewrites the block
of README.md between ``<!-- results-grid:start -->`` and ``<!-- results-grid:end -->`` with a compact
table per env and the GPU runs not yet run; every number comes from the records read.

Statistics: ``jmeta.stats`` (pure numpy/scipy). The rliable library was not used:
``pip install rliable numpy scipy`` in a fresh venv installs (rliable 1.2.0 with numpy 2.4.6 and
scipy 1.17.1, this repository's pinned versions) but pulls arch, pandas, seaborn and statsmodels,
and ``from rliable import library`` then fails with ``TypeError: deprecate_kwarg() missing 1
required positional argument: 'new_arg_name'`` (arch 7.2.0 against pandas 3.1.1); it works only
with ``pandas<3`` pinned, a package this repository does not otherwise use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys

import compare
import numpy as np

from jmeta.stats import iqm_with_ci, mean_ci95


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One compare.py comparison (module docstring). ``record_files``: label -> a JSON file written by
    another script holding runs of this entry (repository-relative). ``logdir``: where its runs live
    when not the command line's ``--logdir`` (repository-relative): the long runs at the authors'
    budgets keep theirs in the repository (``LONG_RUNS``), so a run cut off at the end of a session
    is resumed from its last checkpoint by the next session's invocation."""

    stem: str
    env: str
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    flags: tuple[str, ...]
    budget: str
    needs_gpu: bool = False
    record_files: dict[str, str] = dataclasses.field(default_factory=dict)
    logdir: str | None = None


#: Run directories of the long runs (tracked, so a run outlives its session; see ``Comparison.logdir``).
LONG_RUNS = "experiments/long_runs"
_FIG5 = "MAML ICML 2017 Fig. 5 protocol on rllab physics (the maml_rllab variant; MAML's preset for it): "

_MAZE_SMALL_RUN = ("--env-variant", "small", "--meta-iters", "400", "--meta-batch-size", "32", "--chunk-size", "25",
                   "--eval-every", "50", "--checkpoint-every", "100", "--eval-tasks", "40")
_MAZE_RL2 = ("--{0}.hidden-size 64 --{0}.lr 1e-3 --{0}.num-minibatches 4 --{0}.ppo-epochs 4 --{0}.entropy-coef 0.03 "
             "--{0}.episodes-per-trial 2")
_OYSTER_NETS = ("--pearl.hidden-sizes", "300", "300", "300", "--pearl.encoder-sizes", "200", "200", "200")

#: The declared grid: every comparison of the README's results section (CPU, on this repository's
#: 2-core machine) and the runs that need an accelerator at their authors' budget.
GRID: tuple[Comparison, ...] = (
    # point_nav
    Comparison("point_nav", "point_nav", ("maml", "fomaml", "reptile", "cavia", "promp", "emaml", "metasgd"),
               (0, 1, 2, 3, 4), (), "each preset: 100 meta-iterations x 20 tasks x 20 episodes per inner step, 1 inner "
               "step (Reptile 3); meta-test on 40 held-out goals after 0-3 steps"),
    Comparison("point_nav_2step", "point_nav", ("maml",), (0,), ("--maml.num-inner-steps", "2"),
               "MAML's preset with 2 inner steps (100 x 20 x 20)",
               record_files={"maml": "experiments/results/maml_point_nav_2step.json"}),
    Comparison("point_nav_fig5", "point_nav", ("maml",), (0, 1, 2),
               ("--maml.eval-lr-scale-after-first", "0.5", "--maml.eval-episodes-per-task", "40"),
               "MAML's point_nav preset (100 x 20 x 20) tested as the MAML authors' test script does "
               "(maml_examples/test_maml_point.py): step 1 at the inner lr, steps 2-3 at half of it, 40 episodes "
               "per step; jmeta's 40 held-out goals"),
    Comparison("point_nav_sparse", "point_nav", ("maesn", "maml"), (0, 1, 2),
               ("--env-variant", "semicircle", "--eval-env-set", "sparse=true"),
               "MAESN's protocol: dense meta-training on the semicircle goals, sparse meta-test; 100 x 20 x 20 for "
               "both"),
    Comparison("point_nav_pearl", "point_nav", ("pearl", "rl2"), (0, 1, 2), ("--env-variant", "pearl"),
               "oyster's point robot; PEARL's preset (300 iterations, 616k env steps; it sets the pearl variant "
               "itself), RL²'s point_nav:pearl preset (500 x 64 trials, 1.9M env steps)"),
    Comparison("point_nav_pearl_sparse", "point_nav", ("pearl", "sac=pearl --pearl.no-use-context"), (0,),
               ("--env-variant", "pearl_sparse"),
               "the point_nav:pearl_sparse preset (300 iterations, 3.2M env steps, 60k SAC steps) and the "
               "non-adaptive SAC baseline"),
    Comparison("point_nav_bayes_sparse", "point_nav", ("varibad", "task_inference", "rl2"), (0,),
               ("--env-variant", "sparse"),
               "VariBAD's sparse point robot, the three point_nav:sparse presets (1,000 x 16 trials, 4.8M env "
               "steps, a tenth of the authors' 5e7)"),
    Comparison("point_nav_pearl_sparse_oyster", "point_nav", ("pearl", "sac=pearl --pearl.no-use-context"), (0,),
               ("--env-variant", "pearl_sparse", "--meta-iters", "500", "--meta-batch-size", "16",
                "--pearl.num-train-steps-per-itr", "1000", "--pearl.batch-size", "256", *_OYSTER_NETS,
                "--pearl.embedding-batch-size", "1024", "--pearl.reward-scale", "100", "--pearl.policy-lr", "3e-4",
                "--pearl.qf-lr", "3e-4", "--pearl.vf-lr", "3e-4", "--pearl.context-lr", "3e-4",
                "--pearl.replay-capacity", "100000"),
               "oyster's sparse-point-robot budget (docs/algorithms/pearl.md, Presets): 500 iterations x 1,000 SAC "
               "steps of 16 tasks x 256, context 1024, reward scale 100, Adam 3e-4, 3 x 300 networks (5M env "
               "steps, 500k SAC steps)", needs_gpu=True),
    # cheetah_vel
    Comparison("cheetah_vel", "cheetah_vel",
               ("maml", "promp", "cavia", "fomaml", "reptile", "emaml", "metasgd", "maesn"), (0, 1, 2), (),
               "the CPU presets: 300 iterations x 20 tasks x 10 episodes, H 100, action scale 10 (12M env steps, "
               "MuJoCo C engine); 40 held-out velocities (the single-seed runs of env version 1, before the "
               "mass fix, are kept in experiments/results/compare/cheetah_vel/env_v1/)"),
    Comparison("cheetah_vel_promp_stability", "cheetah_vel",
               ("promp_kl0.02=promp --promp.outer-max-kl 0.02",
                "promp_env_promp=promp --env-variant promp --promp.outer-max-kl 0",
                "promp_kl0.05=promp --promp.outer-max-kl 0.05"), (0,), (),
               "ProMP's CPU preset (the authors' settings: 5 Adam steps at 1e-3, clip 0.3, eta 5e-4) with an outer "
               "trust region of KL 0.02 / 0.05 (a departure), and unbounded on the authors' env definition (no torso "
               "x in the observation, velocities 0-3): the diagnosis of docs/algorithms/promp.md"),
    Comparison("cheetah_vel_pearl", "cheetah_vel", ("pearl",), (0,), (),
               "PEARL's cheetah_vel preset (variant pearl, H 200): 100 iterations x 500 SAC steps, 0.7M env steps"),
    Comparison("cheetah_vel_pearl_tasks", "cheetah_vel", ("maml",), (0,),
               ("--env-variant", "pearl", "--env-horizon", "200", "--eval-tasks", "30"),
               "MAML's cheetah_vel preset on PEARL's 30 held-out velocities at H 200 (24M env steps)"),
    Comparison("cheetah_vel_varibad", "cheetah_vel", ("varibad",), (0,), (),
               "VariBAD's cheetah_vel preset: 300 iterations x 16 trials, 1.9M env steps (2% of the authors' 1e8)"),
    Comparison("cheetah_vel_full", "cheetah_vel", ("maml",), (0,),
               ("--meta-iters", "500", "--meta-batch-size", "40", "--maml.episodes-per-task", "20", "--env-horizon",
                "100", "--env-physics", "mjx", "--chunk-size", "25", "--eval-every", "100", "--eval-tasks", "40"),
               "pytorch-maml-rl's full budget in MJX (benchmarks/device_run.sh, SETS=full): 500 iterations x 40 "
               "tasks x 20 episodes x H 100, about 80M env steps", needs_gpu=True,
               record_files={"maml": "benchmarks/results/maml_cheetah_vel_full_gpu.json"}),
    Comparison("cheetah_vel_full_cpu", "cheetah_vel", ("maml",), (0,),
               ("--meta-iters", "500", "--meta-batch-size", "40", "--maml.episodes-per-task", "20", "--env-horizon",
                "100", "--eval-every", "100", "--eval-tasks", "40", "--no-tensorboard", "--no-report"),
               "cheetah_vel_full on the 2-core CPU's C engine instead of MJX: 500 iterations x 40 tasks x 20 "
               "episodes x H 100, about 80M env steps (about 70 min at the 19k env steps/s of the CPU preset's "
               "MAML run)", logdir=LONG_RUNS),
    Comparison("cheetah_vel_varibad_1e8", "cheetah_vel", ("varibad",), (0,),
               ("--meta-iters", "15625", "--eval-every", "1000", "--checkpoint-every", "250", "--no-tensorboard",
                "--no-report"),
               "VariBAD's cheetah_vel preset at the authors' 1e8 frames: 15,625 iterations x 16 trials x 2 x 200 "
               "steps on the CPU's C engine (about 4 h at the 6.9k env steps/s of cheetah_vel_varibad; resumed "
               "across sessions)", logdir=LONG_RUNS),
    Comparison("cheetah_vel_pearl_oyster", "cheetah_vel", ("pearl",), (0,),
               ("--meta-iters", "500", "--meta-batch-size", "16", "--pearl.num-train-steps-per-itr", "2000",
                "--pearl.batch-size", "256", *_OYSTER_NETS, "--pearl.replay-capacity", "100000", "--eval-every",
                "50", "--checkpoint-every", "50", "--env-physics", "mjx"),
               "oyster's cheetah-vel budget: 500 iterations x 2,000 SAC steps of 16 tasks x 256, 3 x 300 networks "
               "(2.7M env steps, 1M SAC steps; about 65 h on the 2-core CPU)", needs_gpu=True),
    Comparison("cheetah_vel_fig5", "cheetah_vel", ("maml",), (0, 1, 2),
               ("--env-variant", "maml_rllab", "--no-tensorboard", "--no-report"),
               _FIG5 + "the model the authors' test loads: ReLU (100, 100), 40 tasks x 10 episodes x H 200 per phase, "
               "fast lr 0.1, TRPO 0.01, 475 iterations (76M env steps); 40 held-out velocities after 0-3 VPG steps",
               logdir=LONG_RUNS),
    # cheetah_dir
    Comparison("cheetah_dir_fig5", "cheetah_dir", ("maml",), (0, 1, 2),
               ("--env-variant", "maml_rllab", "--no-tensorboard", "--no-report"),
               _FIG5 + "the model the authors' test loads: ReLU (100, 100), 40 tasks x 20 episodes x H 200 per phase, "
               "fast lr 0.1, TRPO 0.02, 100 iterations (32M env steps); 40 held-out directions after 0-3 VPG steps",
               logdir=LONG_RUNS),
    Comparison("cheetah_dir_fig5_vpg", "cheetah_dir", ("maml",), (0, 1, 2),
               ("--env-variant", "maml_rllab", "--no-tensorboard", "--no-report", "--maml.inner-estimator", "vpg"),
               _FIG5 + "as cheetah_dir_fig5 with the authors' inner surrogate, the plain log-likelihood (VPG) one "
               "(their maml_npo.py), instead of jmeta's default LVC: the same inner step, a different meta-gradient "
               "and TRPO metric", logdir=LONG_RUNS),
    Comparison("cheetah_dir_fig5_kl001", "cheetah_dir", ("maml",), (0,),
               ("--env-variant", "maml_rllab", "--no-tensorboard", "--no-report", "--maml.max-kl", "0.01"),
               _FIG5 + "as cheetah_dir_fig5 but with TRPO step 0.01 (the paper's text; the authors' tested model used "
               "0.02): the first run of the protocol, on env version 1 (before the fidelity fixes), kept for the "
               "comparison", logdir=LONG_RUNS),
    Comparison("cheetah_dir_cavia_context", "cheetah_dir",
               ("cavia_c50_lr1=cavia --cavia.num-context-params 50 --cavia.inner-lr 1.0",
                "cavia_c50_lr10=cavia --cavia.num-context-params 50 --cavia.inner-lr 10.0"), (0,), (),
               "CAVIA's CPU preset with a 50-parameter context and step 1 or 10 (the authors' code: 2 and 1): the "
               "diagnosis of docs/algorithms/cavia.md"),
    Comparison("cheetah_dir", "cheetah_dir",
               ("maml", "promp", "cavia", "fomaml", "reptile", "emaml", "metasgd", "maesn"), (0, 1, 2), (),
               "the CPU presets (as cheetah_vel): 300 x 20 x 10, H 100 (env version 1 single-seed runs in "
               "experiments/results/compare/cheetah_dir/env_v1/)"),
    # wheeled_nav
    Comparison("wheeled_nav_sparse", "wheeled_nav", ("maesn", "maml"), (0,),
               ("--meta-iters", "100", "--meta-batch-size", "20", "--eval-every", "50", "--checkpoint-every", "50",
                "--eval-tasks", "30", "--eval-env-set", "reward=sparse"),
               "100 iterations x 20 tasks x 20 episodes (an eighth of the authors' samples), sparse meta-test on 30 "
               "validation goals, MuJoCo C engine"),
    Comparison("wheeled_nav_sparse_authors", "wheeled_nav",
               ("maesn=maesn --maesn.episodes-per-task 50", "maml=maml --maml.episodes-per-task 50"), (0,),
               ("--meta-iters", "500", "--meta-batch-size", "20", "--eval-every", "50", "--checkpoint-every", "50",
                "--eval-tasks", "30", "--eval-env-set", "reward=sparse", "--env-physics", "mjx"),
               "MAESN's budget: 500 iterations x 20 tasks x 50 episodes, H 200", needs_gpu=True),
    # grid_nav
    Comparison("grid_nav", "grid_nav", ("rl2",), (0,), (), "RL²'s preset: 500 iterations x 64 trials (1.9M env steps)",
               record_files={"rl2": "experiments/results/rl2_grid_nav.json"}),
    Comparison("grid_nav_bayes", "grid_nav",
               ("varibad", "task_inference", "rl2", "belief_oracle=varibad --varibad.policy-input task"), (0, 1, 2),
               (), "1.9M env steps each: RL²'s preset (500 x 64 trials), VariBAD's and task inference's (2,000 x 16)"),
    Comparison("grid_nav_varibad_authors", "grid_nav", ("varibad",), (0,),
               ("--meta-iters", "20833", "--eval-every", "2000", "--checkpoint-every", "1000",
                "--varibad.subsample-elbos", "0", "--varibad.subsample-decodes", "0", "--varibad.policy-layers", "32",
                "--varibad.obs-embed", "16", "--varibad.context-embed", "16", "--varibad.lr", "7e-4",
                "--varibad.ppo-epochs", "2", "--varibad.clip-eps", "0.05", "--varibad.value-clip-eps", "0.05"),
               "the authors' GridNavi settings at their full budget, 2e7 env steps (70 min on one CPU core)",
               record_files={"varibad": "experiments/results/varibad_grid_nav_authors_2e7.json"}),
    Comparison("grid_nav_dream", "grid_nav", ("dream",), (0,), (),
               "DREAM's grid_nav preset: 1,000 iterations x 64 tasks x (15 + 15) steps (1.9M env steps)"),
    # bandit
    Comparison("bandit", "bandit", ("rl2",), (0,), (), "RL²'s preset: 1,000 iterations x 128 trials of 10 pulls",
               record_files={"rl2": "experiments/results/rl2_bandit.json"}),
    # maze2d
    Comparison("maze2d_small", "maze2d", ("dream", "erl2", "rl2", "varibad"), (0, 1, 2), ("--env-variant", "small"),
               "the maze2d:small presets: 400 iterations x 32 tasks x 2 x 50 steps (1.3M env steps)"),
    Comparison("maze2d", "maze2d", ("dream", "erl2", "rl2"), (0,), (),
               "the maze2d presets: 600 iterations x 32 tasks x 2 x 200 steps (7.7M env steps)"),
    # pixel envs
    Comparison("maze3d_small", "maze3d",
               ("dream=dream --dream.hidden-size 64 --dream.embed-size 32 --dream.decoder-uses-reward "
                "--dream.entropy-coef 0.03 --dream.no-normalize-advantages",
                "erl2=erl2 " + _MAZE_RL2.format("erl2"), "rl2=rl2 " + _MAZE_RL2.format("rl2")),
               (0, 1, 2), _MAZE_SMALL_RUN,
               "the maze2d:small presets' settings and budget on the pixels (1.3M frames of 64 x 48; maze3d has no "
               "preset of its own, IMPORT's budget is not public)", needs_gpu=True),
    Comparison("visual_nav", "visual_nav", ("dream",), (0, 1, 2), (),
               "DREAM's visual_nav preset: 2,000 iterations x 16 tasks x (20 + 20) steps (1.3M frames, a quarter of "
               "the authors' cap; 15-17 frames/s on the 2-core CPU)", needs_gpu=True),
)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GRID_DIR = os.path.join(HERE, "results", "grid")
README = os.path.join(REPO, "README.md")
START, END = "<!-- results-grid:start -->", "<!-- results-grid:end -->"
#: Options of a run's command that name the run, not its configuration.
_IDENTITY = {"--algo": 1, "--env": 1, "--seed": 1, "--logdir": 1, "--run-name": 1, "--no-progress": 0, "--no-report": 0,
             "--no-tensorboard": 0}
STATS_NOTE = ("Mean over seeds ± the 95% confidence interval over seeds (Student t, `t_{0.975, n-1} sd / sqrt(n)`); "
              "with one seed no CI is available. IQM: the interquartile mean of the held-out return (or success) "
              "over all seeds x held-out tasks, with its 95% stratified-bootstrap CI (percentile; seeds resampled "
              "within each held-out task; 2,000 resamples, RNG seed 0), reported from 5 seeds on (`n < 5` "
              "otherwise). Computed by `jmeta.stats` with numpy/scipy: the rliable library installs "
              "(1.2.0, with numpy 2.4.6 and scipy 1.17.1) but `from rliable import library` fails with pandas 3.1.1 "
              "(`TypeError: deprecate_kwarg() missing 1 required positional argument: 'new_arg_name'`, raised in "
              "its dependency arch 7.2.0); it works only with `pandas<3` pinned.")


class RecordError(ValueError):
    """A record file that cannot be tabled (one line, naming the file)."""


def _rel(path: str) -> str:
    """``path`` relative to the repository root, with forward slashes (as given when outside it)."""
    rel = os.path.relpath(os.path.abspath(path), REPO)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def parse_algos(entry: Comparison) -> dict[str, tuple[str, list[str]]]:
    """label -> (algorithm, its own flags), as compare.py reads ``--algos``."""
    return dict(compare.parse_entry(a) for a in entry.algos)


def tag(entry: Comparison) -> str:
    """compare.py's ``--tag`` of ``entry`` (its stem without the env prefix)."""
    if entry.stem == entry.env:
        return ""
    if not entry.stem.startswith(entry.env + "_"):
        raise ValueError(f"grid: stem {entry.stem!r} does not start with its env {entry.env!r}")
    return entry.stem[len(entry.env) + 1:]


def compare_command(entry: Comparison) -> str:
    """The compare.py command line that runs ``entry`` (what the README's subsections quote)."""
    parts = ["python", "experiments/compare.py", "--env", entry.env, "--algos",
             *(shlex.quote(a) for a in entry.algos), "--seeds", *map(str, entry.seeds)]
    if tag(entry):
        parts += ["--tag", tag(entry)]
    if entry.flags:
        parts += ["--", *entry.flags]
    return " ".join(parts)


def train_command(entry: Comparison, label: str, seed: int, logdir: str = "runs/compare") -> str:
    """The ``python -m jmeta.train`` command compare.py would run for (``label``, ``seed``); the run name's
    timestamp is left as ``<time>``."""
    algo, own = parse_algos(entry)[label]
    logdir = entry.logdir or logdir
    return " ".join(["python -m jmeta.train --algo", algo, "--env", entry.env, "--seed", str(seed), "--logdir", logdir,
                     "--run-name", f"{entry.stem}__{label}__seed{seed}__<time>", "--no-progress",
                     *entry.flags, *own])


def recorded_flags(command: str) -> list[str]:
    """The configuration flags of a recorded ``python -m jmeta.train ...`` command: its options without
    the program and the run's identity (``--algo``, ``--env``, ``--seed``, ``--logdir``, ...)."""
    tokens = shlex.split(command)
    start = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
    flags, i = [], start
    while i < len(tokens):
        if tokens[i] in _IDENTITY:
            i += 1 + _IDENTITY[tokens[i]]
            continue
        flags.append(tokens[i])
        i += 1
    return flags


# ---------------------------------------------------------------------------------------------------
# Records


def _check(condition: bool, path: str, problem: str) -> None:
    if not condition:
        raise RecordError(f"{_rel(path)}: {problem}")


def _finite_matrix(value, path: str, name: str, columns: int) -> None:
    """Refuses ``value`` unless it is a finite [rows, columns] number matrix."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordError(f"{_rel(path)}: {name} is not a matrix of numbers") from None
    _check(array.ndim == 2 and array.shape[1] == columns and array.shape[0] >= 1, path,
           f"{name} must be [tasks, {columns}], got shape {array.shape}")
    _check(bool(np.isfinite(array).all()), path, f"{name} has non-finite values")


def validate_record(record: object, path: str) -> dict:
    """Checks one run's record (``seed``, ``command``, ``eval.axis``, ``eval.mean`` [K + 1] finite numbers,
    optional ``eval.per_task`` and ``eval.extras.success`` [T, K + 1], optional ``wall_s``); returns it or
    raises :class:`RecordError` naming ``path``."""
    _check(isinstance(record, dict), path, "a record must be a JSON object")
    for key in ("seed", "command", "eval"):
        _check(key in record, path, f"missing {key!r}")
    _check(isinstance(record["seed"], int), path, f"seed must be an integer, got {record['seed']!r}")
    _check(isinstance(record["command"], str), path, "command must be a string")
    evaluation = record["eval"]
    _check(isinstance(evaluation, dict), path, "eval must be an object (the run's eval.json)")
    for key in ("axis", "mean"):
        _check(key in evaluation, path, f"eval has no {key!r}")
    mean = evaluation["mean"]
    _check(isinstance(mean, list) and len(mean) >= 1
           and all(isinstance(m, int | float) and not isinstance(m, bool) for m in mean), path,
           "eval.mean must be a non-empty list of numbers")
    _check(bool(np.isfinite(mean).all()), path, "eval.mean has non-finite values")
    if "per_task" in evaluation:
        _finite_matrix(evaluation["per_task"], path, "eval.per_task", len(mean))
    success = (evaluation.get("extras") or {}).get("success")
    if success is not None:
        _finite_matrix(success, path, "eval.extras.success", len(mean))
    wall = record.get("wall_s")
    _check(wall is None or (isinstance(wall, int | float) and wall >= 0), path, f"wall_s must be >= 0, got {wall!r}")
    return record


def read_records(path: str) -> list[dict]:
    """The validated run records of one file: a compare.py record, a reproduce.py summary (``runs``), or a
    single run's record written by another script (``command`` + ``eval``; seed from its ``--seed``, else 0).
    Every record gets ``source`` (the file, repository-relative)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise RecordError(f"{_rel(path)}: not valid JSON ({e.msg}, line {e.lineno})") from None
    _check(isinstance(data, dict), path, "a record must be a JSON object")
    if "runs" in data:
        _check(isinstance(data["runs"], list) and data["runs"] and all(isinstance(r, dict) for r in data["runs"]),
               path, "runs must be a non-empty list of objects")
        runs = [dict(r) for r in data["runs"]]
    elif "seed" not in data and isinstance(data.get("command"), str):
        match = re.search(r"--seed[ =](\d+)", data["command"])
        runs = [{**data, "seed": int(match.group(1)) if match else 0}]
    else:
        runs = [dict(data)]
    return [{**validate_record(r, path), "source": _rel(path)} for r in runs]


def entry_records(entry: Comparison, rerun: bool = False) -> tuple[dict[str, list[dict]], list[tuple[str, int]]]:
    """The records of ``entry`` (label -> records, in seed order) and its missing (label, seed) pairs. A record
    in compare.py's store wins over one in ``record_files``; ``rerun`` counts every pair as missing."""
    found: dict[str, list[dict]] = {}
    missing: list[tuple[str, int]] = []
    for label in parse_algos(entry):
        extra = []
        if label in entry.record_files and os.path.exists(os.path.join(REPO, entry.record_files[label])):
            extra = read_records(os.path.join(REPO, entry.record_files[label]))
        runs = []
        for seed in entry.seeds:
            path = compare.record_path(entry.stem, label, seed)
            stored = read_records(path) if os.path.exists(path) else [r for r in extra if r["seed"] == seed][:1]
            if stored and not rerun:
                runs += stored
            else:
                missing.append((label, seed))
        if runs:
            found[label] = runs
    return found, missing


# ---------------------------------------------------------------------------------------------------
# Summaries


def _seed_stats(per_seed: np.ndarray, scores: np.ndarray, digits: int) -> dict:
    """Mean ± CI over seeds of ``per_seed`` [S] and the IQM of ``scores`` [S, T] (from 5 seeds)."""
    mean, half = mean_ci95(per_seed)
    iqm = iqm_with_ci(scores)
    return {"mean": round(float(mean), digits), "ci95": None if half is None else round(float(half), digits),
            "per_seed": [round(float(v), digits) for v in per_seed],
            "iqm": None if iqm is None else {"iqm": round(iqm["iqm"], digits),
                                             "ci95": [round(v, digits) for v in iqm["ci95"]]}}


def summarize_algorithm(records: list[dict], label: str) -> dict:
    """Per-(comparison, algorithm) summary of ``records`` (one per seed): the return (and success) at the
    first and the last point of the adaptation axis, over seeds; raises RecordError if the seeds disagree."""
    first = records[0]
    points = len(first["eval"]["mean"])
    for r in records:
        _check(len(r["eval"]["mean"]) == points and r["eval"]["axis"] == first["eval"]["axis"],
               os.path.join(REPO, r["source"]), f"{label}: its adaptation axis differs from {first['source']}'s")
    per_seed = np.array([r["eval"]["mean"] for r in records], dtype=np.float64)  # [S, K + 1]
    tasks = {np.shape(r["eval"].get("per_task")) for r in records}
    if len(tasks) == 1 and all("per_task" in r["eval"] for r in records):
        scores = np.array([r["eval"]["per_task"] for r in records], dtype=np.float64)  # [S, T, K + 1]
    else:  # a record without per-task returns: one stratum, the per-seed means
        scores = per_seed[:, None, :]
    out = {"algo": _algo_of(first), "seeds": [r["seed"] for r in records], "n": len(records),
           "axis": first["eval"]["axis"], "last": points - 1,
           "num_tasks": first["eval"].get("num_tasks"),
           "return": {"before": _seed_stats(per_seed[:, 0], scores[:, :, 0], 3),
                      "after": _seed_stats(per_seed[:, -1], scores[:, :, -1], 3)}}
    successes = [(r["eval"].get("extras") or {}).get("success") for r in records]
    if all(s is not None for s in successes):
        success = np.array(successes, dtype=np.float64)  # [S, T, K + 1]
        out["success"] = {"before": _seed_stats(success[:, :, 0].mean(1), success[:, :, 0], 4),
                          "after": _seed_stats(success[:, :, -1].mean(1), success[:, :, -1], 4)}
    walls = [r.get("wall_s") for r in records]
    out["wall_s_mean"] = None if any(w is None for w in walls) else round(float(np.mean(walls)), 1)
    out["commands"] = [r["command"] for r in records]
    out["sources"] = [r["source"] for r in records]
    hosts = {_host(r) for r in records} - {None}
    out["hosts"] = sorted(hosts)
    out["env_ids"] = sorted({r.get("env_id") or ENV_ID_UNRECORDED for r in records})
    return out


#: How a record that predates ``env_id`` in the records shows its env definition.
ENV_ID_UNRECORDED = "env version not recorded"


def _algo_of(record: dict) -> str | None:
    """The algorithm of a record: its ``algo`` field, else ``--algo`` of its command."""
    match = re.search(r"--algo[ =](\S+)", record["command"])
    return record.get("algo") or (match.group(1) if match else None)


def _host(record: dict) -> str | None:
    """A short description of the machine a record ran on, where recorded."""
    host = record.get("host")
    if isinstance(host, dict):
        return f"{host.get('processor') or host.get('machine')}, {host.get('cpus')} CPUs"
    if isinstance(record.get("machine"), str):
        return record["machine"]
    if isinstance(record.get("devices"), list | str):
        return str(record["devices"])
    return None


def summarize_entry(entry: Comparison) -> dict:
    """The summary of one comparison from the records on disk (nothing is run)."""
    found, missing = entry_records(entry)
    entries = parse_algos(entry)
    algorithms, flag_notes = {}, []
    for label, records in found.items():
        algorithms[label] = summarize_algorithm(records, label)
        declared = recorded_flags(shlex.join(["python", *entry.flags, *entries[label][1]]))  # same filter
        differing: dict[str, list[int]] = {}
        for r in records:
            if recorded_flags(r["command"]) != declared:
                differing.setdefault(" ".join(recorded_flags(r["command"])), []).append(r["seed"])
        flag_notes += [f"`{label}` seed(s) {', '.join(map(str, seeds))} ran with "
                       f"{f'`{flags}`' if flags else 'no flags'} (declared: `{' '.join(declared) or 'none'}`)"
                       for flags, seeds in differing.items()]
    env_ids = sorted({i for a in algorithms.values() for i in a["env_ids"]})
    env_notes = []
    if len(env_ids) > 1:
        env_notes.append("the records span env definitions " + ", ".join(f"`{i}`" for i in env_ids)
                          + " (an env's version changes when its returns change): rerun the older ones")
    if not found:
        status = "not yet run (needs a GPU)" if entry.needs_gpu else "not yet run"
    else:
        status = "partial" if missing else "complete"
    return {"stem": entry.stem, "env": entry.env, "needs_gpu": entry.needs_gpu, "budget": entry.budget,
            "status": status, "compare_command": compare_command(entry),
            "grid_command": f"python experiments/grid.py{' --include-gpu' if entry.needs_gpu else ''} --only "
                            f"{entry.stem}",
            "missing": [{"label": label, "seed": seed, "command": train_command(entry, label, seed)}
                        for label, seed in missing],
            "flag_notes": flag_notes, "env_notes": env_notes, "algorithms": algorithms}


def summarize_grid(grid: tuple[Comparison, ...] = GRID) -> dict[str, list[dict]]:
    """env -> the summaries of its comparisons (in grid order)."""
    by_env: dict[str, list[dict]] = {}
    for entry in grid:
        by_env.setdefault(entry.env, []).append(summarize_entry(entry))
    return by_env


# ---------------------------------------------------------------------------------------------------
# Tables


def fmt_mean_ci(stat: dict, digits: int) -> str:
    """``"m ± h"``, or ``"m (1 seed, no CI)"`` when the CI is not available."""
    if stat["ci95"] is None:
        return f"{stat['mean']:.{digits}f} (1 seed, no CI)"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def fmt_iqm(stat: dict, digits: int) -> str:
    """``"iqm [lo, hi]"``, or ``"n < 5"`` when there are too few seeds for an IQM."""
    if stat["iqm"] is None:
        return "n < 5"
    lo, hi = stat["iqm"]["ci95"]
    return f"{stat['iqm']['iqm']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _axis(a: dict) -> str:
    return f"{a['axis']} 0 → {a['last']}"


def _wall(a: dict) -> str:
    return "n/a" if a["wall_s_mean"] is None else f"{a['wall_s_mean']:,.0f} s"


def env_markdown(env: str, summaries: list[dict]) -> str:
    """The per-env results table (Markdown) of ``summaries``."""
    lines = [f"# Results grid: `{env}`", "",
             "Generated by `python experiments/grid.py --summarize-only` from the per-run records named below; do "
             "not edit by hand. Held-out return (and success rate where the env reports it) before adaptation "
             "(the first point of the adaptation axis: step 0, or a trial's first episode) and after the last "
             "adaptation step or episode.", ""]
    for s in summaries:
        where = "needs a GPU" if s["needs_gpu"] else "CPU"
        lines += [f"## `{s['stem']}` ({where}): {s['status']}", "", f"Budget: {s['budget']}.", "",
                  f"Command: `{s['compare_command']}` (or `{s['grid_command']}`)", ""]
        if s["algorithms"]:
            lines += ["| algorithm | measure | seeds | axis | before adaptation | after adaptation | IQM before "
                      "[95% CI] | IQM after [95% CI] | wall-clock per run |", "|---" * 9 + "|"]
            for label, a in s["algorithms"].items():
                name = f"`{label}`" if label == a["algo"] else f"`{label}` ({a['algo']})"
                for measure, digits in (("return", 2), ("success", 3)):
                    if measure not in a:
                        continue
                    b, e = a[measure]["before"], a[measure]["after"]
                    lines.append(f"| {name} | {measure} | {a['n']} | {_axis(a)} | {fmt_mean_ci(b, digits)} | "
                                 f"{fmt_mean_ci(e, digits)} | {fmt_iqm(b, digits)} | {fmt_iqm(e, digits)} | "
                                 f"{_wall(a) if measure == 'return' else ''} |")
            lines.append("")
            hosts = sorted({h for a in s["algorithms"].values() for h in a["hosts"]})
            if hosts:
                lines += [f"Machine: {'; '.join(hosts)}.", ""]
            env_ids = sorted({i for a in s["algorithms"].values() for i in a.get("env_ids", [])})
            if env_ids:
                lines += [f"Env: {', '.join(f'`{i}`' for i in env_ids)}.", ""]
            lines += ["Records and the exact commands of their runs:", ""]
            lines += [f"- `{src}`: `{c}`" for a in s["algorithms"].values()
                      for src, c in zip(a["sources"], a["commands"], strict=True)] + [""]
            if s["flag_notes"]:
                lines += ["Recorded flags that differ from the declared ones: " + "; ".join(s["flag_notes"]) + ".", ""]
            if s.get("env_notes"):
                lines += ["Warning: " + "; ".join(s["env_notes"]) + ".", ""]
        if s["missing"]:
            head = "Not yet run (needs a GPU)" if s["needs_gpu"] else "Not yet run"
            lines += [f"{head}, the runs compare.py would start:", ""]
            lines += [f"    {m['command']}" for m in s["missing"]] + [""]
    lines += ["---", "", STATS_NOTE, ""]
    return "\n".join(lines)


def env_json(env: str, summaries: list[dict]) -> dict:
    """The per-env results (the numbers of :func:`env_markdown`) as one JSON object."""
    return {"env": env, "generated_by": "python experiments/grid.py --summarize-only", "statistics": STATS_NOTE,
            "comparisons": summaries}


def readme_block(by_env: dict[str, list[dict]]) -> str:
    """The README's generated results summary (without the marker lines): a compact table per env and the
    GPU runs not yet run."""
    links = ", ".join(f"[`{env}`](experiments/results/grid/{env}.md)" for env in by_env)
    lines = ["<!-- generated by `python experiments/grid.py --summarize-only --readme` from the per-run records; "
             "do not edit by hand -->", "",
             "**Every comparison at a glance** (declared in `experiments/grid.py`): held-out return before "
             "adaptation → after the last adaptation step or episode, mean over seeds ± the 95% confidence interval "
             "over seeds (Student t; one seed: no CI). Per-env tables with success rates, IQMs (from 5 seeds), "
             f"wall-clock and the exact commands: {links}. The subsections below discuss each comparison.", ""]
    gpu = []
    for env, summaries in by_env.items():
        rows = []
        for s in summaries:
            for label, a in s["algorithms"].items():
                b, e = a["return"]["before"], a["return"]["after"]
                before_after = (f"{b['mean']:.2f} → {e['mean']:.2f} (1 seed, no CI)" if e["ci95"] is None
                                else f"{fmt_mean_ci(b, 2)} → {fmt_mean_ci(e, 2)}")
                partial = " (partial)" if s["status"] == "partial" else ""
                rows.append(f"| `{s['stem']}`{partial} | `{label}` | {a['n']} | {_axis(a)} | {before_after} |")
            if s["needs_gpu"] and s["missing"]:
                gpu.append(s)
        if rows:
            lines += [f"**`{env}`** ([table](experiments/results/grid/{env}.md))", "",
                      "| comparison | algorithm | seeds | axis | return before → after (95% CI) |",
                      "|---|---|---|---|---|", *rows, ""]
        else:
            lines += [f"**`{env}`** ([table](experiments/results/grid/{env}.md)): no result yet.", ""]
    if gpu:
        lines += ["GPU runs not yet run (`python experiments/grid.py --include-gpu --only STEM` on a machine with an "
                  "accelerator):", ""]
        lines += [f"- `{s['stem']}`: {s['budget']}. `{s['compare_command']}`" for s in gpu]
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def readme_section(text: str) -> tuple[int, int]:
    """The character span of the generated block of README ``text`` (between the marker lines)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start or text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"README.md: expected one {START} line followed by one {END} line")
    return start + len(START) + 1, end


def rewrite_readme(block: str, path: str = README) -> bool:
    """Replaces the text between the markers of ``path`` with ``block``; returns whether it changed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = readme_section(text)
    new = text[:start] + block + "\n" + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text


def write_tables(by_env: dict[str, list[dict]], out_dir: str = GRID_DIR) -> list[str]:
    """Writes ``{env}.md`` and ``{env}.json`` per env into ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for env, summaries in by_env.items():
        for ext, text in (("md", env_markdown(env, summaries)),
                          ("json", json.dumps(env_json(env, summaries), indent=2, ensure_ascii=False) + "\n")):
            path = os.path.join(out_dir, f"{env}.{ext}")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------
# Running


def select(only: list[str] | None, grid: tuple[Comparison, ...] = GRID) -> tuple[Comparison, ...]:
    """The entries named in ``only`` (all when None); an unknown stem is refused."""
    if not only:
        return grid
    stems = {e.stem for e in grid}
    unknown = [s for s in only if s not in stems]
    if unknown:
        raise SystemExit(f"grid: unknown stem(s) {', '.join(unknown)}; known: {', '.join(sorted(stems))}")
    return tuple(e for e in grid if e.stem in only)


def _load_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_missing(entry: Comparison, rerun: bool, logdir: str) -> list[dict]:
    """Runs ``entry``'s missing seeds (seed-major) through compare.py's machinery; returns the failed runs.
    Rebuilds compare.py's own summary of the entry when every label has a record in its store."""
    _, missing = entry_records(entry, rerun=rerun)
    entries = parse_algos(entry)
    failures = []
    for seed in entry.seeds:
        for label, (algo, own) in entries.items():
            if (label, seed) in missing:
                run_logdir = entry.logdir or logdir  # relative: grid.py runs from the repository root
                record = compare.run_and_store(label, algo, entry.env, seed, entry.stem, run_logdir,
                                               [*entry.flags, *own])
                if "failed" in record:
                    failures.append(record)
    if missing:
        paths = {label: [compare.record_path(entry.stem, label, s) for s in entry.seeds] for label in entries}
        store = {label: [_load_json(p) for p in ps if os.path.exists(p)] for label, ps in paths.items()}
        if all(store.values()):
            compare.summarize(store, entry.env, entry.stem)
    return failures


def dry_run(entries: tuple[Comparison, ...], include_gpu: bool, rerun: bool) -> list[str]:
    """What a run of ``entries`` would do: per entry its cached records and the commands it would run."""
    lines = []
    for entry in entries:
        found, missing = entry_records(entry, rerun=rerun)
        runs = not entry.needs_gpu or include_gpu
        kind = "needs a GPU" + ("" if include_gpu else ", skipped without --include-gpu") if entry.needs_gpu else "CPU"
        lines.append(f"{entry.stem} ({kind}): {sum(map(len, found.values()))} cached, {len(missing)} missing")
        lines += [f"  cached: {r['source']}" for rs in found.values() for r in rs]
        lines += [f"  {'would run' if runs else 'not run'}: {train_command(entry, label, seed)}"
                  for label, seed in missing]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="STEM", help="restrict to these comparisons")
    parser.add_argument("--dry-run", action="store_true", help="print the cached records and the commands that "
                        "would run; run nothing, write nothing")
    parser.add_argument("--summarize-only", action="store_true", help="only table the records that exist")
    parser.add_argument("--readme", action="store_true", help="also rewrite README.md's generated results block")
    parser.add_argument("--include-gpu", action="store_true", help="also run the entries that need a GPU")
    parser.add_argument("--rerun", action="store_true", help="run again even where a record exists")
    parser.add_argument("--logdir", default="runs/compare")
    args = parser.parse_args(argv)
    entries = select(args.only)
    if args.dry_run:
        print("\n".join(dry_run(entries, args.include_gpu, args.rerun)))
        return
    failures = []
    if not args.summarize_only:
        for entry in entries:
            if entry.needs_gpu and not args.include_gpu:
                print(f"{entry.stem}: needs a GPU, skipped (--include-gpu runs it)", flush=True)
                continue
            failures += run_missing(entry, args.rerun, args.logdir)
    by_env = summarize_grid()  # the tables always cover the whole grid
    for path in write_tables(by_env):
        print(f"wrote {_rel(path)}")
    if args.readme:
        changed = rewrite_readme(readme_block(by_env))
        print(f"README.md results block {'rewritten' if changed else 'already up to date'}")
    if failures:
        sys.exit("grid: runs that did not finish: " + ", ".join(f"{r['label']} seed {r['seed']}" for r in failures))


if __name__ == "__main__":
    main()
