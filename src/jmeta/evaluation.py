"""Meta-test protocol: adapt on a fixed held-out TaskBank and report returns along the algorithm's
adaptation axis.

An algorithm's ``evaluate`` returns an :class:`~jmeta.algos.base.EvalOut`: per-task returns
[N, K + 1] along a named axis ("step": after k inner gradient steps; "episode": the k-th episode of
a trial) and optional named per-task extras. :func:`summarize` turns it into an :class:`EvalResult`:
the mean over tasks and its standard error (sample std / sqrt(num_tasks)), logged as
``eval/return_{axis}{k}`` and ``eval/return_{axis}{k}_se``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jmeta._xla_flags import hot_path_compiler_options
from jmeta.algos.base import AXIS_LABELS, EvalOut, MetaLearner
from jmeta.tasks import TaskBank

#: Seed of the key used for the evaluation rollouts (fixed, so evaluations are comparable).
EVAL_ROLLOUT_SEED = 7_340_033

@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Summary of one meta-test evaluation.

    axis: the adaptation axis' short name (``"step"``, ``"episode"``); mean/stderr: [K + 1] over
    tasks, in index order; per_task: [num_tasks, K + 1]; extras: per-task arrays [num_tasks, ...].
    """

    axis: str
    mean: np.ndarray
    stderr: np.ndarray
    per_task: np.ndarray
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def axis_label(self) -> str:
        return AXIS_LABELS.get(self.axis, self.axis)

    @property
    def num_tasks(self) -> int:
        return int(self.per_task.shape[0])

    def metrics(self) -> dict[str, float]:
        """Flat ``eval/return_{axis}{k}`` and ``..._se`` entries for logging."""
        out: dict[str, float] = {}
        for k, (m, s) in enumerate(zip(self.mean, self.stderr, strict=True)):
            out[f"eval/return_{self.axis}{k}"] = float(m)
            out[f"eval/return_{self.axis}{k}_se"] = float(s)
        for name, values in self.extras.items():
            means = values.mean(axis=0)
            if means.ndim == 0:
                out[f"eval/{name}"] = float(means)
            else:
                for k, m in enumerate(means.reshape(-1)):
                    out[f"eval/{name}_{self.axis}{k}"] = float(m)
        return out

    def table(self) -> str:
        """Mean and s.e. of the return at each point of the axis, plus the task-mean of every extra
        shaped like the returns (e.g. the success rate)."""
        columns = {name: v.mean(axis=0) for name, v in self.extras.items() if v.shape == self.per_task.shape}
        rows = [f"{self.axis:>8} | {'mean':>10} | {'s.e.':>8}" + "".join(f" | {name:>8}" for name in columns)]
        for k, (m, s) in enumerate(zip(self.mean, self.stderr, strict=True)):
            rows.append(f"{k:>8} | {m:>10.2f} | {s:>8.2f}" + "".join(f" | {c[k]:>8.3f}" for c in columns.values()))
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "num_tasks": self.num_tasks,
            "mean": self.mean.tolist(),
            "stderr": self.stderr.tolist(),
            "per_task": self.per_task.tolist(),
            **({"extras": {k: v.tolist() for k, v in self.extras.items()}} if self.extras else {}),
        }


def summarize(out: EvalOut) -> EvalResult:
    """Mean and standard error over tasks of an algorithm's :class:`EvalOut` (on the host)."""
    per_task = np.asarray(out.returns, np.float64)
    if per_task.ndim != 2:
        raise ValueError(f"EvalOut.returns must be [num_tasks, K + 1], got shape {per_task.shape}")
    n = per_task.shape[0]
    stderr = per_task.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(per_task.shape[1])
    extras = {name: np.asarray(v, np.float64) for name, v in out.extras.items()}
    return EvalResult(axis=out.axis, mean=per_task.mean(axis=0), stderr=stderr, per_task=per_task, extras=extras)


class Evaluator:
    """``state -> EvalResult`` on a fixed bank with the fixed evaluation rollout key (jitted).

    ``compile(state)`` compiles ahead of the first call (so a caller can time and announce it);
    calling without it compiles on first use."""

    def __init__(self, algo: MetaLearner, bank: TaskBank):
        self._jitted = jax.jit(algo.evaluate, compiler_options=hot_path_compiler_options())
        self._bank = bank
        self._key = jax.random.key(EVAL_ROLLOUT_SEED)
        self._compiled = None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def compile(self, state: Any) -> None:
        self._compiled = self._jitted.lower(state, self._bank.tasks, self._key).compile()

    def __call__(self, state: Any) -> EvalResult:
        if self._compiled is None:
            self.compile(state)
        return summarize(jax.device_get(self._compiled(state, self._bank.tasks, self._key)))


def make_evaluator(algo: MetaLearner, bank: TaskBank) -> Evaluator:
    """A jitted ``state -> EvalResult`` on ``bank`` with the fixed evaluation rollout key."""
    return Evaluator(algo, bank)


def evaluate(algo: MetaLearner, state: Any, bank: TaskBank) -> EvalResult:
    """One-off evaluation of ``state`` on ``bank``."""
    return make_evaluator(algo, bank)(state)
