#!/usr/bin/env bash
# The main job: build exitrl, warm-start a policy on arith demonstrations, train it with ExIt, and
# evaluate multi-step self-improvement on held-out problems (JSON + PNG plot).
# With a GPU: the small config on CUDA; without one: the tiny config on the CPU (a few minutes on
# 2 cores). Outputs go to runs/demo_{cpu,gpu}_{warm,exit}/ and runs/demo_{cpu,gpu}_eval.{json,png}.
# Usage: tools/run_demo.sh [cpu|gpu]   (default: gpu when one is present)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default >/dev/null
mode="${1:-}"
if [ -z "$mode" ]; then
    if ./build/exitrl info | grep -q "^GPU available: yes"; then mode=gpu; else mode=cpu; fi
fi
case "$mode" in
    cpu) size=tiny_cpu ;;
    gpu) size=small_gpu ;;
    *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
name="demo_$mode"
echo "== exitrl demo ($mode): warm start"
./build/exitrl pretrain --config "configs/${size}.conf" --name "${name}_warm" --progress 1
echo "== exitrl demo ($mode): ExIt"
./build/exitrl train --config "configs/${size}_exit.conf" --init "runs/${name}_warm/checkpoint.bin" \
    --name "${name}_exit" --progress 1
echo "== exitrl demo ($mode): multi-step evaluation"
./build/exitrl eval --config "configs/${size}_exit.conf" --runs "runs/${name}_warm,runs/${name}_exit" \
    --out "runs/${name}_eval.json"
