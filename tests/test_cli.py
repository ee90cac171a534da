"""Command-line entry points: --help, a full tiny run, evaluation, bad input, README/CI agreement."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import jmeta
from _tiny import TINY_ARGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_help_documents_every_field():
    out = _run("jmeta.train", "--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for flag in ("--seed", "--meta-iters", "--meta-batch-size", "--logdir", "--resume", "--maml.inner-lr",
                 "--maml.first-order", "--maml.num-inner-steps", "--maml.outer"):
        assert flag in text, flag
    assert "Inner-loop step size" in text  # field docstrings become help text
    # The preset for (maml, point_nav) is what --help shows as defaults.
    assert re.search(r"--meta-batch-size INT[\s│]+Tasks sampled per meta-iteration\.[\s│]+\(default: 20\)", text)
    assert "--rl2." not in text  # only the chosen algorithm's fields
    flat = " ".join(text.replace("│", " ").split())  # the description is wrapped in a box
    assert "Environments (--env" in flat and "point_nav (default, pearl, pearl_sparse, semicircle, sparse)" in flat
    assert "maze2d (default, random_layout, small)" in flat and "Algorithms (--algo): cavia," in flat
    for flag in ("--wandb", "--wandb-mode", "--no-compilation-cache", "--no-report"):
        assert flag in text, flag
    out = _run("jmeta.train", "--algo", "rl2", "--env", "grid_nav", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--rl2.hidden-size", "--rl2.bptt-truncation", "--rl2.episodes-per-trial", "--rl2.num-minibatches"):
        assert flag in out.stdout, flag
    assert "--maml." not in out.stdout
    assert re.search(r"--meta-batch-size INT[\s│]+Tasks sampled per meta-iteration\.[\s│]+\(default: 64\)", out.stdout)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--maml.inner-lr", "-1"], "error: maml.inner_lr: must be > 0, got -1.0"),
        (["--env", "nope"], f"error: env: must be one of {jmeta.list_envs()}, got 'nope'"),
        (["--env-variant", "dense"], "error: env_variant: must be one of ['default', 'pearl', 'pearl_sparse', 'semicircle', 'sparse'] for point_nav, got 'dense'"),
        (["--meta-batch-size", "0"], "error: meta_batch_size: must be >= 1, got 0"),
        (["--maml.inner-lr", "inf"], "error: maml.inner_lr: must be finite, got inf"),
        (["--action-scale", "nan"], "error: action_scale: must be finite, got nan"),
        (["--maml.ppo-lr", "inf"], "error: maml.ppo_lr: must be finite, got inf"),  # unused with the TRPO outer step
        (["--maml.max-kl", "inf"], "error: maml.max_kl: must be finite, got inf"),
        (["--algo", "rl2", "--env", "grid_nav", "--rl2.reward-scale", "inf"], "error: rl2.reward_scale: must be finite, got inf"),
        (["--resume", ""], "error: resume: must be a run directory, got ''"),
        (["--seed", "99999999999999999999999"],
         "error: seed: must be in [0, 2**32 - 1] (JAX keys hold 32 bits), got 99999999999999999999999"),
        (["--seed", "-1"], "error: seed: must be in [0, 2**32 - 1] (JAX keys hold 32 bits), got -1"),
        (["--meta-iters", "99999999999"], "error: meta_iters: must be an integer in [-2147483648, 2147483647], got 99999999999"),
        (["--resume", "/nonexistent/run"], "error: /nonexistent/run is not a jmeta run directory (no config.json)"),
        (["--eval-env-set", "sparse"], "error: eval_env_set: 'sparse' must look like FIELD=VALUE"),
        (["--env-set", "goal_radius=-inf"],
         "error: env_set: point_nav.goal_radius cannot be set from '-inf' (type float)"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    out = _run("jmeta.train", *args, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip() and "warp" not in line.lower()]
    assert lines == [message]


def test_unusable_logdir_is_one_line_exit_2(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for logdir in (a_file, a_file / "below"):
        out = _run("jmeta.train", "--logdir", str(logdir), "--run-name", "r", timeout=120)
        lines = [line for line in out.stderr.splitlines() if line.strip() and "warp" not in line.lower()]
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert len(lines) == 1 and lines[0].startswith("error: logdir: cannot create the run directory"), lines


def test_unknown_algorithm_lists_choices():
    out = _run("jmeta.train", "--algo", "nope", timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "maml" in out.stderr


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(tmp_path):
    out = _run("jmeta.train", *TINY_ARGS, "--meta-iters", "2", "--eval-every", "1", "--logdir", str(tmp_path),
               "--run-name", "cli")
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "cli"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["meta_batch_size"] == 3 and config["maml"]["hidden_sizes"] == [16]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == [1, 2]
    assert all(r["perf/env_steps_per_s"] > 0 for r in train)
    assert any(r["kind"] == "eval" and "eval/return_step1" in r for r in records)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run_dir / "tensorboard"))
    for png in ("learning_curve.png", "adaptation_curve.png"):
        data = (run_dir / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert (run_dir / "checkpoints" / "2").is_dir()
    assert "step |" in out.stdout  # final evaluation table

    ev = _run("jmeta.evaluate", "--run", str(run_dir), "--num-tasks", "3", "--maml.eval-adapt-steps", "2")
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads((run_dir / "eval_2.json").read_text())
    assert result["num_tasks"] == 3 and len(result["mean"]) == 3  # steps 0, 1, 2
    assert (run_dir / "plots" / "adaptation_curve_2.png").is_file()

    # Changing the algorithm on resume is refused with the reason.
    bad = _run("jmeta.train", "--resume", str(run_dir), "--maml.inner-lr", "0.3", timeout=120)
    assert bad.returncode == 2 and "cannot change on resume" in bad.stderr

    missing = _run("jmeta.evaluate", "--run", str(tmp_path / "nope"), timeout=120)
    assert missing.returncode == 2 and "not a jmeta run directory" in missing.stderr




@pytest.mark.extended
def test_rl2_train_then_evaluate_per_episode(tmp_path):
    """Extended (25 s of two subprocess CLIs): the CLI round trip is the MAML test's, the per-episode
    axis is checked for every algorithm by the contract test, and RL²'s eval overrides by test_rl2."""
    args = ["--algo", "rl2", "--env", "grid_nav", "--env-horizon", "5", "--meta-iters", "2", "--meta-batch-size", "4",
            "--chunk-size", "1", "--eval-every", "1", "--eval-tasks", "3", "--rl2.hidden-size", "8",
            "--rl2.embed-sizes", "--rl2.head-sizes", "8", "--rl2.num-minibatches", "2", "--rl2.eval-trials-per-task", "2",
            "--no-progress", "--no-report", "--logdir", str(tmp_path), "--run-name", "rl2"]
    out = _run("jmeta.train", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "rl2"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "rl2" and config["rl2"]["embed_sizes"] == [] and config["rl2"]["head_sizes"] == [8]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == [1, 2]
    assert all(f"train/return_episode{k}" in train[-1] for k in range(4))
    assert train[-1]["env_steps"] == 2 * 4 * 4 * 5
    evals = [r for r in records if r["kind"] == "eval"]
    assert len(evals) == 3 and all(f"eval/return_episode{k}_se" in evals[-1] for k in range(4))
    assert "episode |" in out.stdout
    assert (run_dir / "plots" / "adaptation_curve.png").is_file()

    ev = _run("jmeta.evaluate", "--run", str(run_dir), "--rl2.eval-episodes", "6", "--rl2.eval-trials-per-task", "1")
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads((run_dir / "eval_2.json").read_text())
    assert result["axis"] == "episode" and result["num_tasks"] == 3 and len(result["mean"]) == 6
    bad = _run("jmeta.evaluate", "--run", str(run_dir), "--maml.eval-adapt-steps", "2", timeout=120)
    assert bad.returncode == 2 and "--maml.eval-adapt-steps" in bad.stderr  # not a setting of rl2 runs
    bad = _run("jmeta.evaluate", "--run", str(run_dir), "--rl2.eval-trials-per-task", "0", timeout=120)
    assert bad.returncode == 2 and "rl2.eval_trials_per_task: must be >= 1" in bad.stderr
    bad = _run("jmeta.train", "--algo", "rl2", "--env", "grid_nav", "--meta-batch-size", "6", timeout=120)
    assert bad.returncode == 2 and "rl2.num_minibatches: must divide meta_batch_size * trials_per_task = 6" in bad.stderr


def test_ci_runs_the_readme_commands():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    install = 'pip install -c requirements/ci-constraints.txt -e ".[dev]"'
    test = "python -m pytest -n 2"
    for command in (install, test):
        assert command in ci, command
        assert command in readme, command


def test_env_physics_flag_reaches_the_env_and_pure_jax_envs_refuse_it():
    from jmeta.config import TrainConfig
    from jmeta.errors import ConfigError

    assert TrainConfig(env="cheetah_vel", env_physics="mjx").env_overrides() == {"physics": "mjx"}
    assert TrainConfig(env="cheetah_vel").env_overrides() == {}
    with pytest.raises(ConfigError, match="physics"):
        jmeta.make("point_nav", **TrainConfig(env="point_nav", env_physics="mjx").env_overrides())
    with pytest.raises(ConfigError, match="env_physics.*point_nav is a pure-JAX env"):
        TrainConfig(env="point_nav", env_physics="mjx").validate()
    TrainConfig(env="cheetah_vel", env_physics="mjx").validate()
    with pytest.raises(ConfigError, match="action_scale"):
        TrainConfig(action_scale=0.0).validate()


def test_variant_preset_is_parsed_in_process():
    """`--env-variant` selects the (pearl, point_nav:pearl_sparse) preset, and flags override it (the
    whole train + evaluate subprocess round trip is the extended test below)."""
    from jmeta.errors import ConfigError
    from jmeta.train import parse_config
    from jmeta.trainer import build as trainer_build

    config = parse_config(["--algo", "pearl", "--env", "point_nav", "--env-variant", "pearl_sparse",
                           "--pearl.batch-size", "4"])
    assert config.env_variant == "pearl_sparse" and config.algo_config.kl_lambda == 1.0
    assert config.algo_config.discount == 0.9 and config.algo_config.num_tasks_sample == 10
    assert config.algo_config.batch_size == 4
    with pytest.raises(ConfigError, match="pearl: supports continuous action spaces only"):
        trainer_build(parse_config(["--algo", "pearl", "--env", "grid_nav"]))


@pytest.mark.extended
def test_pearl_variant_preset_train_then_evaluate(tmp_path):
    """`--env-variant` selects the (pearl, point_nav:pearl_sparse) preset; a tiny run trains and the
    meta-test reports every episode of the trial; a discrete env is refused in one line. Extended:
    the preset lookup is checked in process above, train + evaluate CLIs by the MAML and RL² tests."""
    args = ["--algo", "pearl", "--env", "point_nav", "--env-variant", "pearl_sparse", "--meta-iters", "2",
            "--meta-batch-size", "2", "--chunk-size", "1", "--eval-every", "0", "--eval-tasks", "2",
            "--pearl.hidden-sizes", "8", "--pearl.encoder-sizes", "8", "--pearl.num-initial-steps", "20",
            "--pearl.num-steps-prior", "20", "--pearl.num-steps-posterior", "20", "--pearl.num-train-steps-per-itr", "2",
            "--pearl.batch-size", "4", "--pearl.embedding-batch-size", "4", "--pearl.replay-capacity", "100",
            "--pearl.eval-episodes", "3", "--pearl.eval-exploration-episodes", "1", "--pearl.eval-runs-per-task", "1",
            "--no-progress", "--no-report", "--logdir", str(tmp_path), "--run-name", "pearl"]
    out = _run("jmeta.train", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    config = json.loads((tmp_path / "pearl" / "config.json").read_text())
    # The sparse preset's settings that the command line did not override.
    assert config["env_variant"] == "pearl_sparse" and config["pearl"]["kl_lambda"] == 1.0
    assert config["pearl"]["discount"] == 0.9 and config["pearl"]["num_tasks_sample"] == 10
    ev = _run("jmeta.evaluate", "--run", str(tmp_path / "pearl"), "--pearl.eval-episodes", "4")
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads((tmp_path / "pearl" / "eval_2.json").read_text())
    assert result["axis"] == "episode" and len(result["mean"]) == 4
    bad = _run("jmeta.train", "--algo", "pearl", "--env", "grid_nav", timeout=120)
    assert bad.returncode == 2 and "pearl: supports continuous action spaces only" in bad.stderr
