"""Packaging: every env has a card, the MJCF models and task-set data resolve and ship in the wheel,
the CPU XLA flags are appended safely."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import pytest

from jmeta._xla_flags import CPU_SAFE_FLAGS, configure_cpu_flags
from jmeta.envs.mujoco import locomotion, maesn
from jmeta.envs.mujoco.assets import DATA_DIR, MODELS_DIR, data_path, model_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_env_has_a_card():
    import jmeta

    for name in jmeta.list_envs():
        with open(os.path.join(REPO, "docs", "envs", f"{name}.md"), encoding="utf-8") as f:
            text = f.read()
        assert "Source" in text or "source" in text
    assert not os.path.exists(os.path.join(REPO, "envs")), "env cards live in docs/envs, models in the package"


#: Every MJCF model an env loads.
MODELS = sorted({*locomotion.ROBOTS.values(), *(cls.XML for cls in maesn.ENV_CLASSES.values())})


def test_models_resolve_inside_the_package():
    assert MODELS == sorted(f for f in os.listdir(MODELS_DIR) if f.endswith(".xml"))
    for name in MODELS:
        path = model_path(name)
        assert os.path.isfile(path) and os.path.dirname(path) == MODELS_DIR
    with pytest.raises(FileNotFoundError, match="available: .*ant.xml"):
        model_path("nope.xml")
    assert os.path.dirname(data_path(maesn.AUTHORS_GOALS_FILE)) == DATA_DIR
    with pytest.raises(FileNotFoundError, match="available: .*maesn_goals.npz"):
        data_path("nope.npz")


def test_wheel_ships_env_models(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), REPO], capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "hatchling" in out.stderr:
        pytest.skip("hatchling is not installed in this environment (needed without build isolation)")
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith(".whl"))
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    for name in MODELS:
        assert f"jmeta/envs/mujoco/models/{name}" in names
    assert f"jmeta/envs/mujoco/data/{maesn.AUTHORS_GOALS_FILE}" in names  # MAESN's task sets
    assert "jmeta/train.py" in names and "jmeta/algos/maml.py" in names
    for module in ("envs/toy/point_nav", "envs/mujoco/physics", "envs/pixel/render", "envs/pixel/font",
                   "envs/pixel/maze_layouts", "baselines/toy", "baselines/maze", "baselines/visual_nav"):
        assert f"jmeta/{module}.py" in names
    assert not any(n.startswith("jmeta/_assets/") or n.endswith(".md") for n in names)  # cards stay in docs/


def test_cpu_flags_are_appended_not_overwritten():
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    flags = configure_cpu_flags(env)
    assert flags.startswith("--xla_dump_to=/tmp/x ") and all(f in flags for f in CPU_SAFE_FLAGS)
    assert configure_cpu_flags(env) == flags  # idempotent
    user = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert configure_cpu_flags(user) == "--xla_cpu_enable_concurrency_optimized_scheduler=true"  # user's choice kept
    assert configure_cpu_flags({}) == " ".join(CPU_SAFE_FLAGS)


def test_importing_jmeta_applies_the_cpu_flag():
    """A notebook that only does `import jmeta` gets the flag before JAX creates its backend."""
    import subprocess
    import sys

    code = ("import os; os.environ.pop('XLA_FLAGS', None); import jmeta, jax; jax.numpy.zeros(1).block_until_ready(); "
            "print(os.environ['XLA_FLAGS'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in out.stdout


@pytest.mark.timeout(180)
def test_batched_cholesky_in_jitted_scan_does_not_hang():
    """Regression guard for the JAX 0.10 CPU hang in batched Cholesky solves: the concurrency-optimised
    CPU scheduler stays off (jmeta._xla_flags)."""
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in os.environ.get("XLA_FLAGS", "")
    batch, dim = 1024, 6
    base = jax.random.normal(jax.random.key(0), (batch, dim, dim))
    spd = base @ jnp.swapaxes(base, -1, -2) + dim * jnp.eye(dim)

    @jax.jit
    def run(x):
        def body(v, _):
            chol = jnp.linalg.cholesky(spd)
            v = jax.scipy.linalg.cho_solve((chol, True), v[..., None])[..., 0]
            return v / jnp.linalg.norm(v, axis=-1, keepdims=True), None

        return jax.lax.scan(body, x, None, length=50)[0]

    out = run(jnp.ones((batch, dim)))
    assert out.shape == (batch, dim) and bool(jnp.all(jnp.isfinite(out)))
