#!/usr/bin/env bash
# The README's deployment walkthrough, followed literally on one machine:
#   1. gpud on the node (here with the stand-in libnvidia-ml.so.1 the build makes),
#   2. perseus serve (the coordinator),
#   3. a training job with the hook (examples/torch_pipeline.py: it creates the
#      job from the schedule it runs, profiles itself in the training loop,
#      uploads, follows the plan; its clock changes go through gpud),
#   4. perseus report from the coordinator, and gpud holding no GPU afterwards.
# The GPUs are simulated (each rank's time and energy come from the shipped
# GPT-3 profile); nothing here touches a real GPU. Prints the training job's
# JSON line last; exits non-zero if any step fails.
#
# Usage: scripts/walkthrough.sh [WORKDIR]   (from the repository root, after scripts/setup.sh)
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${PERSEUS_BIN_DIR:-build/bin}
PERSEUS=$(realpath "$BIN/perseus")
PYTHON=${PYTHON:-.venv/bin/python}
STAND_IN=$(realpath "$BIN/../fake_nvml/libnvidia-ml.so.1")
WORK=${1:-$(mktemp -d /tmp/perseus-walkthrough.XXXXXX)}
mkdir -p "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
say() { echo "walkthrough: $*" >&2; }

# The stand-in NVML, for gpud and for the ranks' reads (a real node has the
# driver's); it logs gpud's calls, so the clock changes gpud made can be read back.
export PERSEUS_NVML_LIBRARY=$STAND_IN

# 1. The clock daemon, as root on every node.
say "1. perseus gpud --socket $WORK/gpud.sock --mode 0600"
FAKE_NVML_LOG=$WORK/gpud-nvml.log "$PERSEUS" gpud --socket "$WORK/gpud.sock" --mode 0600 \
  2>"$WORK/gpud.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$WORK/gpud.sock" ] && break; sleep 0.1; done
[ -S "$WORK/gpud.sock" ] || { say "gpud did not start"; cat "$WORK/gpud.log" >&2; exit 1; }
"$PERSEUS" gpu info --gpud "$WORK/gpud.sock" >&2

# 2. The coordinator, once per cluster.
say "2. perseus serve --listen 127.0.0.1:0 --db $WORK/jobs.db"
coproc SERVE { exec "$PERSEUS" serve --listen 127.0.0.1:0 --db "$WORK/jobs.db" 2>"$WORK/serve.log"; }
pids+=("$SERVE_PID")
read -r -t 30 line <&"${SERVE[0]}" || { say "perseus serve did not start"; cat "$WORK/serve.log" >&2; exit 1; }
URL=${line##* }
say "   coordinator at $URL"

# 3. The training job with the hook: creates its job, profiles in the job, trains.
say "3. examples/torch_pipeline.py --server $URL --gpud $WORK/gpud.sock --perseus --profile-in-job"
"$PYTHON" examples/torch_pipeline.py --schedule 1F1B --stages 2 --microbatches 4 --iterations 3 \
  --time-scale 0.25 --perseus --profile-in-job --profile-clocks 6 --server "$URL" \
  --gpud "$WORK/gpud.sock" --json --timeout 300 >"$WORK/train.json"
JOB=$("$PYTHON" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["job_id"])' "$WORK/train.json")

# 4. What the job saved, from the coordinator; gpud restored every clock.
say "4. perseus report --server $URL --job $JOB --out $WORK/report"
"$PERSEUS" report --server "$URL" --job "$JOB" --out "$WORK/report" >&2
"$PERSEUS" gpu info --gpud "$WORK/gpud.sock" --json >"$WORK/gpud-after.json"
"$PYTHON" - "$WORK/gpud-after.json" <<'EOF'
import json, sys
gpus = json.load(open(sys.argv[1]))["gpus"]
held = [g for g in gpus if g["owner_pid"] != 0]
assert not held, f"gpud still holds {held}"
EOF
locks=$(grep -c "nvmlDeviceSetGpuLockedClocks.* -> 0" "$WORK/gpud-nvml.log" || true)
[ "$locks" -gt 0 ] || { say "no clock was set through gpud"; exit 1; }
say "   gpud set $locks clocks for the job and holds no GPU now"
say "done: $WORK (report: $WORK/report/report.html)"
tail -n 1 "$WORK/train.json"
