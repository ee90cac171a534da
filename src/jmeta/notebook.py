"""Helpers for notebooks (Colab, Jupyter): a live learning curve and showing a run's figures.

    from jmeta.notebook import LivePlot, show_run
    live = LivePlot(headline={"train/return_pre": "before adaptation", "train/return_post": "after"})
    result = train(config, on_records=live)
    show_run(result.run_dir)

Outside a notebook (no IPython display) :class:`LivePlot` only collects the records, so a notebook
executed as a test or a script runs unchanged.
"""

from __future__ import annotations

import os
from typing import Any


def _display():
    try:
        from IPython import get_ipython
        from IPython.display import clear_output, display
    except ImportError:
        return None
    return (display, clear_output) if get_ipython() is not None else None


class LivePlot:
    """An ``on_records`` callback for :func:`jmeta.trainer.train`: redraws the training metrics
    (``headline``: metric name -> label; default: every ``train/return*`` metric) and the held-out
    evaluations after each chunk of meta-iterations.

    ``records``: every record received so far (the metrics.jsonl lines as dicts)."""

    def __init__(self, headline: dict[str, str] | None = None, every: int = 1):
        self.headline = headline
        self.every = max(1, every)
        self.records: list[dict[str, Any]] = []
        self._calls = 0

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(records)
        self._calls += 1
        if self._calls % self.every == 0:
            self.draw()

    def draw(self) -> None:
        """Redraws :func:`jmeta.plots.learning_curve` of the records so far, in place."""
        shown = _display()
        if shown is None:
            return
        display, clear_output = shown
        import tempfile

        from IPython.display import Image

        from jmeta.plots import learning_curve

        train = [r for r in self.records if r.get("kind") == "train"]
        evals = [r for r in self.records if r.get("kind") == "eval"]
        headline = self.headline or {k: k.split("/")[-1] for k in (train[-1] if train else {})
                                     if k.startswith("train/return")}
        with tempfile.TemporaryDirectory() as tmp:
            path = learning_curve(train, evals, headline, os.path.join(tmp, "curve.png"), "learning curve (live)")
            clear_output(wait=True)
            display(Image(filename=path))


def show_run(run_dir: str, viewers: bool = True) -> list[str]:
    """Displays a run's plots and rollout viewers inline (returns the files shown; outside a
    notebook only returns them)."""
    files = [os.path.join(run_dir, "plots", name) for name in ("learning_curve.png", "adaptation_curve.png")]
    viewer_dir = os.path.join(run_dir, "viewers")
    if viewers and os.path.isdir(viewer_dir):
        files += [os.path.join(viewer_dir, f) for f in sorted(os.listdir(viewer_dir)) if f.endswith((".png", ".gif"))]
    files = [f for f in files if os.path.exists(f)]
    shown = _display()
    if shown is not None:
        from IPython.display import Image

        for path in files:
            shown[0](Image(filename=path))
    return files
