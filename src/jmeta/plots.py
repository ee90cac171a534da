"""PNG plots of a run: learning curve and adaptation curve (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Evaluation series drawn on a learning curve at most (first points, then the last).
MAX_EVAL_SERIES = 4


def eval_series_keys(record: dict[str, Any]) -> list[str]:
    """The ``eval/return_{axis}{k}`` keys of an eval record to draw: all of them when there are at
    most :data:`MAX_EVAL_SERIES`, else the first two, the middle one and the last (a 10-episode RL²
    trial gives 4 series, not 10)."""
    keys = [k for k in record if k.startswith("eval/return_") and not k.endswith(("_se", "_ci95"))]
    keys.sort(key=_point_index)
    if len(keys) <= MAX_EVAL_SERIES:
        return keys
    return [keys[0], keys[1], keys[len(keys) // 2], keys[-1]]


def _point_index(key: str) -> int:
    digits = "".join(c for c in reversed(key) if c.isdigit())[::-1]
    trailing = key[len(key) - len(digits):] if digits and key.endswith(digits) else ""
    return int(trailing) if trailing else 0


def eval_label(key: str) -> str:
    """``eval/return_step0`` -> "before adaptation"; ``step2`` -> "after 2 steps";
    ``episode0`` -> "episode 0 of the trial" (0 = first, as the adaptation axis)."""
    name = key.split("/")[-1].removeprefix("return_")
    k = _point_index(key)
    if name.startswith("step"):
        return "held-out: before adaptation" if k == 0 else f"held-out: after {k} step{'s' if k > 1 else ''}"
    if name.startswith("episode"):
        return f"held-out: episode {k} of the trial"
    return f"held-out: {name}"


def _segments(xs: list[int], gap: float) -> list[tuple[int, int]]:
    """Index ranges [start, end) of ``xs`` whose successive points are at most ``gap`` apart."""
    if not xs:
        return []
    out, start = [], 0
    for i in range(1, len(xs)):
        if xs[i] - xs[i - 1] > gap:
            out.append((start, i))
            start = i
    out.append((start, len(xs)))
    return out


def learning_curve(train: list[dict[str, Any]], evals: list[dict[str, Any]], headline: dict[str, str], path: str,
                   title: str, eval_every: int | None = None) -> str:
    """The algorithm's headline training metrics per iteration (``headline``: name -> label) and the
    held-out evaluations (at most :data:`MAX_EVAL_SERIES` series, mean +- s.e. over tasks, or +- the
    95% interval over seeds where the records have ``_ci95`` entries: a ``--num-seeds`` run). Evaluation points
    are joined only when they are at most ``eval_every`` (default: their median spacing) apart, so
    an evaluation at the start and one at the end are two points, not a line across the run."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    it = np.array([r["iteration"] for r in train])
    for name, label in headline.items():
        values = [r.get(name) for r in train]
        if values and all(isinstance(v, int | float) for v in values):
            ax.plot(it, values, label=f"train: {label}", alpha=0.7, linewidth=1.2)
    if evals:
        xs_all = sorted({int(r["iteration"]) for r in evals})
        spacing = eval_every or (float(np.median(np.diff(xs_all))) if len(xs_all) > 2 else 0)
        for key in eval_series_keys(evals[-1]):
            points = [r for r in evals if key in r]
            xs = [int(r["iteration"]) for r in points]
            ys = np.array([r[key] for r in points], float)
            se = np.array([r.get(key + "_ci95", r.get(key + "_se", 0.0)) for r in points], float)
            bar = ax.errorbar(xs, ys, yerr=se, marker="o", markersize=4, capsize=3, linestyle="none",
                              label=eval_label(key))
            for lo, hi in _segments(xs, spacing * 1.01):
                if hi - lo > 1:
                    ax.plot(xs[lo:hi], ys[lo:hi], color=bar[0].get_color(), linewidth=1.0, alpha=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return save_axes(plt, fig, ax, "meta-iteration", "average return", title, path)


def adaptation_curve(mean: np.ndarray, stderr: np.ndarray, axis_label: str, path: str, title: str) -> str:
    """Return (mean +- s.e. over held-out tasks) along the adaptation axis (``axis_label`` on x)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ks = np.arange(len(mean))
    ax.errorbar(ks, mean, yerr=stderr, marker="o" if len(ks) <= 30 else None, capsize=4 if len(ks) <= 30 else 0)
    if len(ks) <= 20:
        ax.set_xticks(ks)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_axes(plt, fig, ax, axis_label, "average return (held-out tasks)", title, path)


def adaptation_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], axis_label: str, path: str, title: str,
                      ylabel: str = "average return (held-out tasks)") -> str:
    """Several methods on one axis: ``curves`` maps a label to ``(mean [K + 1], half-width [K + 1])``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (label, (mean, err)) in enumerate(curves.items()):
        ks = np.arange(len(mean)) + (i - (len(curves) - 1) / 2) * 0.03  # small offsets keep error bars apart
        ax.errorbar(ks, mean, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xticks(np.arange(max(len(m) for m, _ in curves.values())))
    ax.legend(fontsize=8)
    return save_axes(plt, fig, ax, axis_label, ylabel, title, path)


def save_axes(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: str) -> str:
    """Labels, title and grid on ``ax``; writes ``fig`` to ``path`` (PNG) and closes it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
