#!/usr/bin/env bash
# The main job: build exitrl, warm-start a policy on arith demonstrations, train it with ExIt, and
# evaluate multi-step self-improvement on held-out problems (JSON + PNG plot).
# With a GPU: the small config on CUDA; without one: the tiny config on the CPU (a few minutes on
# 2 cores). Outputs go to runs/demo_{cpu,gpu}_{warm,exit}/ and runs/demo_{cpu,gpu}_eval.{json,png}.
# Usage: tools/run_demo.sh [cpu|gpu]   (default: gpu when one is present)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
if [ -z "$mode" ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then mode=gpu; else mode=cpu; fi
fi
case "$mode" in
    cpu) size=tiny_cpu; preset=cpu ;;     # no CUDA compile: the CPU run needs none
    gpu) size=small_gpu; preset=default ;;
    *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
echo "== exitrl demo ($mode): build (preset $preset)"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" >/dev/null
bin="build$([ "$preset" = cpu ] && echo -cpu)/exitrl"
name="demo_$mode"
echo "== exitrl demo ($mode): warm start"
"$bin" pretrain --config "configs/${size}.conf" --name "${name}_warm" --progress 1
echo "== exitrl demo ($mode): ExIt"
"$bin" train --config "configs/${size}_exit.conf" --init "runs/${name}_warm/checkpoint.bin" \
    --name "${name}_exit" --progress 1
echo "== exitrl demo ($mode): multi-step evaluation"
"$bin" eval --config "configs/${size}_exit.conf" --runs "runs/${name}_warm,runs/${name}_exit" \
    --out "runs/${name}_eval.json"
