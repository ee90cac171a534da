"""Meta-train with logs, checkpoints and plots: python -m jmeta.train --algo maml --env point_nav [flags]

--algo and --env (and --env-variant, for variants with presets of their own) select the preset for that pair; every field below can then be overridden (the
defaults shown are the preset's). --resume RUN_DIR continues a run from its latest checkpoint with the
run's saved config (--meta-iters may be raised).
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import sys  # noqa: E402

import tyro  # noqa: E402

from jmeta.cli_common import run_cli  # noqa: E402
from jmeta.config import TrainConfig, cli_config_class, from_cli, preset_config, to_cli  # noqa: E402
from jmeta.errors import ConfigError  # noqa: E402


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Parses the command line into a TrainConfig (preset for --algo/--env, or the resumed run's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default=None)
    pre.add_argument("--env", default="point_nav")
    pre.add_argument("--env-variant", default=None)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.resume and known.resume != "None":
        from jmeta.trainer import load_run_config

        default = load_run_config(known.resume)
        if known.algo is not None and known.algo != default.algo:
            raise ConfigError(f"algo: cannot change on resume ({default.algo!r} in the run, {known.algo!r} requested)")
    else:
        default = preset_config(known.algo or "maml", known.env, known.env_variant)
    parsed = tyro.cli(cli_config_class(default.algo), default=to_cli(default), args=argv,
                      description=__doc__ + catalogue(), prog="python -m jmeta.train")
    return from_cli(parsed)


def catalogue() -> str:
    """The algorithms and the environments with their variants, for ``--help``."""
    from jmeta.algos import list_algorithms
    from jmeta.envs import list_envs, list_variants

    envs = "; ".join(f"{name} ({', '.join(list_variants(name))})" for name in list_envs())
    return f"\nAlgorithms (--algo): {', '.join(list_algorithms())}.\nEnvironments (--env, and --env-variant in brackets): {envs}.\n"


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        config = parse_config(argv)
        config.validate()
        from jmeta.trainer import train

        result = train(config)
        from jmeta import distributed

        if not distributed.is_main():  # process 0 reports for every process of a multi-host run
            return 0
        if result.interrupted:
            print(f"stopped at iteration {result.iteration}; resume with: python -m jmeta.train --resume {result.run_dir}")
        else:
            print(f"run finished: {result.run_dir}")
            if result.final_eval is not None:
                print(result.final_eval.table())
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
