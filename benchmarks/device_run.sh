#!/usr/bin/env bash
# The accelerator benchmarks, as one script for a lent GPU machine:
# every benchmark writes its JSON (hardware, versions, config, the exact command) into $OUT, one
# file each, saved after every measurement, and a failing or slow benchmark does not stop the others (each has its own time limit).
#
#   OUT=/tmp/out bash benchmarks/device_run.sh            # the full set (about 8 minutes on an H200)
#   OUT=/tmp/out SMALL=1 bash benchmarks/device_run.sh    # tiny sizes, to check the script on a CPU
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
