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


WALL_FILE = "experiment_wall.json"


def train(algo: str, env: str, seed: int, name: str, logdir: str, extra: list[str]) -> dict:
    """Runs one training run to the end, or resumes it: when ``logdir`` already holds an unfinished
    run of the same ``name`` prefix (see :func:`unfinished_run`), the run continues from its last
    checkpoint with ``python -m jmeta.train --resume`` instead of starting over, so a long run
    interrupted by the end of a session is picked up by the next invocation.

    Returns ``run_dir``, ``command`` (the original command, as a user would type it), ``wall_s`` (the
    whole run over every attempt: compile, training, evaluations), ``attempts`` and ``returncode``
    (0 when it finished)."""
    command = [sys.executable, "-m", "jmeta.train", "--algo", algo, "--env", env, "--seed", str(seed),
               "--logdir", logdir, "--run-name", name, "--no-progress", *extra]
    previous = unfinished_run(logdir, name.rsplit("__", 1)[0])
    run_dir = previous or os.path.join(logdir, name)
    attempts = _read_attempts(run_dir)
    if previous:
        print(f"resuming {run_dir} (attempt {len(attempts) + 1})", flush=True)
        to_run = [sys.executable, "-m", "jmeta.train", "--resume", run_dir, "--no-progress"]
        shown = attempts[0]["command"] if attempts else " ".join(["python", *command[1:]])
    else:
        to_run, shown = command, " ".join(["python", *command[1:]])
    t0 = time.time()
    attempts.append({"command": shown, "started": t0, "ended": None})
    _write_attempts(run_dir, attempts)
    returncode = subprocess.run(to_run, check=False).returncode
    attempts[-1]["ended"] = time.time()
    _write_attempts(run_dir, attempts)
    return {"run_dir": run_dir, "command": shown, "wall_s": round(_wall(run_dir, attempts), 1),
            "attempts": len(attempts), "returncode": returncode}


def unfinished_run(logdir: str, prefix: str) -> str | None:
    """The newest run directory ``{logdir}/{prefix}__*`` that has a checkpoint and its
    ``config.json`` but no final meta-test (``eval.json``), or None. ``prefix`` is
    ``{stem}__{label}__seed{seed}``. A directory with checkpoints but no ``config.json`` (a run
    removed while its last asynchronous checkpoint was still being written) cannot be resumed: it
    is skipped with a message naming it, and a fresh run starts."""
    if not os.path.isdir(logdir):
        return None
    candidates = []
    for d in sorted(os.listdir(logdir)):
        run_dir = os.path.join(logdir, d)
        checkpoints = os.path.join(run_dir, "checkpoints")
        if (not d.startswith(prefix + "__") or not os.path.isdir(checkpoints) or not os.listdir(checkpoints)
                or os.path.exists(os.path.join(run_dir, "eval.json"))):
            continue
        if not os.path.exists(os.path.join(run_dir, "config.json")):
            print(f"not resuming {run_dir}: it has checkpoints but no config.json", flush=True)
            continue
        candidates.append(run_dir)
    return candidates[-1] if candidates else None


def _read_attempts(run_dir: str) -> list[dict]:
    try:
        with open(os.path.join(run_dir, WALL_FILE), encoding="utf-8") as f:
            attempts = json.load(f)["attempts"]
        return attempts if isinstance(attempts, list) else []
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _write_attempts(run_dir: str, attempts: list[dict]) -> None:
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, WALL_FILE), "w", encoding="utf-8") as f:
        json.dump({"attempts": attempts}, f, indent=1)


def _wall(run_dir: str, attempts: list[dict]) -> float:
    """Seconds over every attempt; an attempt that was killed (no end) counts until the last write to
    its ``metrics.jsonl`` (what it achieved), or as zero."""
    metrics = os.path.join(run_dir, "metrics.jsonl")
    last_write = os.path.getmtime(metrics) if os.path.exists(metrics) else None
    total = 0.0
    for k, attempt in enumerate(attempts):
        start, end = attempt["started"], attempt.get("ended")
        if end is None and last_write is not None:
            next_start = attempts[k + 1]["started"] if k + 1 < len(attempts) else float("inf")
            end = min(last_write, next_start)
        total += max(0.0, (end or start) - start)
    return total


def read_json(run_dir: str, filename: str) -> dict:
    """One of a finished run's JSON files (``eval.json``: the final meta-test; ``config.json``)."""
    with open(os.path.join(run_dir, filename), encoding="utf-8") as f:
        return json.load(f)


def env_id(run_dir: str) -> str | None:
    """The env a run trained on, with its definition's version (``cheetah_dir/maml_rllab-v2``), from the
    last session of its ``run_info.json``; None where not recorded. Records of one comparison must
    share it: an env's version changes whenever its definition changes returns."""
    try:
        sessions = read_json(run_dir, "run_info.json")["sessions"]
        return sessions[-1]["env"]["env_id"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
