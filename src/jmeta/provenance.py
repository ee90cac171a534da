"""What a run directory records about where it came from (``run_info.json``).

One record per process that trained the run (the first start, then each ``--resume``): the time,
the command line, Python, the platform, JAX's backend and devices, the git commit of the jmeta
source tree (when it is a git checkout; with a ``dirty`` flag), every installed package's version
(MuJoCo included) and the environment exactly as built (its id, horizon, source and every field of
its params after the variant and the overrides). ``config.json`` beside it holds the resolved
training config (preset + command line).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import jmeta


@functools.cache
def _installed_packages() -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            found.setdefault(name, dist.version)
    return tuple(sorted(found.items(), key=lambda item: item[0].lower()))


def installed_packages() -> dict[str, str]:
    """Every installed distribution: name -> version (sorted by name; read once per process)."""
    return dict(_installed_packages())


def git_revision(path: str | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: the jmeta
    package), or None (not a checkout, or git missing)."""
    where = path or os.path.dirname(os.path.abspath(jmeta.__file__))

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", where, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def env_description(env: Any) -> dict[str, Any]:
    """The env as built: spec fields and its params (after the variant and the overrides)."""
    from jmeta.envs.wrappers import unwrap

    base = unwrap(env)
    spec = env.spec
    out: dict[str, Any] = {"env_id": spec.env_id, "horizon": spec.horizon,
                           "episodes_per_trial": spec.episodes_per_trial, "source": spec.source,
                           "observation_space": repr(spec.observation_space), "action_space": repr(spec.action_space)}
    params = getattr(base, "params", None)
    if params is not None:
        out["params"] = _jsonable(params)
    wrappers, layer = [], env
    while layer is not base:
        wrappers.append({"wrapper": type(layer).__name__,
                         **({"scale": layer.scale} if hasattr(layer, "scale") else {})})
        layer = layer.__dict__["env"]
    if wrappers:
        out["wrappers"] = wrappers
    return out


def session_record(env: Any | None = None) -> dict[str, Any]:
    """This process: time, command line, interpreter, platform, devices, git, packages, env."""
    import jax

    record: dict[str, Any] = {
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": list(sys.argv),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "jmeta": jmeta.__version__,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "git": git_revision(),
        "packages": installed_packages(),
    }
    if env is not None:
        record["env"] = env_description(env)
    return record


def append_session(path: str, record: dict[str, Any]) -> None:
    """Adds ``record`` to the ``sessions`` list of the JSON file at ``path`` (created if missing;
    an unreadable one is replaced, keeping the new record)."""
    data: dict[str, Any] = {"sessions": []}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                loaded = json.load(f)
            if isinstance(loaded, dict) and isinstance(loaded.get("sessions"), list):
                data = loaded
        except (OSError, json.JSONDecodeError):
            pass
    data["sessions"].append(record)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
