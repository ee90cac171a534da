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

    def write(self, record: dict[str, Any], step: int | None = None) -> None:
        """Appends ``record`` (``step`` is ignored: the record carries its iteration)."""
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


def format_duration(seconds: float) -> str:
    """``95.2`` -> ``"1m35s"``; ``4000`` -> ``"1h06m"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class WandbLog:
    """Weights & Biases scalars, with the names TensorBoard gets (``train/...``, ``eval/...``,
    ``perf/...``) at step = meta-iteration; the run's config, versions and directory as the wandb
    config. The wandb run lives in ``{run_dir}/wandb``; its id is the run directory's name, so a
    resumed run continues the same wandb run. ``mode="offline"`` writes locally only (``wandb sync``
    uploads it later)."""

    def __init__(self, run_dir: str, config: Any, resume: bool = False):
        try:
            import wandb
        except ImportError as exc:
            raise JMetaError("wandb: the package is not installed; pip install wandb (or drop --wandb)") from exc
        run_id = "".join(c if c.isalnum() or c in "-_" else "-" for c in os.path.basename(run_dir))[:64]
        settings = wandb.Settings(silent=True, console="off")
        self._run = wandb.init(
            project=config.wandb_project, entity=config.wandb_entity, mode=config.wandb_mode,
            dir=run_dir, id=run_id, name=os.path.basename(run_dir), resume="allow" if resume else None,
            config={**config.to_dict(), "run_dir": run_dir}, settings=settings,
            reinit="create_new",
        )
        self._run.define_metric("*", step_metric="iteration")

    def write(self, record: dict[str, Any], step: int) -> None:
        values = {name: value for name, value in record.items()
                  if "/" in name and isinstance(value, int | float) and math.isfinite(value)}
        if values:
            self._run.log({**values, "iteration": step})

    def close(self) -> None:
        self._run.finish()


class ConsoleLog:
    """Context manager: everything the run prints (``sys.stdout``, ``sys.stderr``) is also appended to
    ``path`` (the run's ``console.log``), plus the plain-text progress lines of :class:`ProgressBar`
    (its live bar itself goes only to the terminal)."""

    def __init__(self, path: str):
        self.path = path
        self._file = None
        self._saved: tuple[Any, Any] | None = None
        self.terminal = sys.stderr  # where the live bar draws (the stream before the copy)

    def __enter__(self):
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError:
            return self  # nothing to copy to; the run goes on
        self._saved = (sys.stdout, sys.stderr)
        self.terminal = sys.stderr
        sys.stdout = _Tee(sys.stdout, self._file)
        sys.stderr = _Tee(sys.stderr, self._file)
        return self

    def line(self, text: str) -> None:
        """Appends one line to the log only."""
        if self._file is not None:
            self._file.write(text.rstrip("\n") + "\n")
            self._file.flush()

    def __exit__(self, *exc):
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        if self._file is not None:
            self._file.close()
            self._file = None
        return False


class _Tee:
    """A text stream that writes to ``stream`` and to ``copy`` (everything else is ``stream``'s)."""

    def __init__(self, stream, copy):
        self._stream = stream
        self._copy = copy

    def write(self, text: str) -> int:
        try:
            self._copy.write(text)
            self._copy.flush()
        except (OSError, ValueError):  # the log is gone (closed, disk full): the console still works
            pass
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class ProgressBar:
    """What the run is doing now (its stage: building, compiling, evaluating, training, saving), the
    iterations done, the elapsed time, an ETA from the measured chunk and evaluation times, and the key
    training metrics. A live bar on a terminal; one printed line per update otherwise. ``message``
    prints a line above the bar (evaluation results as they arrive). With ``enabled=False`` nothing is
    shown, but the lines still reach ``console_log``."""

    def __init__(self, total: int, start: int, enabled: bool, description: str,
                 console_log: ConsoleLog | None = None):
        self.enabled = enabled
        self._log = console_log
        self._progress = None
        stream = console_log.terminal if console_log is not None else sys.stderr
        self._stream = stream
        self._plain = enabled and (Progress is None or not (_isatty(stream) or _in_jupyter()))
        self._total = total
        self._completed = start
        self._stage = "building"
        self._status = ""
        self._eta = ""
        if enabled and not self._plain:
            from rich.console import Console

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                TextColumn("[cyan]{task.fields[stage]}[/] {task.fields[status]}"),
                console=Console(file=stream),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, completed=start, stage=self._stage,
                                                 status="", eta="")
        self._emit(f"{description}: {self._stage}")

    def stage(self, stage: str) -> None:
        """Shows what the run is doing now (e.g. "compiling meta-iteration", "evaluating")."""
        self._stage = stage
        self._refresh()
        self._emit(f"[{self._completed}/{self._total}] {stage}")

    def update(self, completed: int, status: str, eta_s: float | None = None) -> None:
        """Iterations done, the metrics line and the estimated seconds left (None: not known yet)."""
        self._completed = completed
        self._status = status
        self._eta = "" if eta_s is None else f"ETA {format_duration(eta_s)}"
        self._refresh()
        if status or self._eta:
            self._emit(f"[{completed}/{self._total}] {status}" + (f" | {self._eta}" if self._eta else ""))

    def message(self, text: str) -> None:
        """A line printed above the bar (and logged)."""
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        elif self._plain:
            print(text, file=self._stream, flush=True)
        if self._log is not None:
            self._log.line(text)

    def _refresh(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._completed, stage=self._stage, status=self._status,
                                  eta=self._eta)

    def _emit(self, text: str) -> None:
        if self._plain:
            print(text, file=self._stream, flush=True)
        if self._log is not None:
            self._log.line(text)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _in_jupyter() -> bool:
    try:
        from rich.console import Console

        return bool(Console().is_jupyter)
    except Exception:  # noqa: BLE001 (rich missing or confused: plain lines)
        return False


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


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
