"""Test configuration: CPU-safe XLA flags and a persistent compilation cache, set before JAX starts.

``jmeta._xla_flags`` only touches ``os.environ``. It is loaded from its file so that the flags are
in place before anything (including ``jmeta/__init__``) imports JAX.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys


def _load_xla_flags():
    if "jmeta._xla_flags" in sys.modules:
        return sys.modules["jmeta._xla_flags"]
    spec = importlib.util.find_spec("jmeta")
    assert spec is not None and spec.submodule_search_locations, "jmeta is not installed"
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "_xla_flags.py"
    mod_spec = importlib.util.spec_from_file_location("_jmeta_xla_flags_for_tests", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


_xla_flags = _load_xla_flags()
_xla_flags.configure_cpu_flags()

#: Most tests compile far more than they compute (tiny configs, a few env steps), so the suite runs
#: with XLA's backend optimisations off: compiles are about 40% faster (measured on 2 cores: the
#: trainer and MAML tests went from 130 s to 82 s) and the arithmetic is the same float32 program.
#: Set JMETA_TEST_OPTIMIZED=1 to test with the default optimisation level instead.
FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
if os.environ.get("JMETA_TEST_OPTIMIZED", "") != "1":
    _present = {flag.split("=")[0] for flag in os.environ.get("XLA_FLAGS", "").split()}
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), *(f for f in FAST_COMPILE_FLAGS if f.split("=")[0] not in _present)]
    ).strip()

_REPO = pathlib.Path(__file__).resolve().parents[1]
_xla_flags.enable_compilation_cache(
    os.environ.get("JMETA_COMPILATION_CACHE") or str(_REPO / ".jax_cache" / "tests")
)

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture(autouse=True)
def _optimized_hot_paths_for_learning_tests(request, monkeypatch):
    """Learning tests (marked ``slow``) compile the trainer's meta-iterations and evaluations with
    XLA's default optimisation level: they run long loops, which execute about 3x faster optimised,
    while every other program of the suite compiles with optimisations off (see above)."""
    if request.node.get_closest_marker("slow") is not None and os.environ.get("JMETA_TEST_OPTIMIZED", "") != "1":
        monkeypatch.setenv("JMETA_HOT_PATH_OPT_LEVEL", "3")


def pytest_collection_modifyitems(config, items):
    """Tiers and order.

    Tests marked ``extended`` (second seeds, long learning runs, heavy parity tests) are skipped
    unless the ``-m`` expression names them (``python -m pytest -n 2 -m extended``); so are the
    notebook executions (``-m notebooks``; .ci/run runs that tier after the default one).
    Long tests (marked ``slow``) run first: with ``-n 2`` they start at once on both workers and
    the many short tests fill in around them, instead of a long test starting last.
    """
    for tier, how in (("extended", "-m extended"), ("notebooks", "-m notebooks (.ci/run does)")):
        if tier not in (config.getoption("-m") or ""):
            skip = pytest.mark.skip(reason=f"{tier} tier: run with {how}")
            for item in items:
                if item.get_closest_marker(tier) is not None:
                    item.add_marker(skip)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
