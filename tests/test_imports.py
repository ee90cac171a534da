"""The package's import structure: no cycles, no upward imports, every module importable on its own.

Layers, lowest first (a module may import its own layer and the ones below, never above):
  0. errors, validation, spaces, types, _xla_flags, stats
  1. envs (and tasks, which the env registry uses), networks, rl, sharding, distributed
  2. rollout, adaptation, baselines
  3. algos
  4. config, evaluation, checkpoint, logging, plots
  5. trainer, train, evaluate, cli_common
Module-level imports are checked statically (imports inside functions are deliberate late binding).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "jmeta"

LAYERS = {
    "errors": 0, "validation": 0, "spaces": 0, "types": 0, "_xla_flags": 0, "stats": 0,
    "envs": 1, "tasks": 1, "networks": 1, "rl": 1, "sharding": 1, "distributed": 1,
    "rollout": 2, "adaptation": 2, "baselines": 2, "viewers": 2, "interop": 2,
    "algos": 3,
    "config": 4, "evaluation": 4, "checkpoint": 4, "logging": 4, "plots": 4, "provenance": 4, "notebook": 4,
    "trainer": 5, "train": 5, "evaluate": 5, "cli_common": 5, "visualize": 5, "report": 5,
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: pathlib.Path) -> set[str]:
    """jmeta modules imported at module level (not inside functions or TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jmeta"):
            found.add(node.module)
            for alias in node.names:  # `from jmeta.envs import physics` imports a submodule
                candidate = f"{node.module}.{alias.name}"
                if (SRC.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                        (SRC.parent / candidate.replace(".", "/") / "__init__.py").exists():
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jmeta"))
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _top_level_imports(p) for p in SRC.rglob("*.py")}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    missing = sorted(m for m in _graph() if m != "jmeta" and _layer(m) is None)
    assert not missing, f"add these modules to LAYERS: {missing}"


def test_no_upward_imports():
    bad = []
    for module, imports in _graph().items():
        here = _layer(module)
        if here is None:
            continue
        for imported in imports:
            there = _layer(imported)
            if there is not None and there > here:
                bad.append(f"{module} (layer {here}) imports {imported} (layer {there})")
    assert not bad, "\n".join(sorted(bad))


def _is_package(module: str) -> bool:
    return (SRC.parent / module.replace(".", "/")).is_dir()


def test_no_import_cycles():
    """No cycle among modules (edges into package ``__init__`` files are ignored: a package imports
    its children, and ``from jmeta.envs import physics`` is an import of the child)."""
    graph = {m: {i for i in imports if not _is_package(i)} for m, imports in _graph().items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done or node not in graph:
            return None
        for nxt in sorted(graph[node]):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("group", [pytest.param("algos", marks=pytest.mark.extended), "core"])
def test_modules_import_in_a_fresh_interpreter(group):
    """Each algorithm module (and the lower layers) imports first thing in a fresh interpreter. The
    algorithm modules are in ``extended`` (13 interpreters, 21 s): the static layer and cycle checks
    above run in the default tier, and every algorithm module is imported by the contract test."""
    from jmeta.algos import _REGISTRY

    if group == "algos":
        modules = sorted({spec.split(":")[0] for spec in _REGISTRY.values()})  # erl2 lives in rl2
    else:
        modules = ["jmeta.rollout", "jmeta.networks.recurrent", "jmeta.rl.ppo", "jmeta.rl.pg", "jmeta.config",
                   "jmeta.evaluation", "jmeta.trainer"]
    code = "; ".join(
        f"import subprocess, sys; r = subprocess.run([sys.executable, '-c', 'import {m}'], capture_output=True, text=True); "
        f"assert r.returncode == 0, ('{m}', r.stderr[-2000:])" for m in modules
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
