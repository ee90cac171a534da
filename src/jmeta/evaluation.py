"""Meta-test protocol: adapt on a fixed held-out TaskBank and report returns per step/episode.

Gradient-based methods report ``eval/return_step{k}`` (after k inner steps); recurrent methods
``eval/return_episode{k}`` (k-th episode of a trial). Each is summarised as the mean over tasks and
its standard error (sample std / sqrt(num_tasks)).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import numpy as np

from jmeta.algos.base import Algorithm
from jmeta.tasks import TaskBank

#: Seed of the key used for the evaluation rollouts (fixed, so evaluations are comparable).
EVAL_ROLLOUT_SEED = 7_340_033

_INDEXED = re.compile(r"^eval/return_(step|episode)(\d+)$")


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Summary of one meta-test evaluation.

    axis: ``"step"`` or ``"episode"``; mean/stderr: [K + 1] over tasks, in index order;
    per_task: [num_tasks, K + 1].
    """

    axis: str
    mean: np.ndarray
    stderr: np.ndarray
    per_task: np.ndarray

    @property
    def num_tasks(self) -> int:
        return int(self.per_task.shape[0])

    def metrics(self) -> dict[str, float]:
        """Flat ``eval/return_{axis}{k}`` and ``..._se`` entries for logging."""
        out: dict[str, float] = {}
        for k, (m, s) in enumerate(zip(self.mean, self.stderr, strict=True)):
            out[f"eval/return_{self.axis}{k}"] = float(m)
            out[f"eval/return_{self.axis}{k}_se"] = float(s)
        return out

    def table(self) -> str:
        rows = [f"{self.axis:>8} | {'mean':>10} | {'s.e.':>8}"]
        for k, (m, s) in enumerate(zip(self.mean, self.stderr, strict=True)):
            rows.append(f"{k:>8} | {m:>10.2f} | {s:>8.2f}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "num_tasks": self.num_tasks,
            "mean": self.mean.tolist(),
            "stderr": self.stderr.tolist(),
            "per_task": self.per_task.tolist(),
        }


def summarize(raw: dict[str, Any]) -> EvalResult:
    """Turns ``adapt_and_evaluate``'s per-task arrays into an :class:`EvalResult`."""
    indexed = []
    for name, values in raw.items():
        match = _INDEXED.match(name)
        if match:
            indexed.append((match.group(1), int(match.group(2)), np.asarray(values, np.float64)))
    if not indexed:
        raise ValueError(f"no eval/return_step{{k}} or eval/return_episode{{k}} metrics in {sorted(raw)}")
    axes = {axis for axis, _, _ in indexed}
    if len(axes) != 1:
        raise ValueError(f"mixed evaluation axes {sorted(axes)}")
    indexed.sort(key=lambda item: item[1])
    per_task = np.stack([values for _, _, values in indexed], axis=1)
    n = per_task.shape[0]
    stderr = per_task.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(per_task.shape[1])
    return EvalResult(axis=axes.pop(), mean=per_task.mean(axis=0), stderr=stderr, per_task=per_task)


def make_evaluator(algo: Algorithm, bank: TaskBank):
    """A jitted ``state -> EvalResult`` on ``bank`` with the fixed evaluation rollout key."""
    run = jax.jit(algo.adapt_and_evaluate)
    key = jax.random.key(EVAL_ROLLOUT_SEED)

    def evaluate(state: Any) -> EvalResult:
        return summarize(jax.device_get(run(state, bank.tasks, key)))

    return evaluate


def evaluate(algo: Algorithm, state: Any, bank: TaskBank) -> EvalResult:
    """One-off evaluation of ``state`` on ``bank``."""
    return make_evaluator(algo, bank)(state)
