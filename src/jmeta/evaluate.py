"""Meta-test a trained run on held-out tasks: python -m jmeta.evaluate --run RUN_DIR

Restores the run's latest (or --step) checkpoint and evaluates it on the fixed held-out task
bank: returns after 0..K adaptation steps (gradient-based) or per episode of a trial (recurrent),
mean and standard error over tasks. Writes eval_<step>.json and an adaptation-curve PNG.
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import tyro  # noqa: E402

from jmeta.cli_common import run_cli  # noqa: E402
from jmeta.errors import ConfigError  # noqa: E402


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    """Evaluate a trained run on held-out tasks."""

    run: str
    """Run directory (holds config.json and checkpoints/)."""
    step: int | None = None
    """Checkpoint iteration to evaluate (default: the latest)."""
    num_tasks: int | None = None
    """Held-out tasks (default: the run's eval_tasks, 40)."""
    adapt_steps: int | None = None
    """Adaptation steps K for gradient-based methods (default: the run's eval_adapt_steps)."""
    trial_episodes: int | None = None
    """Episodes per trial for recurrent methods (default: the run's; more tests generalisation)."""
    trials_per_task: int | None = None
    """Trials per held-out task for recurrent methods (default: the run's eval_trials_per_task)."""
    plot: bool = True
    """Write plots/adaptation_curve_<step>.png."""


_FLAG_OF = {"eval_adapt_steps": "--adapt-steps", "eval_episodes": "--trial-episodes", "eval_trials_per_task": "--trials-per-task"}


def _with_eval_overrides(algo, overrides: dict):
    """The algorithm with meta-test settings replaced; a setting the algorithm lacks is refused."""
    fields = {f.name for f in dataclasses.fields(algo.config)}
    changes = {}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in fields:
            raise ConfigError(f"{_FLAG_OF[name]}: does not apply to {algo.name} runs")
        changes[name] = value
    return dataclasses.replace(algo, config=dataclasses.replace(algo.config, **changes)) if changes else algo


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        args = tyro.cli(EvaluateArgs, args=argv, description=__doc__, prog="python -m jmeta.evaluate")
        if args.num_tasks is not None and args.num_tasks < 1:
            raise ConfigError(f"num_tasks: must be >= 1, got {args.num_tasks}")
        if args.adapt_steps is not None and args.adapt_steps < 0:
            raise ConfigError(f"adapt_steps: must be >= 0, got {args.adapt_steps}")
        from jmeta import plots
        from jmeta.evaluation import evaluate
        from jmeta.tasks import evaluation_bank
        from jmeta.trainer import restore_run

        for name in ("trial_episodes", "trials_per_task"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}: must be >= 1, got {value}")
        config, dist, algo, state = restore_run(args.run, args.step)
        algo = _with_eval_overrides(algo, {"eval_adapt_steps": args.adapt_steps, "eval_episodes": args.trial_episodes,
                                           "eval_trials_per_task": args.trials_per_task})
        bank = evaluation_bank(dist, args.num_tasks or config.eval_tasks)
        result = evaluate(algo, state, bank)
        step = int(state.iteration)
        print(f"{config.algo} on {config.env} ({config.env_variant}), iteration {step}, {result.num_tasks} held-out tasks")
        print(result.table())
        out = os.path.join(args.run, f"eval_{step}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"iteration": step, **result.to_dict()}, f, indent=2)
        if args.plot:
            plots.adaptation_curve(result.mean, result.stderr, result.axis,
                                   os.path.join(args.run, "plots", f"adaptation_curve_{step}.png"),
                                   f"{config.algo} on {config.env}, iteration {step}")
        print(f"wrote {out}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
