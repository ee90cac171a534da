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
from jmeta.distributed import to_host
from jmeta.stats import mean_ci95
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


@dataclasses.dataclass(frozen=True)
class SeedsEvalResult:
    """The meta-test of several independently seeded train states (``--num-seeds``): one
    :class:`EvalResult` per seed, and their mean and 95% confidence interval over seeds.

    mean/ci95: [K + 1], over the seeds' task means; per_seed_mean: [S, K + 1]."""

    seeds: tuple[int, ...]
    per_seed: tuple[EvalResult, ...]

    @property
    def axis(self) -> str:
        return self.per_seed[0].axis

    @property
    def axis_label(self) -> str:
        return self.per_seed[0].axis_label

    @property
    def num_tasks(self) -> int:
        return self.per_seed[0].num_tasks

    @property
    def per_seed_mean(self) -> np.ndarray:
        return np.stack([r.mean for r in self.per_seed])

    @property
    def mean(self) -> np.ndarray:
        return self.per_seed_mean.mean(axis=0)

    @property
    def ci95(self) -> np.ndarray:
        return mean_ci95(self.per_seed_mean)[1]

    def metrics(self) -> dict[str, float]:
        """Every per-seed ``eval/...`` metric averaged over seeds (the task-s.e. entries dropped), and
        ``eval/return_{axis}{k}_ci95``: the 95% interval's half-width over seeds."""
        per_seed = [r.metrics() for r in self.per_seed]
        out = {name: float(np.mean([m[name] for m in per_seed])) for name in per_seed[0] if not name.endswith("_se")}
        for k, half in enumerate(self.ci95):
            out[f"eval/return_{self.axis}{k}_ci95"] = float(half)
        return out

    def table(self) -> str:
        """Mean over seeds and the 95% interval's half-width at each point of the axis, then each seed's mean."""
        rows = [f"{self.axis:>8} | {'mean':>10} | {'95% CI':>8}" + "".join(f" | {'seed ' + str(s):>9}" for s in self.seeds)]
        for k, (m, h) in enumerate(zip(self.mean, self.ci95, strict=True)):
            rows.append(f"{k:>8} | {m:>10.2f} | {h:>8.2f}" + "".join(f" | {r.mean[k]:>9.2f}" for r in self.per_seed))
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        extras = {}
        for name, values in self.per_seed[0].extras.items():
            if values.shape == self.per_seed[0].per_task.shape:  # e.g. success [tasks, K + 1]
                extras[name] = np.stack([r.extras[name].mean(axis=0) for r in self.per_seed]).mean(axis=0).tolist()
        return {"axis": self.axis, "num_tasks": self.num_tasks, "num_seeds": len(self.seeds), "seeds": list(self.seeds),
                "mean": self.mean.tolist(), "ci95": self.ci95.tolist(), "per_seed_mean": self.per_seed_mean.tolist(),
                **({"extras_mean": extras} if extras else {})}


class Evaluator:
    """``state -> EvalResult`` on a fixed bank with the fixed evaluation rollout key (jitted).

    ``compile(state)`` compiles ahead of the first call (so a caller can time and announce it);
    calling without it compiles on first use."""

    def __init__(self, algo: MetaLearner, bank: TaskBank, seeds: tuple[int, ...] | None = None):
        evaluate = algo.evaluate if seeds is None else jax.vmap(algo.evaluate, in_axes=(0, None, None))
        self._jitted = jax.jit(evaluate, compiler_options=hot_path_compiler_options())
        self._seeds = seeds
        self._bank = bank
        self._key = jax.random.key(EVAL_ROLLOUT_SEED)
        self._compiled = None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def compile(self, state: Any) -> None:
        self._compiled = self._jitted.lower(state, self._bank.tasks, self._key).compile()

    def __call__(self, state: Any) -> EvalResult | SeedsEvalResult:
        if self._compiled is None:
            self.compile(state)
        out = to_host(self._compiled(state, self._bank.tasks, self._key))  # gathered from every process
        if self._seeds is None:
            return summarize(out)
        per_seed = [summarize(jax.tree_util.tree_map(lambda x, i=i: x[i], out)) for i in range(len(self._seeds))]
        return SeedsEvalResult(seeds=tuple(self._seeds), per_seed=tuple(per_seed))


def make_evaluator(algo: MetaLearner, bank: TaskBank, seeds: tuple[int, ...] | None = None) -> Evaluator:
    """A jitted ``state -> EvalResult`` on ``bank`` with the fixed evaluation rollout key. With
    ``seeds``, ``state`` is a stack of one train state per seed (leading axis) and the result a
    :class:`SeedsEvalResult`; every seed is evaluated on the same bank with the same key."""
    return Evaluator(algo, bank, seeds)


def evaluate(algo: MetaLearner, state: Any, bank: TaskBank) -> EvalResult:
    """One-off evaluation of ``state`` on ``bank``."""
    return make_evaluator(algo, bank)(state)
