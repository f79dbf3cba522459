#!/usr/bin/env bash
# The one command a session with a lent GPU runs: builds for Hopper, runs the GPU tests, the
# compute-sanitizer pass, the GPU benchmarks and the Nsight Compute profile, and leaves what it
# found under OUT (a folder whose files come back from the device machine):
#   OUT/summary.txt        each step's status and elapsed time, then the benchmark results
#   OUT/session.log        every step's full output, one after another (headers "==== step")
#   OUT/<bench>.jsonl      each benchmark's JSONL lines (train_step_gpu, kernels_gpu,
#                          rollout_gpu, exit_iteration_gpu): append them to bench/results/
#   OUT/ncu_summary.txt    the per-kernel Nsight Compute summary, when ncu ran
# At most 6 files, none in a subfolder. Every step runs under its own time cap, and the whole
# call under a budget (GPU_SESSION_BUDGET seconds, default 570, inside the device's 10-minute
# command limit): a step that would not fit in what is left is skipped and says so. A step that
# fails is recorded and the next one still runs (the benchmarks and tests only need the build).
#
# Usage: tools/gpu_session.sh [--part 1|2|all | --steps LIST] [--dry-run] [OUT]
#   --part 1     env,build,test,train,kernels                  (first device call)
#   --part 2     env,build,rollout,exit,sanitize,ncu,train_gpt2vocab   (second call; the build is
#                a no-op when the machine is still warm, else it is rebuilt)
#   --part all   every step (default; more than one 10-minute call holds)
#   --steps LIST any of: env build test sanitize train train_gpt2vocab kernels rollout exit ncu
#   --dry-run    print the steps and their commands, run nothing
#   OUT          default $OUT, else out/gpu_session_<UTC time>
# Environment: GPU_SESSION_BUDGET (seconds), EXITRL_GIT_REVISION (the revision recorded in the
# JSONL when the tree has no .git, as on the device machine), JOBS (build parallelism, default 16).
# A GPU test that skipped (no usable GPU) makes the test step "skipped (exit 77)", not ok.
# Exit: 0 when every step that ran passed or skipped, 1 otherwise, 2 usage.
set -u
steps=""
dry=0
out="${OUT:-}"
while [ $# -gt 0 ]; do
    case "$1" in
    --part)
        case "${2:-}" in
        1) steps="env build test train kernels" ;;
        2) steps="env build rollout exit sanitize ncu train_gpt2vocab" ;;
        all) steps="env build test train kernels rollout exit sanitize ncu train_gpt2vocab" ;;
        *) echo "gpu_session: --part takes 1, 2 or all, not '${2:-}'" >&2; exit 2 ;;
        esac
        shift 2 ;;
    --steps) steps=$(printf '%s' "${2:-}" | tr ',' ' '); shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_session: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) out="$1"; shift ;;
    esac
done
[ -z "$steps" ] && steps="env build test train kernels rollout exit sanitize ncu train_gpt2vocab"
known=" env build test sanitize train train_gpt2vocab kernels rollout exit ncu "
for s in $steps; do
    case "$known" in
    *" $s "*) ;;
    *) echo "gpu_session: unknown step '$s'" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
[ -z "$out" ] && out="$root/out/gpu_session_$(date -u +%Y%m%dT%H%M%SZ)"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
budget=${GPU_SESSION_BUDGET:-570}
jobs=${JOBS:-16}
reserve=15 # seconds kept for the summary at the end
start=$(date +%s)
log="$out/session.log"
summary="$out/summary.txt"
build=build
export PYTHONUNBUFFERED=1
if [ -z "${EXITRL_GIT_REVISION:-}" ]; then
    rev=$(git -C "$root" rev-parse --short HEAD 2> /dev/null || true)
    [ -n "$rev" ] && export EXITRL_GIT_REVISION="$rev"
fi

# cuDNN: when the system has no cudnn.h, use the one PyTorch's wheel brings (nvidia-cudnn-cu13),
# so the backend's cuDNN attention is built and can be measured.
cmake_extra=()
if ! ls /usr/include/cudnn.h /usr/include/*/cudnn.h /usr/local/cuda/include/cudnn.h > /dev/null 2>&1; then
    dnn=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2> /dev/null || true)
    if [ -n "$dnn" ] && [ -f "$dnn/include/cudnn.h" ]; then
        lib=$(ls "$dnn"/lib/libcudnn.so* 2> /dev/null | head -n 1)
        if [ -n "$lib" ]; then
            cmake_extra=(-DCUDNN_LIBRARY="$lib" -DCMAKE_CUDA_FLAGS="-I$dnn/include")
            export CPATH="$dnn/include${CPATH:+:$CPATH}"
            export LD_LIBRARY_PATH="$dnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        fi
    fi
fi

# name | time cap (s) | least time worth starting it with (s) | command
step_spec() {
    local b="$build/bench"
    case "$1" in
    env) echo "60|5|nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; nvcc --version | tail -n 2; cmake --version | head -n 1; python3 -c 'import torch, sys; print(\"python\", sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"gpu\", torch.cuda.is_available() and torch.cuda.get_device_name())'; command -v ncu compute-sanitizer; ls /usr/include/cudnn.h /usr/local/cuda/include/cudnn.h 2>&1; echo \"cmake extra: ${cmake_extra[*]}\"; echo \"git revision: ${EXITRL_GIT_REVISION:-unknown}\"; uname -r; nproc; free -g | head -n 2; df -h . | tail -n 1" ;;
    build) echo "330|60|cmake --preset default ${cmake_extra[*]} && cmake --build $build -j $jobs" ;;
    test) echo "240|30|ctest --preset gpu --output-on-failure 2>&1 | tee '$out/ctest.tmp'; rc=\${PIPESTATUS[0]}; grep -q '(Skipped)' '$out/ctest.tmp' && [ \$rc = 0 ] && rc=77; rm -f '$out/ctest.tmp'; exit \$rc" ;;
    sanitize) echo "300|60|tests/gpu_sanitize.sh $build" ;;
    train) echo "300|90|$b/bench_train --device cuda --out '$out/train_step_gpu.jsonl'" ;;
    train_gpt2vocab) echo "300|90|$b/bench_train --device cuda --vocab 50257 --out '$out/train_step_gpu.jsonl'" ;;
    kernels) echo "240|45|$b/bench_kernels --out '$out/kernels_gpu.jsonl'" ;;
    rollout) echo "300|60|$b/bench_rollout --device cuda --out '$out/rollout_gpu.jsonl'" ;;
    exit) echo "240|45|$b/bench_exit_iteration --device cuda --out '$out/exit_iteration_gpu.jsonl'" ;;
    ncu) echo "240|60|mkdir -p '$out/ncu' && SUMMARY_DIR='$out/ncu' NCU_EXTRA='--clock-control none' NCU_LAUNCH_COUNT=400 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 profiles/ncu_train_step.sh $b/bench_train --device cuda --configs gpt2-124m --batch 4 --steps 1 --warmup 0 --no-peer --out /dev/null; rc=\$?; mv '$out'/ncu/summary_*.txt '$out/ncu_summary.txt' 2>/dev/null; rm -rf '$out/ncu'; exit \$rc" ;;
    esac
}

if [ $dry = 0 ] && ! mkdir -p "$out"; then
    echo "gpu_session: cannot create $out" >&2
    exit 2
fi
if [ $dry = 1 ]; then
    echo "budget ${budget}s, out $out"
    for s in $steps; do
        IFS='|' read -r cap least cmd <<< "$(step_spec "$s")"
        printf '%-16s cap %4ss  %s\n' "$s" "$cap" "$cmd"
    done
    exit 0
fi

: > "$log"
{
    echo "gpu_session: steps: $steps"
    echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${budget}s, revision ${EXITRL_GIT_REVISION:-unknown}"
    printf '%-16s %-28s %7s\n' step status seconds
} > "$summary"
cat "$summary"

failed=0
build_ok=1
for s in $steps; do
    IFS='|' read -r cap least cmd <<< "$(step_spec "$s")"
    left=$((budget - ($(date +%s) - start) - reserve))
    status=""
    if [ "$s" != env ] && [ "$s" != build ] && [ $build_ok = 0 ]; then
        status="skipped (build failed)"
    elif [ $left -lt "$least" ]; then
        status="skipped (${left}s left)"
    fi
    if [ -n "$status" ]; then
        printf '%-16s %-28s %7s\n' "$s" "$status" - | tee -a "$summary"
        continue
    fi
    [ $left -lt "$cap" ] && cap=$left
    offset=$(($(stat -c %s "$log") + 1))
    printf '\n==== step %s (cap %ss): %s\n' "$s" "$cap" "$cmd" >> "$log"
    t0=$(date +%s)
    timeout -k 10 "$cap" bash -c "$cmd" >> "$log" 2>&1 < /dev/null
    rc=$?
    dt=$(($(date +%s) - t0))
    case $rc in
    0) status=ok ;;
    77) status="skipped (exit 77)" ;;
    124 | 137) status="TIMEOUT after ${cap}s"; failed=1 ;;
    *) status="FAILED (exit $rc)"; failed=1 ;;
    esac
    [ "$s" = build ] && [ $rc != 0 ] && build_ok=0
    printf '==== step %s: %s in %ss\n' "$s" "$status" "$dt" >> "$log"
    printf '%-16s %-28s %7s\n' "$s" "$status" "$dt" | tee -a "$summary"
    # The step's last lines (its result table, or the error) go to the reply's output too.
    tail -c +"$offset" "$log" | grep -v '^\[ *[0-9]*%\]' | tail -n 12 | sed 's/^/    /'
done

# The benchmark results in short, from the JSONL files.
python3 - "$out" >> "$summary" 2> /dev/null << 'EOF'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
    print(f"\n{os.path.basename(path)}")
    for line in open(path):
        try:
            r = json.loads(line)
        except ValueError:
            print("  (a line that is not JSON)")
            continue
        what = r.get("shape") or " ".join(f"{k}={r[k]}" for k in ("config", "B", "T", "V", "batch", "P", "G")
                                          if k in r)
        text = f"  {r['bench']:<36} {what:<40} {r.get('value', '-'):>10} {r.get('unit', '')}"
        for k in ("mfu", "roofline_fraction"):
            if k in r:
                text += f"  {k} {r[k]}"
        if "peer" in r:
            text += f"  vs {r['peer']}: " + (f"ratio {r['ratio']}" if "ratio" in r else "unavailable")
        if "met" in r:
            text += f"  target met: {r['met']}"
        print(text)
EOF
size=$(stat -c %s "$log")
if [ "$size" -gt $((15 << 20)) ]; then # the device returns files of at most 16 MiB
    { head -c $((7 << 20)) "$log"; printf '\n[... %s bytes cut ...]\n' "$size"; tail -c $((7 << 20)) "$log"; } > "$log.cut"
    mv "$log.cut" "$log"
fi
echo "total $(($(date +%s) - start))s; files in $out: $(ls "$out" | tr '\n' ' ')" | tee -a "$summary"
echo
sed -n '/^$/,$p' "$summary"
exit $failed
