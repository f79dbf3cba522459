#!/usr/bin/env bash
# The main job: build exitrl, then warm-start a policy on a task domain's demonstrations.
# With a GPU it trains the small config on CUDA; without one, the tiny config on the CPU.
# Usage: tools/run_demo.sh [extra --key value overrides for pretrain]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default >/dev/null
if ./build/exitrl info | grep -q "^GPU available: yes"; then
    config=configs/small_gpu.conf; name=demo_gpu
else
    config=configs/tiny_cpu.conf; name=demo_cpu
fi
echo "exitrl demo: $config -> runs/$name"
./build/exitrl pretrain --config "$config" --name "$name" --progress 1 "$@"
