"""Locating the files of ``envs/`` (MJCF models, env cards) in a source checkout or an install.

The wheel ships the repository's ``envs/`` folder as ``jmeta/_assets/envs``; an editable install
or a source checkout reads it from the repository root.
"""

from __future__ import annotations

import os

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assets_dir() -> str:
    """Directory holding the env models and cards (raises if neither location exists)."""
    candidates = [
        os.path.join(_PACKAGE_DIR, "_assets", "envs"),  # installed wheel
        os.path.join(os.path.dirname(os.path.dirname(_PACKAGE_DIR)), "envs"),  # src/jmeta -> repo/envs
    ]
    for path in candidates:
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(f"jmeta env assets not found in any of {candidates}")


def asset_path(name: str) -> str:
    """Absolute path of ``envs/<name>``; raises FileNotFoundError naming what is available."""
    directory = assets_dir()
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        available = ", ".join(sorted(os.listdir(directory)))
        raise FileNotFoundError(f"no env asset {name!r} in {directory}; available: {available}")
    return path
