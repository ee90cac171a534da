"""What a run leaves for people to look at and to reproduce it: run_info.json, console.log, the
progress display, wandb (offline), the rollout viewers, the HTML report (checked in headless
Chromium), presets from Python, plots."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys

import jax
import pytest

import jmeta
from _tiny import tiny_config
from jmeta import plots, trainer
from jmeta.config import TrainConfig, preset_config
from jmeta.errors import ConfigError
from jmeta.logging import ConsoleLog, ProgressBar, format_duration, read_metrics
from jmeta.rollout import rollout_episodes


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny MAML run with everything on: TensorBoard, wandb offline, plots, report with viewers."""
    logdir = str(tmp_path_factory.mktemp("runs"))
    config = tiny_config(logdir, run_name="full", meta_iters=3, eval_every=2, tensorboard=True, plots=True,
                         report=True, wandb=True, wandb_mode="offline")
    result = trainer.train(config)
    return result.run_dir


def test_run_info_records_versions_git_command_and_env(finished_run):
    info = json.load(open(os.path.join(finished_run, "run_info.json"), encoding="utf-8"))
    session = info["sessions"][-1]
    for package in ("jax", "flax", "optax", "mujoco", "numpy"):
        assert session["packages"].get(package), package
    assert session["jmeta"] == jmeta.__version__
    assert "git" in session and (session["git"] is None or len(session["git"]["commit"]) == 40)
    assert session["devices"] and session["jax_backend"] == jax.default_backend()
    env = session["env"]
    assert env["env_id"].startswith("point_nav/default") and env["horizon"] == 10  # the override, as built
    assert env["params"]["horizon"] == 10 and env["wrappers"][0]["wrapper"] == "RescaleActions"


def test_console_log_holds_stages_and_evaluations(finished_run):
    text = open(os.path.join(finished_run, "console.log"), encoding="utf-8").read()
    for stage in ("compiling the meta-test", "compiling 2 meta-iterations", "training", "evaluating",
                  "saving checkpoint", "writing plots", "done"):
        assert stage in text, stage
    assert text.count("eval @ iteration") == 3  # 0, 2 and the final one, printed as they arrived
    assert "report: " in text  # the trainer's own print, copied from stdout


def test_perf_records_reach_every_logger(finished_run):
    records = read_metrics(os.path.join(finished_run, "metrics.jsonl"), "perf")
    assert any("perf/compile_s" in r for r in records) and any("perf/eval_compile_s" in r for r in records)
    events = glob.glob(os.path.join(finished_run, "tensorboard", "events.out.tfevents.*"))
    assert events and b"perf/compile_s" in open(events[0], "rb").read()
    wandb_files = glob.glob(os.path.join(finished_run, "wandb", "offline-run-*", "run-*.wandb"))
    assert wandb_files, os.listdir(os.path.join(finished_run, "wandb"))
    assert b"perf/compile_s" in open(wandb_files[0], "rb").read()


def test_report_embeds_curves_table_viewers_config_and_provenance(finished_run):
    text = open(os.path.join(finished_run, "report.html"), encoding="utf-8").read()
    assert "finished: 3 of 3 meta-iterations" in text
    assert "Meta-test at iteration 3 on 4 held-out tasks" in text
    assert text.count("data:image/png;base64,") >= 2 + 3  # two curves, three held-out tasks' paths
    index = json.load(open(os.path.join(finished_run, "viewers", "index.json"), encoding="utf-8"))
    assert index["labels"] == ["before adaptation", "after 1 inner step"]  # TINY: eval_adapt_steps 1
    assert [f["task"] for f in index["figures"]] == [0, 1, 2]
    assert "&quot;meta_iters&quot;: 3" in text and "mujoco" in text
    assert not any(tag in text for tag in ('src="http', "src='http", 'href="http', "@import"))  # all inline


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_loads_in_a_headless_browser_without_console_errors(finished_run):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it where it can)")
    url = "file://" + os.path.join(finished_run, "report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    logged = subprocess.run([browser, *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                            capture_output=True, text=True, timeout=120)
    assert logged.returncode == 0, logged.stderr[-2000:]
    console = [line for line in logged.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    body = logged.stdout[logged.stdout.index("<body"):].split(">", 1)[0]
    images = int(body.split('data-images="')[1].split('"')[0])
    shown = int(body.split('data-images-shown="')[1].split('"')[0])
    assert images >= 5 and shown == images, body


def test_report_cli_rewrites_the_page_and_refuses_a_non_run(finished_run, tmp_path, capsys):
    from jmeta import report

    os.remove(os.path.join(finished_run, "report.html"))
    assert report.main(["--run", finished_run, "--no-viewers"]) == 0
    assert os.path.exists(os.path.join(finished_run, "report.html"))
    assert report.main(["--run", str(tmp_path)]) == 2
    assert "is not a jmeta run directory" in capsys.readouterr().err


def test_visualize_refuses_what_it_cannot_draw(tmp_path, capsys):
    from jmeta import visualize

    assert visualize.main(["--run", str(tmp_path / "nope")]) == 2
    assert "not a jmeta run directory" in capsys.readouterr().err


# ------------------------------------------------------------------ the viewers' drawing, per env kind
def _random_rollout(env_name: str, variant: str = "default", points: int = 2, horizon: int | None = None, **kw):
    env, dist = jmeta.make(env_name, variant, **({"horizon": horizon} if horizon else {}), **kw)
    task = dist.sample(jax.random.key(0))
    space = env.spec.action_space

    def policy(params, obs, key):
        return space.sample(key), jax.numpy.zeros(())

    traj = jax.jit(lambda k: rollout_episodes(env, policy, None, task, k, points, next_obs=False, record_info=True,
                                              record_state=True))(jax.random.key(1))
    return env, jax.device_get(task), jax.device_get(traj)


@pytest.mark.parametrize("env_name,variant,kind", [
    ("point_nav", "default", "paths"), ("grid_nav", "default", "paths"), ("maze2d", "small", "paths"),
    ("bandit", "default", "rewards"), ("maze3d", "small", "frames"),
])
def test_viewers_draw_each_env_kind(tmp_path, env_name, variant, kind):
    from jmeta.visualize import draw_task

    env, task, traj = _random_rollout(env_name, variant, horizon=8 if env_name.startswith("maze") else None)
    figures = draw_task(env, task, traj, ("before adaptation", "after 1 inner step"), 0, str(tmp_path))
    assert figures[0].kind == kind
    for figure in figures:
        path = tmp_path / figure.file
        assert path.stat().st_size > 1000
    if kind == "frames":
        from PIL import Image

        assert Image.open(tmp_path / figures[1].file).n_frames == int(traj.mask.sum())  # every observation


# ------------------------------------------------------------------ progress, presets, plots, cache
def test_progress_lines_eta_and_stage_go_to_the_console_log(tmp_path, capsys):
    with ConsoleLog(str(tmp_path / "console.log")) as console:
        bar = ProgressBar(10, 0, True, "maml on point_nav", console)  # not a terminal: plain lines
        bar.stage("compiling 5 meta-iterations")
        bar.update(5, "pre -3.2 | post -1.1", 95.0)
        bar.message("eval @ iteration 5: ...")
        print("a warning the run printed", file=sys.stderr)
        bar.close()
    err = capsys.readouterr().err
    assert "[0/10] compiling 5 meta-iterations" in err and "[5/10] pre -3.2 | post -1.1 | ETA 1m35s" in err
    log = (tmp_path / "console.log").read_text()
    assert "ETA 1m35s" in log and "eval @ iteration 5" in log and "a warning the run printed" in log
    assert format_duration(4000) == "1h06m" and format_duration(3) == "3s"


def test_eta_counts_the_remaining_evaluations():
    eta = trainer._Eta(total=100, eval_every=20)
    assert eta.seconds_left(0) is None
    eta.chunk(10, 5.0)  # 0.5 s per iteration
    eta.evaluation(2.0)
    # 90 iterations left (45 s) + evaluations at 20, 40, 60, 80 and the final one (5 x 2 s)
    assert eta.seconds_left(10) == pytest.approx(45.0 + 10.0)


def test_from_preset_matches_the_command_line_and_checks_fields():
    config = TrainConfig.from_preset("maesn", "point_nav", meta_iters=7, algo_overrides={"inner_lr": 0.2})
    preset = preset_config("maesn", "point_nav")
    assert config.env_variant == preset.env_variant == "semicircle" and config.meta_iters == 7
    assert config.algo_config == dataclasses.replace(preset.algo_config, inner_lr=0.2)
    with pytest.raises(ConfigError, match="unknown run field.*nope"):
        TrainConfig.from_preset("maml", "point_nav", nope=1)
    with pytest.raises(ConfigError, match="maml: unknown field.*nope"):
        TrainConfig.from_preset("maml", "point_nav", algo_overrides={"nope": 1})


def test_learning_curve_labels_and_series():
    ten = {f"eval/return_episode{k}": 0.0 for k in range(10)}
    assert plots.eval_series_keys(ten) == ["eval/return_episode0", "eval/return_episode1", "eval/return_episode5",
                                           "eval/return_episode9"]
    assert plots.eval_label("eval/return_step0") == "held-out: before adaptation"
    assert plots.eval_label("eval/return_step2") == "held-out: after 2 steps"
    assert plots._segments([0, 50, 100, 400], 50.5) == [(0, 3), (3, 4)]  # no line across the gap


def test_compilation_cache_keeps_a_configured_directory_and_can_be_turned_off(monkeypatch):
    from jmeta import _xla_flags

    configured = jax.config.jax_compilation_cache_dir
    assert configured  # the test suite's own (tests/conftest.py)
    assert _xla_flags.enable_compilation_cache("/elsewhere") == configured
    monkeypatch.setenv("JMETA_COMPILATION_CACHE", "off")
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        assert _xla_flags.enable_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", configured)


def test_importing_mjx_prints_no_warp_noise():
    code = "from jmeta.envs.mujoco.physics import _mjx; _mjx()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "warp" not in out.stdout.lower(), out.stdout
