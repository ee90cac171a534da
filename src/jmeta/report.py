"""The run report: python -m jmeta.report --run RUN_DIR [--viewers/--no-viewers]

One self-contained HTML page per run, ``RUN_DIR/report.html`` (images inlined, no scripts from
elsewhere, so it opens offline and can be mailed): the run's identity and status, the final
meta-test table (mean ± s.e. over held-out tasks along the adaptation axis, with success rates),
the learning curve, the adaptation curve, the rollout viewers (:mod:`jmeta.visualize`), the
training speed and compile times, the resolved config and the provenance (versions, git commit,
command line, devices). The trainer writes it at the end of a run (``--no-report`` to skip).
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import base64  # noqa: E402
import dataclasses  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from jmeta.errors import CheckpointError, JMetaError  # noqa: E402

REPORT_FILE = "report.html"
#: Key packages listed in the report's provenance table (the full list is in a collapsed section).
KEY_PACKAGES = ("jmeta", "jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "mujoco", "mujoco-mjx", "numpy")


@dataclasses.dataclass(frozen=True)
class ReportArgs:
    """Write RUN_DIR/report.html for a run."""

    run: str
    """Run directory."""
    viewers: bool = True
    """Draw the rollout viewers first when the run has none (restores the latest checkpoint)."""
    tasks: int = 3
    """Held-out tasks the viewers draw."""


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _data_uri(path: str) -> str:
    mime = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}
    with open(path, "rb") as f:
        payload = base64.b64encode(f.read()).decode("ascii")
    return f"data:{mime.get(os.path.splitext(path)[1].lower(), 'application/octet-stream')};base64,{payload}"


def _image(path: str, alt: str) -> str:
    return f'<img src="{_data_uri(path)}" alt="{html.escape(alt)}" class="plot">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _eval_table(evaluation: dict[str, Any]) -> str:
    from jmeta.algos.base import AXIS_LABELS

    axis = evaluation.get("axis", "step")
    mean = evaluation.get("mean", [])
    seeds = evaluation.get("num_seeds")  # a --num-seeds run: means over seeds, 95% CI over seeds
    spread = evaluation.get("ci95" if seeds else "stderr", [])
    if seeds:
        extras = {name: [values] for name, values in (evaluation.get("extras_mean") or {}).items()}
    else:
        extras = {name: values for name, values in (evaluation.get("extras") or {}).items()
                  if values and isinstance(values[0], list) and len(values[0]) == len(mean)}
    rows = []
    for k, (m, s) in enumerate(zip(mean, spread, strict=True)):
        row = [k, f"{m:.3f}", f"{s:.3f}"]
        for values in extras.values():
            row.append(f"{sum(v[k] for v in values) / len(values):.3f}")
        rows.append(row)
    over = f" (mean over {seeds} seeds, each the mean over the tasks)" if seeds else ""
    caption = (f"<p>Meta-test at iteration {evaluation.get('iteration', '?')} on {evaluation.get('num_tasks', '?')} "
               f"held-out tasks{over}; return along the axis: {html.escape(AXIS_LABELS.get(axis, axis))}.</p>")
    return caption + _table([axis, "mean return", "95% CI (±)" if seeds else "s.e.", *extras], rows)


def _perf_rows(metrics: list[dict[str, Any]]) -> list[list[Any]]:
    compiles = [r["perf/compile_s"] for r in metrics if "perf/compile_s" in r]
    eval_compiles = [r["perf/eval_compile_s"] for r in metrics if "perf/eval_compile_s" in r]
    speeds = [r["perf/env_steps_per_s"] for r in metrics if r.get("kind") == "train" and "perf/env_steps_per_s" in r]
    evals = [r["perf/eval_s"] for r in metrics if "perf/eval_s" in r]
    rows = []
    if compiles:
        rows.append(["compile a chunk of meta-iterations (s)", ", ".join(f"{c:.1f}" for c in compiles)])
    if eval_compiles:
        rows.append(["compile the meta-test (s)", ", ".join(f"{c:.1f}" for c in eval_compiles)])
    if speeds:
        speeds_sorted = sorted(speeds)
        rows.append(["env steps per second (median over iterations)", f"{speeds_sorted[len(speeds) // 2]:,.0f}"])
    if evals:
        rows.append(["one meta-test evaluation (s, mean)", f"{sum(evals) / len(evals):.2f}"])
    return rows


def _provenance(info: dict[str, Any] | None) -> str:
    if not info or not info.get("sessions"):
        return "<p>No run_info.json (a run from an older jmeta).</p>"
    last = info["sessions"][-1]
    packages = last.get("packages", {})
    git = last.get("git") or {}
    rows = [
        ["started", last.get("started", "")],
        ["command", " ".join(last.get("argv", []))],
        ["git commit", f"{git.get('commit', 'not a git checkout')}{' (with uncommitted changes)' if git.get('dirty') else ''}"],
        ["python", last.get("python", "")],
        ["platform", last.get("platform", "")],
        ["JAX backend / devices", f"{last.get('jax_backend', '')}: {', '.join(last.get('devices', []))}"],
        *[[name, packages[name]] for name in KEY_PACKAGES if name in packages],
        ["sessions (first start + resumes)", len(info["sessions"])],
    ]
    env = last.get("env")
    env_html = f"<details><summary>Environment as built</summary><pre>{html.escape(json.dumps(env, indent=2))}</pre></details>" if env else ""
    full = "".join(f"{html.escape(k)}=={html.escape(v)}\n" for k, v in packages.items())
    return (_table(["", ""], rows) + env_html
            + f"<details><summary>All installed packages ({len(packages)})</summary><pre>{full}</pre></details>")


_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f3f3f3; } img.plot { max-width: 100%; border: 1px solid #eee; margin: 4px; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 520px; }
figcaption { font-size: 0.85em; color: #555; } pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
.status { padding: 0.4em 0.8em; border-radius: 4px; display: inline-block; }
.finished { background: #e5f6e5; } .unfinished { background: #fff4d6; }
"""

#: Marks the body once every image decoded (the browser test reads it); logs nothing.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var shown = images.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", images.length);
  document.body.setAttribute("data-images-shown", shown);
});
"""


def build_report(run_dir: str) -> str:
    """The report's HTML for ``run_dir`` (reads config.json, metrics.jsonl, eval.json, run_info.json,
    plots/ and viewers/)."""
    from jmeta.logging import read_metrics

    config = _read_json(os.path.join(run_dir, "config.json"))
    if config is None:
        raise CheckpointError(f"{run_dir} is not a jmeta run directory (no readable config.json)")
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    metrics = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
    evaluation = _read_json(os.path.join(run_dir, "eval.json"))
    info = _read_json(os.path.join(run_dir, "run_info.json"))
    algo, env, variant = config.get("algo", "?"), config.get("env", "?"), config.get("env_variant", "default")
    seed, num_seeds = config.get("seed", "?"), int(config.get("num_seeds", 1))
    title = f"{algo} on {env} ({variant}), " + (f"seed {seed}" if num_seeds == 1 else
                                                 f"seeds {seed}-{int(seed) + num_seeds - 1}")
    trained = max((int(r["iteration"]) for r in metrics if r.get("kind") == "train"), default=0)
    total = int(config.get("meta_iters", 0))
    finished = evaluation is not None and trained >= total
    status = (f'<span class="status finished">finished: {trained} of {total} meta-iterations</span>' if finished else
              f'<span class="status unfinished">not finished: {trained} of {total} meta-iterations '
              f'(resume with python -m jmeta.train --resume {html.escape(run_dir)})</span>')
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{status}</p>",
             f"<p>Run directory: <code>{html.escape(os.path.abspath(run_dir))}</code></p>"]

    parts.append("<h2>Meta-test on held-out tasks</h2>")
    parts.append(_eval_table(evaluation) if evaluation else "<p>No final evaluation yet.</p>")

    plots_dir = os.path.join(run_dir, "plots")
    curves = [(name, caption) for name, caption in (
        ("learning_curve.png", "Learning curve: training metrics per meta-iteration and held-out evaluations"),
        ("adaptation_curve.png", "Adaptation curve: held-out return along the adaptation axis"),
    ) if os.path.exists(os.path.join(plots_dir, name))]
    parts.append("<h2>Curves</h2>")
    parts.append("".join(f"<figure>{_image(os.path.join(plots_dir, n), c)}<figcaption>{html.escape(c)}</figcaption></figure>"
                         for n, c in curves) or "<p>No plots (the run was trained with --no-plots or is not finished).</p>")

    viewers_dir = os.path.join(run_dir, "viewers")
    index = _read_json(os.path.join(viewers_dir, "index.json"))
    parts.append("<h2>Rollouts on held-out tasks</h2>")
    if index and index.get("figures"):
        figures = [f for f in index["figures"] if os.path.exists(os.path.join(viewers_dir, f["file"]))]
        parts.append("".join(
            f"<figure>{_image(os.path.join(viewers_dir, f['file']), f['caption'])}"
            f"<figcaption>{html.escape(f['caption'])}</figcaption></figure>" for f in figures))
    else:
        parts.append("<p>No rollout viewers (python -m jmeta.visualize --run DIR draws them).</p>")

    perf = _perf_rows(metrics)
    parts.append("<h2>Speed</h2>" + (_table(["", ""], perf) if perf else "<p>No timing records.</p>"))
    parts.append("<h2>Config</h2><details open><summary>config.json (the resolved config: preset + command line)"
                 f"</summary><pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre></details>")
    parts.append("<h2>Provenance</h2>" + _provenance(info))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}\n<script>{_SCRIPT}</script></body></html>\n")


def write_report(run_dir: str, quiet: bool = False, viewers: bool = False, tasks: int = 3,
                 algo: Any = None, state: Any = None) -> str:
    """Writes ``run_dir/report.html``; returns its path. With ``viewers`` (and none drawn yet), draws
    the rollout viewers first: from ``algo``/``state`` when given (the trainer, at the end of a run),
    else from the run's latest checkpoint. A viewer that cannot be drawn (an algorithm without
    recorded rollouts) is reported in one line and the page is written without it."""
    if viewers and not os.path.exists(os.path.join(run_dir, "viewers", "index.json")):
        try:
            if algo is not None and state is not None:
                from jmeta.trainer import build_meta_test, load_run_config
                from jmeta.visualize import write_viewers

                config = load_run_config(run_dir)
                meta_algo, bank = build_meta_test(config, algo, algo.task_dist)
                write_viewers(meta_algo, state, bank.tasks, os.path.join(run_dir, "viewers"), tasks)
            else:
                from jmeta.visualize import visualize_run

                visualize_run(run_dir, tasks)
        except JMetaError as exc:
            if not quiet:
                print(f"report: no rollout viewers: {exc}", file=sys.stderr)
    path = os.path.join(run_dir, REPORT_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(build_report(run_dir))
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    import tyro

    from jmeta.cli_common import run_cli

    def _run() -> int:
        args = tyro.cli(ReportArgs, args=argv, description=__doc__, prog="python -m jmeta.report")
        if not os.path.isdir(args.run):
            raise CheckpointError(f"run: {args.run} is not a directory")
        print(f"wrote {write_report(args.run, viewers=args.viewers, tasks=args.tasks)}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
