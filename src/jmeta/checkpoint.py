"""Checkpoints: orbax ``CheckpointManager`` holding the TrainState plus a JSON metadata item.

The metadata records the run config, jmeta/JAX versions and the state's tree layout, so a
checkpoint from another run, another algorithm or another network shape is refused with the reason
instead of being silently mis-restored. Restores go against an abstract target built from
``algo.init`` (``jax.eval_shape``), never against whatever the files contain.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jmeta.errors import CheckpointError


def tree_layout(tree: Any) -> dict[str, list]:
    """``{path: [shape, dtype]}`` of every leaf; used to detect mismatched checkpoints."""
    layout = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        layout[jax.tree_util.keystr(path)] = [list(np.shape(leaf)), str(leaf.dtype)]
    return layout


def _diff_layouts(saved: dict[str, list], expected: dict[str, list]) -> str | None:
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    if missing or extra:
        return f"parameter tree differs (missing {missing[:3]}, unexpected {extra[:3]})"
    for name in expected:
        if saved[name] != expected[name]:
            return f"{name} has shape/dtype {saved[name]} in the checkpoint but {expected[name]} in this run"
    return None


class Checkpointer:
    """Saves and restores ``(state, metadata)`` pairs under ``directory`` by iteration number."""

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, metadata: dict[str, Any]) -> None:
        metadata = {**metadata, "layout": tree_layout(state), "step": int(step)}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(metadata)),
            force=True,
        )
        self._manager.wait_until_finished()

    def read_metadata(self, step: int | None = None) -> dict[str, Any]:
        step = self._resolve(step)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        except Exception as exc:  # orbax raises many types for unreadable files
            raise CheckpointError(f"checkpoint {self.directory}/{step} is corrupt or incomplete: metadata unreadable ({exc})") from exc
        return dict(restored["meta"])

    def restore(
        self, abstract_state: Any, step: int | None = None, expected_meta: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Restores the state at ``step`` (default: latest) into ``abstract_state``'s structure.

        ``expected_meta``: entries that must equal the saved metadata (e.g. algorithm, env and
        network config); a difference raises :class:`CheckpointError` naming the field.
        """
        step = self._resolve(step)
        meta = self.read_metadata(step)
        for key, value in (expected_meta or {}).items():
            if meta.get(key) != value:
                raise CheckpointError(
                    f"checkpoint {self.directory}/{step} does not match this run: {key} is "
                    f"{meta.get(key)!r} in the checkpoint but {value!r} here"
                )
        problem = _diff_layouts(meta.get("layout", {}), tree_layout(abstract_state))
        if problem:
            raise CheckpointError(f"checkpoint {self.directory}/{step} does not match this run: {problem}")
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            )
        except Exception as exc:
            raise CheckpointError(f"checkpoint {self.directory}/{step} is corrupt or incomplete: {exc}") from exc
        state = restored["state"]
        problem = _diff_layouts(tree_layout(state), tree_layout(abstract_state))
        if problem:
            raise CheckpointError(f"checkpoint {self.directory}/{step} does not match this run: {problem}")
        return state, meta

    def _resolve(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        if step not in self.all_steps():
            raise CheckpointError(f"no checkpoint for iteration {step} in {self.directory}; have {self.all_steps()}")
        return int(step)

    def close(self) -> None:
        self._manager.close()
