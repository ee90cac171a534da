#!/usr/bin/env bash
# The accelerator benchmarks, as one script for a lent GPU machine:
# every benchmark writes its JSON (hardware, versions, config, the exact command) into $OUT, one
# file each, saved after every measurement, and a failing or slow benchmark does not stop the others (each has its own time limit).
#
#   OUT=/tmp/out bash benchmarks/device_run.sh            # SETS="meta full" (the default): about 12 minutes
#   OUT=/tmp/out SETS="env" bash benchmarks/device_run.sh # env throughput (about 8 minutes on an H200)
#   OUT=/tmp/out SMALL=1 bash benchmarks/device_run.sh    # tiny sizes, to check the script on a CPU
#
# Sets: "seeds" (4 seeds as one --num-seeds run against 4 sequential runs), "env" (env steps/s, MJX and pure JAX), "meta" (one compiled meta-iteration of every registered
# algorithm on its preset env, at an accelerator-sized meta-batch), "full" (MAML on cheetah_vel at
# pytorch-maml-rl's full budget: 500 meta-iterations x 40 tasks x 20 episodes x H 100 in MJX, about
# 80M env steps counting the pre- and post-adaptation episodes; the target is under 5 minutes).
#
# Copy the JSON files into benchmarks/results/ afterwards; `python benchmarks/summarize.py` tables them.
set -u
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)

if [ "${SMALL:-0}" = 1 ]; then
  MJX_B="16"; JAX_B="64"; META_RL2="16"; META_MAML="4"; STEPS=10; SCALE=4
else
  MJX_B="1024 8192"; JAX_B="1024 8192"; META_RL2="256 1024 4096"; META_MAML="40 160"; STEPS=100; SCALE=1
fi
limit() { echo $(($1 * SCALE)); }  # per-benchmark time limits, in seconds (about 8 minutes in all)

LOG="$OUT/run.log"  # one log for everything: the device tool brings back at most 8 files
run() {  # run <name> <limit_s> <command...>: append to $LOG, never fail the script
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
  echo "=== $name: exit $? after $((SECONDS - t0)) s" | tee -a "$LOG"
}

{ nvidia-smi -L 2>/dev/null; $PY -c "import jax, sys; print(sys.version.split()[0], 'jax', jax.__version__, jax.devices())"; } 2>&1 | tee -a "$LOG"

SETS=${SETS:-meta full}
has() { case " $SETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if has env; then
# shellcheck disable=SC2086
run env_mjx_locomotion "$(limit 130)" $PY "$here/env_throughput.py" --envs cheetah_vel ant_goal --paths mjx \
  --batch-sizes $MJX_B --steps "$STEPS" --repeats 2 --no-rollout-baseline --out "$OUT/env_throughput_mjx_gpu.json"
# shellcheck disable=SC2086
run env_jax "$(limit 100)" $PY "$here/env_throughput.py" --envs point_nav grid_nav bandit maze2d maze3d visual_nav \
  --batch-sizes $JAX_B --steps "$STEPS" --repeats 3 --out "$OUT/env_throughput_jax_gpu.json"
# shellcheck disable=SC2086
run env_mjx_maesn "$(limit 90)" $PY "$here/env_throughput.py" --envs wheeled_nav ant_goal_ring block_push --paths mjx \
  --batch-sizes $MJX_B --steps "$STEPS" --repeats 3 --no-baselines --out "$OUT/env_throughput_maesn_gpu.json"
# shellcheck disable=SC2086
run meta_rl2_grid "$(limit 60)" $PY "$here/meta_step.py" --algo rl2 --env grid_nav --meta-batch-sizes $META_RL2 \
  --out "$OUT/meta_step_rl2_grid_nav_gpu.json"
# shellcheck disable=SC2086
run meta_rl2_bandit "$(limit 45)" $PY "$here/meta_step.py" --algo rl2 --env bandit --meta-batch-sizes $META_RL2 \
  --out "$OUT/meta_step_rl2_bandit_gpu.json"
# shellcheck disable=SC2086
run meta_maml_point "$(limit 45)" $PY "$here/meta_step.py" --algo maml --env point_nav --meta-batch-sizes $META_MAML \
  --out "$OUT/meta_step_maml_point_nav_gpu.json"
fi

if has seeds; then
  run seeds_maml_point "$(limit 240)" $PY "$here/seeds.py" --algo maml --env point_nav --num-seeds 4 \
    --meta-iters "$STEPS" --out "$OUT/seeds_maml_point_nav_gpu.json"
fi

if has meta; then
  # One compiled meta-iteration of every algorithm on its preset env (compile time, iterations/s, env
  # steps/s). RL² and MAML on point_nav are the env set's; the rest at one accelerator-sized meta-batch.
  if [ "${SMALL:-0}" = 1 ]; then ALGO_B=4; ALGO_LIMIT=120; else ALGO_B=160; ALGO_LIMIT=40; fi
  parts=$(mktemp -d)  # one JSON per algorithm here, merged into one file in $OUT (few files come back)
  for pair in fomaml:point_nav reptile:point_nav cavia:point_nav promp:point_nav emaml:point_nav \
              metasgd:point_nav maesn:point_nav:semicircle pearl:point_nav:pearl varibad:grid_nav \
              task_inference:grid_nav erl2:maze2d:small dream:maze2d:small rl2:maze2d:small; do
    IFS=: read -r algo env variant <<<"$pair"
    extra=()
    [ -n "${variant:-}" ] && extra=(--env-variant "$variant")
    run "meta_${algo}_${env}" "$ALGO_LIMIT" $PY "$here/meta_step.py" --algo "$algo" --env "$env" "${extra[@]}" --preset \
      --meta-batch-sizes "$ALGO_B" --iters 3 --out "$parts/meta_step_${algo}_${env}.json"
  done
  $PY - "$parts" "$OUT/meta_step_every_algo_gpu.json" <<'PYEOF' >>"$LOG" 2>&1 || true
import json, os, sys
parts, out = sys.argv[1], sys.argv[2]
merged = {name[:-5]: json.load(open(os.path.join(parts, name))) for name in sorted(os.listdir(parts)) if name.endswith(".json")}
json.dump(merged, open(out, "w"), indent=2)
print("=== merged", len(merged), "meta-step benchmarks into", out)
PYEOF
fi

if has full; then
  runs=$(mktemp -d)  # the run directory stays on the machine; its summary comes back
  # pytorch-maml-rl's full budget on cheetah_vel, MJX: the whole run including compilation, timed.
  if [ "${SMALL:-0}" = 1 ]; then
    FULL=(--meta-iters 2 --meta-batch-size 2 --maml.episodes-per-task 2 --env-horizon 10 --env-physics mujoco)
    FULL_LIMIT=300
  else
    FULL=(--meta-iters 500 --meta-batch-size 40 --maml.episodes-per-task 20 --env-horizon 100 --env-physics mjx)
    FULL_LIMIT=330
  fi
  run maml_cheetah_vel_full "$FULL_LIMIT" $PY -m jmeta.train --algo maml --env cheetah_vel "${FULL[@]}" \
    --chunk-size 25 --eval-every 100 --eval-tasks 40 --no-report --no-progress --logdir "$runs" \
    --run-name maml_cheetah_vel_full
  # The run's own record of its time: compile, env steps/s, the final meta-test.
  $PY - "$runs/maml_cheetah_vel_full" "$OUT/maml_cheetah_vel_full_gpu.json" <<'PYEOF' >>"$LOG" 2>&1 || true
import json, os, sys
run, out = sys.argv[1], sys.argv[2]
records = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
train = [r for r in records if r["kind"] == "train"]
info = json.load(open(os.path.join(run, "run_info.json")))["sessions"][-1]
summary = {"command": " ".join(info["argv"]), "devices": info["devices"], "jax": info["packages"].get("jax"),
           "iterations": len(train), "env_steps": train[-1]["env_steps"] if train else 0,
           "compile_s": sum(r.get("perf/compile_s", 0.0) for r in records),
           "train_s": sum(1.0 / r["perf/iters_per_s"] for r in train),
           "eval": json.load(open(os.path.join(run, "eval.json"))) if os.path.exists(os.path.join(run, "eval.json")) else None}
json.dump(summary, open(out, "w"), indent=2)
print("=== full-budget summary:", {k: v for k, v in summary.items() if k != "eval"})
PYEOF
fi
