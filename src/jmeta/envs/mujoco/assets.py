"""Locating the package data of the MuJoCo envs: the MJCF models (``jmeta/envs/mujoco/models/*.xml``)
and fixed task sets (``jmeta/envs/mujoco/data/``, e.g. MAESN's goals in ``maesn_goals.npz``).

Both are package data: a source checkout, an editable install and an installed wheel all read them
from the ``models`` and ``data`` folders next to this module.
"""

from __future__ import annotations

import os

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def model_path(name: str) -> str:
    """Absolute path of the model ``models/<name>``; raises FileNotFoundError naming what is available."""
    path = os.path.join(MODELS_DIR, name)
    if not os.path.isfile(path):
        available = ", ".join(sorted(os.listdir(MODELS_DIR))) if os.path.isdir(MODELS_DIR) else "none"
        raise FileNotFoundError(f"no MJCF model {name!r} in {MODELS_DIR}; available: {available}")
    return path


def data_path(name: str) -> str:
    """Absolute path of the data file ``data/<name>``; raises FileNotFoundError naming what is available."""
    path = os.path.join(DATA_DIR, name)
    if not os.path.isfile(path):
        available = ", ".join(sorted(os.listdir(DATA_DIR))) if os.path.isdir(DATA_DIR) else "none"
        raise FileNotFoundError(f"no data file {name!r} in {DATA_DIR}; available: {available}")
    return path
