"""The layout of jmeta.envs: family subpackages that import on their own, envs that register
themselves, EnvSpec built from the params, and the scripted policies outside the envs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

import jmeta
from jmeta.envs.base import EnvSpec
from jmeta.envs.registry import _entry
from jmeta.spaces import Box, Discrete

#: The package root of the jmeta under test, so that subprocesses import the same code.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(jmeta.__file__)))

#: Entry points a user may import first; each must import in a fresh interpreter (no import cycle
#: that only works in one order) and leave every built-in env registered.
ISOLATED_MODULES = [
    "jmeta.envs.toy.point_nav",
    "jmeta.envs.toy.bandit",
    "jmeta.envs.mujoco.physics",
    "jmeta.envs.mujoco.common",
    "jmeta.envs.mujoco.maesn",
    "jmeta.envs.pixel.render",
    "jmeta.envs.pixel.font",
    "jmeta.envs.pixel.maze_layouts",
    "jmeta.envs.pixel.visual_nav",
    "jmeta.envs.registry",
    "jmeta.tasks",
    "jmeta.baselines.toy",
    "jmeta.baselines.maze",
    "jmeta.baselines.visual_nav",
]

#: Family subpackage of every built-in env.
FAMILIES = {
    "toy": {"point_nav", "grid_nav", "bandit", "tabular_mdp"},
    "mujoco": {"cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal", "wheeled_nav", "ant_goal_ring",
               "block_push"},
    "pixel": {"maze2d", "maze3d", "visual_nav"},
}


@pytest.mark.parametrize("module", ISOLATED_MODULES)
def test_module_imports_in_a_fresh_interpreter(module):
    code = (
        f"import importlib, sys; importlib.import_module({module!r}); import jmeta; "
        "print(' '.join(jmeta.list_envs()))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == jmeta.list_envs()


def test_each_family_module_registers_its_own_envs():
    assert set(jmeta.list_envs()) == set().union(*FAMILIES.values())
    for family, names in FAMILIES.items():
        for name in names:
            build = _entry(name).build
            module = getattr(build, "func", build).__module__
            assert module.startswith(f"jmeta.envs.{family}."), (name, module)


def test_registry_lists_no_env_by_hand():
    import jmeta.envs.registry as registry

    source = open(registry.__file__, encoding="utf-8").read()
    assert "_register_builtin" not in source
    for names in FAMILIES.values():
        for name in names:
            assert f'"{name}"' not in source, name


def test_scripted_policies_live_outside_envs():
    import jmeta.envs as envs

    root = os.path.dirname(envs.__file__)
    for dirpath, _, files in os.walk(root):
        for f in files:
            assert "polic" not in f, os.path.join(dirpath, f)
    assert not os.path.exists(os.path.join(root, "reference_policies.py"))


@dataclasses.dataclass(frozen=True)
class _Params:
    horizon: int = 7
    episodes_per_trial: int = 3


def test_spec_from_params_reads_horizon_episodes_and_source():
    obs, act = Box(0.0, 1.0, (2,)), Discrete(4)
    table = {"default": "repo a.py", "other": "repo b.py"}
    spec = EnvSpec.from_params("x", "other", _Params(), observation_space=obs, action_space=act, version="2",
                               source=table)
    assert spec == EnvSpec("x", "other", obs, act, 7, 3, "2", "repo b.py")
    assert spec.env_id == "x/other-v2"
    assert EnvSpec.from_params("x", "new", _Params(), observation_space=obs, action_space=act, version="2",
                               source=table).source == "repo a.py"
    assert EnvSpec.from_params("x", "v", _Params(horizon=1), observation_space=obs, action_space=act, version="1",
                               source="one").source == "one"


@pytest.mark.parametrize("name", jmeta.list_envs())
def test_every_env_spec_follows_its_params(name):
    for variant in jmeta.list_variants(name):
        env, _ = jmeta.make(name, variant, horizon=5)
        params = jmeta.envs.registry.variant_params(name, variant)
        assert (env.spec.name, env.spec.variant) == (name, variant)
        assert env.spec.horizon == 5 and env.spec.episodes_per_trial == params.episodes_per_trial
        assert env.spec.source and env.spec.version
