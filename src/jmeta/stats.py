"""Statistics over seeds: the many-seed runs' intervals (``--num-seeds``) and the results grid
(``experiments/grid.py``); small pure functions of arrays.

* :func:`mean_ci95`: mean over seeds and the 95% confidence interval half-width over seeds (Student t,
  ``t_{0.975, n-1} * sd / sqrt(n)``, ``sd`` with ``ddof=1``); ``None`` for one seed (not available).
* :func:`iqm`: the interquartile mean, the mean of the scores left after cutting ``floor(n / 4)``
  of the lowest and of the highest of all ``n`` scores (Agarwal et al. 2021, "Deep RL at the edge
  of the statistical precipice").
* :func:`stratified_bootstrap_ci`: the percentile bootstrap CI of a statistic of a ``[seeds, tasks]``
  score matrix, resampling the seeds with replacement independently within each task (the strata),
  with a fixed RNG seed.

Why not the ``rliable`` library (google-research/rliable, which implements the last two): on
2026-12-02, ``pip install rliable numpy scipy`` into a fresh venv succeeded (rliable 1.2.0, numpy
2.4.6, scipy 1.17.1, the versions of requirements/ci-constraints.txt) but pulled arch, pandas,
seaborn and statsmodels, and ``from rliable import library`` then failed:
``TypeError: deprecate_kwarg() missing 1 required positional argument: 'new_arg_name'`` (arch 7.2.0
calls a private pandas decorator whose signature changed in pandas 3.1.1). It imports with
``pandas<3``, which would make this repository pin pandas, a package it does not otherwise use, for
two functions of a few lines each. ``from rliable import metrics`` alone imports, and its IQM is
``scipy.stats.trim_mean(scores, 0.25, axis=None)``, the same definition as :func:`iqm`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

#: Resamples and RNG seed of the bootstrap CIs written into the results tables.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: Fewest seeds for which an IQM and its bootstrap CI are reported.
MIN_SEEDS_FOR_IQM = 5


def mean_ci95(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over seeds and the 95% CI half-width over seeds (Student t) of ``per_seed`` [S, ...]:
    returns (mean [...], half-width [...]), the half-width ``None`` when S = 1 (no CI from one seed)."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    n = per_seed.shape[0]
    if n == 0:
        raise ValueError("mean_ci95: no seeds")
    mean = per_seed.mean(axis=0)
    if n < 2:
        return mean, None
    return mean, stats.t.ppf(0.975, n - 1) * per_seed.std(axis=0, ddof=1) / np.sqrt(n)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all the scores of ``scores`` (any shape, e.g. [S seeds, T tasks]): the mean
    after cutting ``floor(n / 4)`` of the lowest and ``floor(n / 4)`` of the highest of the n scores."""
    flat = np.asarray(scores, dtype=np.float64).ravel()
    if flat.size == 0:
        raise ValueError("iqm: no scores")
    return float(stats.trim_mean(flat, 0.25))


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """:func:`iqm` of each row of ``samples`` [R, N] -> [R]."""
    return stats.trim_mean(samples, 0.25, axis=1)


def stratified_bootstrap_ci(scores: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray] = _iqm_rows,
                            resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over ``scores`` [S seeds, T tasks]: each resample draws,
    for every task t independently, S seeds with replacement from column t (the stratum); ``statistic``
    maps the flattened resamples [resamples, S * T] to [resamples] (default: the IQM of each).
    Deterministic for a fixed ``seed``; returns (lower, upper)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"stratified_bootstrap_ci: scores must be [seeds, tasks], got shape {scores.shape}")
    n_seeds, n_tasks = scores.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_seeds, size=(resamples, n_seeds, n_tasks))  # [R, S, T] seed drawn per task
    resampled = scores[rows, np.arange(n_tasks)]  # [R, S, T]
    values = np.asarray(statistic(resampled.reshape(resamples, n_seeds * n_tasks)))  # [R]
    tail = 100.0 * (1.0 - level) / 2.0
    lower, upper = np.percentile(values, [tail, 100.0 - tail])
    return float(lower), float(upper)


def iqm_with_ci(scores: np.ndarray, min_seeds: int = MIN_SEEDS_FOR_IQM) -> dict | None:
    """``{"iqm", "ci95": [lower, upper]}`` of ``scores`` [S seeds, T tasks] (IQM over all S * T scores, the
    stratified bootstrap CI), or ``None`` when S < ``min_seeds`` (too few seeds for a bootstrap over seeds)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[0] < min_seeds:
        return None
    lower, upper = stratified_bootstrap_ci(scores)
    return {"iqm": iqm(scores), "ci95": [lower, upper]}
