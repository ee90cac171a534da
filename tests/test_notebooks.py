"""Every notebook in notebooks/ runs top to bottom at tiny sizes (nbclient), so none can rot.

Each notebook has one cell tagged ``parameters`` (its sizes); the test replaces that cell's source
with :data:`TINY` and executes the notebook in a fresh kernel in a temporary directory. The tier is
marked ``notebooks`` (each notebook compiles several programs in its own kernel: about 1-2 minutes
each on a 2-core CPU); ``.ci/run`` runs it after the default tier.
"""

from __future__ import annotations

import os
import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"

_TINY_ALGOS = '''import dataclasses
from jmeta.algos import algorithm_class
def tiny(algo, **extra):
    return {**dataclasses.asdict(algorithm_class(algo).TINY), **extra}
'''

#: The parameters cell of each notebook at test size (LOGDIR is the test's temporary directory).
TINY = {
    "quickstart": '''META_ITERS = 2
META_BATCH_SIZE = 2
EVAL_TASKS = 3
ENV_HORIZON = 10
MAML = {"episodes_per_task": 2, "eval_episodes_per_task": 2, "hidden_sizes": (16,), "cg_iters": 3}
LOGDIR = "runs"''',
    "custom_env": '''META_ITERS = 2
META_BATCH_SIZE = 2
EVAL_TASKS = 3
MAML = {"episodes_per_task": 2, "eval_episodes_per_task": 2, "hidden_sizes": (16,), "cg_iters": 3}
LOGDIR = "runs"''',
    "gradient_based": _TINY_ALGOS + '''ALGOS = ["maml", "fomaml", "cavia", "promp"]
META_ITERS = 2
META_BATCH_SIZE = 2
EVAL_TASKS = 3
ENV_HORIZON = 10
OVERRIDES = {a: tiny(a) for a in ALGOS}
LOGDIR = "runs"''',
    "recurrent_bayesian": _TINY_ALGOS + '''ALGOS = ["rl2", "varibad"]
META_ITERS = {"rl2": 2, "varibad": 2}
EVAL_TASKS = 3
OVERRIDES = {a: tiny(a) for a in ALGOS}
RUN = {"meta_batch_size": 4, "env_horizon": 5, "chunk_size": 2}
LOGDIR = "runs"''',
    "context_based": _TINY_ALGOS + '''META_ITERS = 2
OVERRIDES = tiny("pearl")
RUN = {"env_horizon": 5, "meta_batch_size": 2, "eval_tasks": 2}
LOGDIR = "runs"''',
    "mujoco_gpu": '''BATCHES = [4]
STEPS = 5
META_ITERS = 1
META_BATCH_SIZE = 2
MAML = {"episodes_per_task": 2, "eval_episodes_per_task": 1, "hidden_sizes": (16,), "cg_iters": 3, "eval_adapt_steps": 1}
ENV_HORIZON = 6
EVAL_TASKS = 2
LOGDIR = "runs"''',
}


def test_every_notebook_has_a_tiny_setting_and_one_parameters_cell():
    import nbformat

    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == sorted(TINY), "add the new notebook's tiny parameters to TINY"
    for name in names:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}: strip the outputs"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs(name, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = TINY[name]
    env_backup = os.environ.get("JMETA_PIP_SPEC")
    os.environ["JMETA_PIP_SPEC"] = "jmeta-is-installed-so-this-is-not-used"
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        if env_backup is None:
            os.environ.pop("JMETA_PIP_SPEC", None)
        else:
            os.environ["JMETA_PIP_SPEC"] = env_backup
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    assert list((tmp_path / "runs").iterdir()), "the notebook trained no run"
