"""Locating the MJCF models that ship inside the package (``jmeta/envs/mujoco/models/*.xml``).

The models are package data: a source checkout, an editable install and an installed wheel all
read them from the ``models`` folder next to this module.
"""

from __future__ import annotations

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def model_path(name: str) -> str:
    """Absolute path of the model ``models/<name>``; raises FileNotFoundError naming what is available."""
    path = os.path.join(MODELS_DIR, name)
    if not os.path.isfile(path):
        available = ", ".join(sorted(os.listdir(MODELS_DIR))) if os.path.isdir(MODELS_DIR) else "none"
        raise FileNotFoundError(f"no MJCF model {name!r} in {MODELS_DIR}; available: {available}")
    return path
