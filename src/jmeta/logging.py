"""Run logging: metrics.jsonl (always), TensorBoard events (optional), console progress."""

from __future__ import annotations

import json
import logging as std_logging
import math
import os
import sys
from typing import Any

from jmeta.errors import JMetaError

try:  # rich gives the live progress bar; plain prints when unavailable or disabled
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
except ImportError:  # pragma: no cover
    Progress = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Append-only JSONL file of metric records (``{"kind": "train"|"eval"|"perf", "iteration": i, ...}``)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str, kind: str | None = None) -> list[dict[str, Any]]:
    """All records in a metrics.jsonl (optionally only one ``kind``)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill; the records after it are kept
                    continue
                if kind is None or record.get("kind") == kind:
                    records.append(record)
    return records


def truncate_metrics(path: str, last_iteration: int) -> None:
    """Drops records after ``last_iteration`` (used on resume, so no iteration is logged twice)."""
    if not os.path.exists(path):
        return
    kept = [r for r in read_metrics(path) if int(r.get("iteration", 0)) <= last_iteration]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for record in kept:
            f.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


class TensorBoardLog:
    """TensorBoard scalars. ``purge_step`` (on resume: the restored iteration + 1) hides every event
    at or after it that an interrupted process wrote, so each step is shown once."""

    def __init__(self, logdir: str, purge_step: int | None = None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as exc:  # pragma: no cover
            raise JMetaError("tensorboardX is not installed; pass --no-tensorboard") from exc
        self._writer = SummaryWriter(logdir, purge_step=purge_step)

    def write(self, record: dict[str, Any], step: int) -> None:
        for name, value in record.items():
            if "/" in name and isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class ProgressBar:
    """Live progress with ETA and the key returns; prints a line per update when not a terminal."""

    def __init__(self, total: int, start: int, enabled: bool, description: str):
        self.enabled = enabled
        self._progress = None
        self._plain = enabled and (Progress is None or not sys.stderr.isatty())
        if enabled and not self._plain:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, completed=start, status="compiling...")
        self._total = total

    def update(self, completed: int, status: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, status=status)
        elif self._plain:
            print(f"[{completed}/{self._total}] {status}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


#: Loggers of the libraries under jmeta whose messages are for a log file, not the console (orbax
#: logs through absl; a damaged checkpoint makes it print pages of text).
LIBRARY_LOGGERS = ("absl",)


class LibraryLogFile:
    """Context manager: copies the libraries' log records (:data:`LIBRARY_LOGGERS`) to ``path``."""

    def __init__(self, path: str):
        self.path = path
        self._handlers: list[tuple[std_logging.Logger, std_logging.Handler]] = []

    def __enter__(self):
        for name in LIBRARY_LOGGERS:
            try:
                handler = std_logging.FileHandler(self.path, encoding="utf-8", delay=True)
            except OSError:
                continue
            handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger = std_logging.getLogger(name)
            logger.addHandler(handler)
            self._handlers.append((logger, handler))
        return self

    def __exit__(self, *exc):
        for logger, handler in self._handlers:
            logger.removeHandler(handler)
            handler.close()
        self._handlers = []
        return False


def quiet_library_logs() -> None:
    """Keeps the libraries' log records off the console (the command-line entry points call this;
    the trainer still writes them to the run's ``errors.log``)."""
    for name in LIBRARY_LOGGERS:
        std_logging.getLogger(name).propagate = False
