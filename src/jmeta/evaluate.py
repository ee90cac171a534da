"""Meta-test a trained run on held-out tasks: python -m jmeta.evaluate --run RUN_DIR

Restores the run's latest (or --step) checkpoint and evaluates it on the fixed held-out task
bank: returns along the algorithm's adaptation axis (after 0..K inner steps, or per episode of a
trial), mean and standard error over tasks. The algorithm's meta-test settings (its ``eval_*``
fields) can be overridden under its name, e.g. ``--maml.eval-adapt-steps 5`` or
``--rl2.eval-episodes 6``; ``--help`` after ``--run RUN_DIR`` lists them. Writes eval_<step>.json
and an adaptation-curve PNG.
"""

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import typing  # noqa: E402
from typing import Annotated, Any  # noqa: E402

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
    """Held-out tasks (default: the run's eval_tasks)."""
    seed: int | None = None
    """For a --num-seeds run: which of its seeds to evaluate (default: the first)."""
    plot: bool = True
    """Write plots/adaptation_curve_<step>.png."""


def _field_help(config_cls: type, name: str) -> str:
    try:  # tyro's own reader of attribute docstrings
        from tyro._docstrings import get_field_docstring

        text = get_field_docstring(config_cls, name, ())
    except Exception:  # noqa: BLE001 (private API: any failure falls back to a generic help)
        text = None
    return f"{text or name} (default: the run's)"


def eval_args_class(algo: str) -> type:
    """EvaluateArgs plus a section named ``algo`` holding optional overrides of its ``eval_*`` fields."""
    from jmeta.algos import algorithm_class

    config_cls = algorithm_class(algo).Config
    hints = typing.get_type_hints(config_cls)
    fields = [
        (f.name, Annotated[hints[f.name] | None, tyro.conf.arg(help=_field_help(config_cls, f.name))],
         dataclasses.field(default=None))
        for f in dataclasses.fields(config_cls) if f.name.startswith("eval_")
    ]
    section = dataclasses.make_dataclass(f"{config_cls.__name__}EvalOverrides", fields, frozen=True)
    return dataclasses.make_dataclass(
        "EvaluateArgs",
        [(algo, Annotated[section, tyro.conf.arg(help=f"meta-test settings of {algo}")],
          dataclasses.field(default_factory=section))],
        bases=(EvaluateArgs,), frozen=True,
    )


def parse_args(argv: list[str] | None) -> tuple[Any, dict[str, Any]]:
    """``(args, eval_overrides)``: the algorithm's override flags exist once --run names a run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--run", default=None)
    known, _ = pre.parse_known_args(argv)
    cls: type = EvaluateArgs
    algo = None
    if known.run:
        from jmeta.trainer import load_run_config

        algo = load_run_config(known.run).algo
        cls = eval_args_class(algo)
    args = tyro.cli(cls, args=argv, description=__doc__, prog="python -m jmeta.evaluate")
    overrides = {}
    if algo is not None:
        overrides = {k: v for k, v in dataclasses.asdict(getattr(args, algo)).items() if v is not None}
    return args, overrides


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        args, overrides = parse_args(argv)
        if args.num_tasks is not None and args.num_tasks < 1:
            raise ConfigError(f"num_tasks: must be >= 1, got {args.num_tasks}")
        from jmeta import plots
        from jmeta.evaluation import evaluate
        from jmeta.trainer import build_meta_test, restore_run

        config, dist, algo, state = restore_run(args.run, args.step, args.seed)
        if overrides:
            algo = algo.with_eval_settings(**overrides)
        algo, bank = build_meta_test(config, algo, dist, args.num_tasks)
        result = evaluate(algo, state, bank)
        step = int(state.iteration)
        seed = config.seed if args.seed is None else args.seed
        print(f"{config.algo} on {config.env} ({config.env_variant}), seed {seed}, iteration {step}, "
              f"{result.num_tasks} held-out tasks")
        print(result.table())
        out = os.path.join(args.run, f"eval_{step}.json" if config.num_seeds == 1 else f"eval_{step}_seed{seed}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"iteration": step, **result.to_dict()}, f, indent=2)
        if args.plot:
            plots.adaptation_curve(result.mean, result.stderr, result.axis_label,
                                   os.path.join(args.run, "plots", f"adaptation_curve_{step}.png"),
                                   f"{config.algo} on {config.env}, iteration {step}")
        print(f"wrote {out}")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
