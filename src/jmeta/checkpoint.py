"""Checkpoints: orbax ``CheckpointManager`` holding the TrainState plus a JSON metadata item.

The metadata records the run config, jmeta/JAX versions and the state's tree layout, so a
checkpoint from another run, another algorithm or another network shape is refused with the reason
instead of being silently mis-restored. Restores go against an abstract target built from
``algo.init`` (``jax.eval_shape``), never against whatever the files contain.

Faults: restoring the latest checkpoint falls back past corrupt or incomplete ones to the newest
that restores and verifies (``Checkpointer.skipped`` lists what was passed over, with a one-line
reason each); a checkpoint of another run is refused at once. Every error is one line; the
storage library's full text goes to ``errors.log`` beside the checkpoints. A save that fails raises
:class:`CheckpointError`; :meth:`Checkpointer.check_writable` probes the directory before a run.
"""

from __future__ import annotations

import datetime
import os
import traceback
import uuid
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


def _short(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's text, at most ``limit`` characters."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Corrupt(CheckpointError):
    """A checkpoint that exists but cannot be read (restores fall back past it)."""


class Checkpointer:
    """Saves and restores ``(state, metadata)`` pairs under ``directory`` by iteration number."""

    def __init__(self, directory: str, max_to_keep: int = 3, create: bool = True):
        self.directory = os.path.abspath(directory)
        self.error_log = os.path.join(os.path.dirname(self.directory), "errors.log")
        self.skipped: list[tuple[int, str]] = []
        try:
            options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create)
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as exc:  # noqa: BLE001 (orbax raises many types)
            self._log(exc)
            raise CheckpointError(f"cannot open the checkpoint directory {self.directory}: {_short(exc)}") from None

    def _log(self, exc: BaseException) -> None:
        """Appends the library's full error text to ``errors.log`` (best effort)."""
        try:
            with open(self.error_log, "a", encoding="utf-8") as f:
                f.write(f"--- {datetime.datetime.now().isoformat()} {self.directory}\n")
                f.write("".join(traceback.format_exception(exc)))
        except OSError:
            pass

    def check_writable(self) -> None:
        """Raises CheckpointError (one line) unless files can be created in the directory."""
        probe = os.path.join(self.directory, f".write_probe_{uuid.uuid4().hex}")
        try:
            os.makedirs(self.directory, exist_ok=True)
            with open(probe, "w", encoding="utf-8") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as exc:
            raise CheckpointError(f"checkpoint directory {self.directory} is not writable: {exc.strerror or exc}") from None

    def reload(self) -> None:
        """Re-reads the directory (after checkpoints were moved or deleted from outside)."""
        try:
            self._manager.reload()
        except Exception as exc:  # noqa: BLE001
            self._log(exc)
            raise CheckpointError(f"cannot read the checkpoint directory {self.directory}: {_short(exc)}") from None

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def all_steps(self) -> list[int]:
        try:
            self._manager.reload()
            return sorted(int(s) for s in self._manager.all_steps())
        except Exception as exc:  # noqa: BLE001
            self._log(exc)
            raise CheckpointError(f"cannot list the checkpoints in {self.directory}: {_short(exc)}") from None

    def save(self, step: int, state: Any, metadata: dict[str, Any]) -> None:
        """Saves and waits until it is on disk; a failure raises CheckpointError (one line)."""
        metadata = {**metadata, "layout": tree_layout(state), "step": int(step)}
        try:
            self._manager.save(
                int(step),
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(metadata)),
                force=True,
            )
            self._manager.wait_until_finished()
        except Exception as exc:  # noqa: BLE001
            self._log(exc)
            raise CheckpointError(f"could not save checkpoint {step} in {self.directory}: {_short(exc)}") from None

    def read_metadata(self, step: int | None = None) -> dict[str, Any]:
        step = self._resolve(step)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = dict(restored["meta"])
        except Exception as exc:  # noqa: BLE001 (orbax raises many types for unreadable files)
            self._log(exc)
            raise _Corrupt(f"checkpoint {self.directory}/{step} is corrupt or incomplete: metadata unreadable "
                           f"({_short(exc)})") from None
        return meta

    def restore(
        self, abstract_state: Any, step: int | None = None, expected_meta: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Restores the state at ``step`` into ``abstract_state``'s structure.

        ``step=None``: the newest checkpoint that restores and verifies; corrupt or incomplete newer
        ones are passed over and listed in ``self.skipped`` as ``(step, reason)``. A given ``step``
        is restored or refused. ``expected_meta``: entries that must equal the saved metadata (e.g.
        algorithm, env and network config); a difference raises :class:`CheckpointError` naming the
        field, without falling back (an older checkpoint of the same run would not match either).
        """
        self.skipped = []
        if step is not None:
            return self._restore_step(abstract_state, self._resolve(step), expected_meta)
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        for candidate in reversed(steps):
            try:
                return self._restore_step(abstract_state, candidate, expected_meta)
            except _Corrupt as exc:
                self.skipped.append((candidate, str(exc)))
        reasons = "; ".join(f"{s}: {reason.split(': ', 1)[-1]}" for s, reason in self.skipped)
        raise CheckpointError(f"no usable checkpoint in {self.directory} (all corrupt or incomplete: {reasons})")

    def _restore_step(self, abstract_state: Any, step: int, expected_meta: dict[str, Any] | None):
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
            state = restored["state"]
        except Exception as exc:  # noqa: BLE001
            self._log(exc)
            raise _Corrupt(f"checkpoint {self.directory}/{step} is corrupt or incomplete: {_short(exc)}") from None
        problem = _diff_layouts(tree_layout(state), tree_layout(abstract_state))
        if problem:
            raise _Corrupt(f"checkpoint {self.directory}/{step} is corrupt or incomplete: {problem}")
        return state, meta

    def _resolve(self, step: int | None) -> int:
        steps = self.all_steps()
        if step is None:
            step = steps[-1] if steps else None
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        if step not in steps:
            raise CheckpointError(f"no checkpoint for iteration {step} in {self.directory}; have {steps}")
        return int(step)

    def close(self) -> None:
        try:
            self._manager.close()
        except Exception as exc:  # noqa: BLE001 (e.g. "Event loop is closed" after a damaged save)
            self._log(exc)
