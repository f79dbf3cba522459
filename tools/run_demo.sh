#!/usr/bin/env bash
# The main job: build exitrl, warm-start a policy on task demonstrations (knapsack on the CPU,
# arith on a GPU), train it with ExIt, and evaluate multi-step self-improvement on held-out
# problems: the k=0 and k=K scores of both policies, a JSON table and a PNG plot.
# With a GPU: the small config on CUDA; without one: the tiny config on the CPU (about 5 minutes
# on 2 cores). Outputs go to runs/demo_{cpu,gpu}_{warm,exit}/ and runs/demo_{cpu,gpu}_eval.{json,png}.
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
builddir="build$([ "$preset" = cpu ] && echo -cpu)"
cmake --preset "$preset" >/dev/null
# The CPU backend's matmuls use OpenBLAS when CMake finds it: install it where we can (root on Debian).
if grep -Eq '^CBLAS_(LIBRARY|INCLUDE_DIR):[A-Z]+=.*NOTFOUND' "$builddir/CMakeCache.txt"; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== exitrl demo ($mode): installing libopenblas-openmp-dev for the CPU backend's matmuls"
        (apt-get install -y -qq libopenblas-openmp-dev >/dev/null 2>&1 ||
         { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libopenblas-openmp-dev >/dev/null 2>&1; }) &&
            cmake --preset "$preset" >/dev/null ||
            echo "exitrl demo: could not install libopenblas-openmp-dev: the CPU backend runs without BLAS, slower"
    else
        echo "exitrl demo: no OpenBLAS found: the CPU backend runs without it, slower (Debian: apt-get install libopenblas-openmp-dev)"
    fi
fi
cmake --build --preset "$preset" >/dev/null
bin="$builddir/exitrl"
"$bin" info | grep '^BLAS:' || true
name="demo_$mode"
echo "== exitrl demo ($mode): warm start"
"$bin" pretrain --config "configs/${size}.conf" --name "${name}_warm" --progress 1
echo "== exitrl demo ($mode): ExIt"
"$bin" train --config "configs/${size}_exit.conf" --init "runs/${name}_warm/checkpoint.bin" \
    --name "${name}_exit" --progress 1
# The plot needs python3 with matplotlib (exitrl eval tries $EXITRL_PYTHON, python3, /usr/bin/python3).
have_matplotlib() {
    for py in ${EXITRL_PYTHON:-} python3 /usr/bin/python3; do
        command -v "$py" >/dev/null && "$py" -c "import matplotlib" 2>/dev/null && return 0
    done
    return 1
}
if ! have_matplotlib; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== exitrl demo ($mode): installing python3-matplotlib for the plot"
        (apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 ||
         { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-matplotlib >/dev/null 2>&1; }) ||
            echo "exitrl demo: could not install python3-matplotlib; the plot will be skipped"
    else
        echo "exitrl demo: no python3 with matplotlib, so no plot: install it with 'apt-get install python3-matplotlib' (Debian) or 'pip install matplotlib'"
    fi
fi
echo "== exitrl demo ($mode): multi-step evaluation"
# Temperature 0.6, as the study (tools/study.py) evaluates; 256 held-out instances x 2 chains.
"$bin" eval --config "configs/${size}_exit.conf" --runs "runs/${name}_warm,runs/${name}_exit" \
    --temperature 0.6 --eval_samples 2 --eval_instances 256 --out "runs/${name}_eval.json"
python3 - "runs/${name}_eval.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
K = runs[0]["K"]
print(f"== exitrl demo: held-out score over K = {K} self-improvement steps ({runs[0]['task']}, "
      f"{runs[0]['instances']} instances x {runs[0]['samples']} chains)")
for r in runs:
    name = r["run"].rstrip("/").split("/")[-1]
    print(f"  {name:16s} k=0 {r['score'][0]:.3f}  k={K} {r['score'][K]:.3f}  Delta_K {r['score'][K] - r['score'][0]:+.3f}"
          f"  (standard error of each score ~{max(r.get('score_se', [0])):.3f})")
PY
if [ -f "runs/${name}_eval.png" ]; then echo "== exitrl demo: plot runs/${name}_eval.png"; fi
