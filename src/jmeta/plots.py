"""PNG plots of a run: learning curve and adaptation curve (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(train: list[dict[str, Any]], evals: list[dict[str, Any]], headline: dict[str, str], path: str,
                   title: str) -> str:
    """The algorithm's headline training metrics per iteration (``headline``: name -> label), with the
    evaluation points (every logged ``eval/return_*`` mean, with its standard error)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    it = np.array([r["iteration"] for r in train])
    for name, label in headline.items():
        values = [r.get(name) for r in train]
        if values and all(isinstance(v, int | float) for v in values):
            ax.plot(it, values, label=f"train: {label}", alpha=0.8)
    if evals:
        keys = sorted(k for k in evals[-1] if k.startswith("eval/return_") and not k.endswith("_se"))
        for key in keys:
            xs = [r["iteration"] for r in evals if key in r]
            ys = [r[key] for r in evals if key in r]
            se = [r.get(key + "_se", 0.0) for r in evals if key in r]
            ax.errorbar(xs, ys, yerr=se, marker="o", capsize=3, label=f"eval: {key.split('/')[-1]}")
    ax.legend(fontsize=8)
    return _save(plt, fig, ax, "meta-iteration", "average return", title, path)


def adaptation_curve(mean: np.ndarray, stderr: np.ndarray, axis_label: str, path: str, title: str) -> str:
    """Return (mean +- s.e. over held-out tasks) along the adaptation axis (``axis_label`` on x)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ks = np.arange(len(mean))
    ax.errorbar(ks, mean, yerr=stderr, marker="o" if len(ks) <= 30 else None, capsize=4 if len(ks) <= 30 else 0)
    if len(ks) <= 20:
        ax.set_xticks(ks)
    return _save(plt, fig, ax, axis_label, "average return (held-out tasks)", title, path)


def adaptation_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], axis_label: str, path: str, title: str,
                      ylabel: str = "average return (held-out tasks)") -> str:
    """Several methods on one axis: ``curves`` maps a label to ``(mean [K + 1], half-width [K + 1])``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (label, (mean, err)) in enumerate(curves.items()):
        ks = np.arange(len(mean)) + (i - (len(curves) - 1) / 2) * 0.03  # small offsets keep error bars apart
        ax.errorbar(ks, mean, yerr=err, marker="o", capsize=3, label=label)
    ax.set_xticks(np.arange(max(len(m) for m, _ in curves.values())))
    ax.legend(fontsize=8)
    return _save(plt, fig, ax, axis_label, ylabel, title, path)


def _save(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: str) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
