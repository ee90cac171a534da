"""The one place the experiment scripts start a training run and read its files back.

Every run is a normal ``python -m jmeta.train`` subprocess (the CLI's code path), so what the
scripts record is what a user gets from the same command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def train(algo: str, env: str, seed: int, name: str, logdir: str, extra: list[str]) -> dict:
    """Runs one training run to the end; returns ``run_dir``, ``command`` (as a user would type it),
    ``wall_s`` (the whole run: compile, training, evaluations) and ``returncode`` (0 when it finished)."""
    command = [sys.executable, "-m", "jmeta.train", "--algo", algo, "--env", env, "--seed", str(seed),
               "--logdir", logdir, "--run-name", name, "--no-progress", *extra]
    t0 = time.time()
    returncode = subprocess.run(command, check=False).returncode
    return {"run_dir": os.path.join(logdir, name), "command": " ".join(["python", *command[1:]]),
            "wall_s": round(time.time() - t0, 1), "returncode": returncode}


def read_json(run_dir: str, filename: str) -> dict:
    """One of a finished run's JSON files (``eval.json``: the final meta-test; ``config.json``)."""
    with open(os.path.join(run_dir, filename), encoding="utf-8") as f:
        return json.load(f)
