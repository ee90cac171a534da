"""Many hosts (jmeta.distributed): two CPU processes on localhost joined by ``jax.distributed``.

The two-process run is in the ``extended`` tier: it starts three interpreters (two processes of two
virtual devices each, and the one-process reference), about 30 s on 2 cores, which the default
tier cannot afford. It trains MAML from the command line with the task axis over the 4 devices of
both processes and checks that process 0 alone wrote one run directory whose metrics equal the
one-process run's to a relative 1e-4. The host-side helpers are checked in the default tier.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from _tiny import TINY_ARGS
from jmeta import distributed
from jmeta.errors import ConfigError
from jmeta.logging import read_metrics

_ARGS = [*TINY_ARGS, "--meta-batch-size", "4", "--meta-iters", "3", "--eval-every", "2", "--no-tensorboard"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    return {**env, **extra}


def _curves(run_dir: str) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k.startswith(("train/", "eval/"))}
            for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")) if r["kind"] in ("train", "eval")]


@pytest.mark.extended
def test_two_processes_train_as_one_and_process_zero_alone_writes(tmp_path):
    port = _free_port()
    logdir = tmp_path / "two"
    command = [sys.executable, "-m", "jmeta.train", *_ARGS, "--logdir", str(logdir)]
    procs = [subprocess.Popen(command, env=_env(JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                                                JAX_PROCESS_ID=str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    reference = subprocess.run([sys.executable, "-m", "jmeta.train", *_ARGS, "--logdir", str(tmp_path / "one"),
                                "--devices", "1"], env=_env(), capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]

    runs = os.listdir(logdir)
    assert len(runs) == 1, runs  # one run directory: process 1 used process 0's name
    run_dir = os.path.join(logdir, runs[0])
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["meta_iters"] == 3
    train = [r for r in read_metrics(os.path.join(run_dir, "metrics.jsonl"), "train")]
    assert [r["iteration"] for r in train] == [1, 2, 3]  # written once, by one process
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["3"]
    assert os.path.exists(os.path.join(run_dir, "eval.json"))
    assert "run finished" in outs[0][0] and "run finished" not in outs[1][0]

    (one_dir,) = [os.path.join(tmp_path / "one", d) for d in os.listdir(tmp_path / "one")]
    two, one = _curves(run_dir), _curves(one_dir)
    assert len(two) == len(one) == 6  # evaluations at 0, 2 and 3, and three train records
    for a, b in zip(one, two, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-6), name


def test_a_run_joins_a_cluster_only_when_asked(monkeypatch):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.requested(False) and distributed.requested(True)
    assert not distributed.initialize(False)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1")
    assert distributed.requested(False)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ConfigError, match=r"^distributed: JAX_NUM_PROCESSES must be an integer, got 'two'$"):
        distributed.initialize(False)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    with pytest.raises(ConfigError, match=r"^distributed: JAX_PROCESS_ID must be in \[0, 1\], got 2$"):
        distributed.initialize(False)


def test_one_process_helpers_are_the_identity():
    assert distributed.is_main() and distributed.process_count() == 1
    assert distributed.broadcast_int(7) == 7 and distributed.agree_any(True) and not distributed.agree_any(False)
    distributed.barrier("nothing to wait for")
    np.testing.assert_array_equal(distributed.to_host({"x": np.arange(3)})["x"], np.arange(3))
