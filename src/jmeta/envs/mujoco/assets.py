"""Locating the package data of the MuJoCo envs: the MJCF models (``jmeta/envs/mujoco/models/*.xml``)
and fixed task sets (``jmeta/envs/mujoco/data/``, e.g. MAESN's goals in ``maesn_goals.npz``).

Both are package data: a source checkout, an editable install and an installed wheel all read them
from the ``models`` and ``data`` folders next to this module.
"""

from __future__ import annotations

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _packaged(folder: str, name: str, what: str) -> str:
    """Absolute path of ``folder/<name>``; raises FileNotFoundError naming what is available."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        available = ", ".join(sorted(os.listdir(folder))) if os.path.isdir(folder) else "none"
        raise FileNotFoundError(f"no {what} {name!r} in {folder}; available: {available}")
    return path


def model_path(name: str) -> str:
    """Absolute path of the model ``models/<name>``; raises FileNotFoundError naming what is available."""
    return _packaged(MODELS_DIR, name, "MJCF model")


def data_path(name: str) -> str:
    """Absolute path of the data file ``data/<name>``; raises FileNotFoundError naming what is available."""
    return _packaged(DATA_DIR, name, "data file")
