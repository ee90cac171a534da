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


def learning_curve(train: list[dict[str, Any]], evals: list[dict[str, Any]], path: str, title: str) -> str:
    """Training returns before/after adaptation per iteration, with evaluation points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    it = np.array([r["iteration"] for r in train])
    series = [("train/return_pre", "before adaptation"), ("train/return_post", "after adaptation")]
    if train:
        series += [(name, f"episode {name.removeprefix('train/return_episode')} of the trial")
                   for name in first_and_last_episode(train[-1])]
    for name, label in series:
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


def first_and_last_episode(record: dict[str, Any]) -> list[str]:
    """Names of the first and last ``train/return_episode{k}`` entries of a record (recurrent methods)."""
    indices = sorted(int(k.removeprefix("train/return_episode")) for k in record
                     if k.startswith("train/return_episode") and k.removeprefix("train/return_episode").isdigit())
    if not indices:
        return []
    return [f"train/return_episode{k}" for k in dict.fromkeys((indices[0], indices[-1]))]


def adaptation_curve(mean: np.ndarray, stderr: np.ndarray, axis: str, path: str, title: str) -> str:
    """Return (mean +- s.e. over held-out tasks) against adaptation steps or trial episodes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ks = np.arange(len(mean))
    ax.errorbar(ks, mean, yerr=stderr, marker="o" if len(ks) <= 30 else None, capsize=4 if len(ks) <= 30 else 0)
    if len(ks) <= 20:
        ax.set_xticks(ks)
    xlabel = "adaptation steps" if axis == "step" else "episode of the trial (0 = first)"
    return _save(plt, fig, ax, xlabel, "average return (held-out tasks)", title, path)


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
