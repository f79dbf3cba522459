#!/usr/bin/env bash
# The one command a session with a lent GPU runs. It spends no device time compiling when the
# tree comes with prebuilt/ (tools/gpu_prebuild.sh, run beforehand on any machine with nvcc) and
# runs, in this order of value: the GPU tests, bench_train --device cuda against torch eager and
# torch.compile (gpt2-124m), bench_rollout and bench_exit_iteration on CUDA with their peers,
# bench_kernels (gpt2-124m shapes, 10 calls per op), compute-sanitizer memcheck on test_gpu_ops,
# and the Nsight Compute summary of a training step if time is left. On the device machine:
#
#   tools/gpu_session.sh $OUT          (with prebuilt/ carried along: it is ignored by git)
#
# It leaves at most 8 files under OUT, none in a subfolder and none over 16 MiB:
#   OUT/summary.txt        where the binaries came from, each step's status and seconds, the
#                          command that reruns the steps that failed, then the benchmark results
#   OUT/session.log        every step's full output, one after another (headers "==== step")
#   OUT/<bench>.jsonl      each benchmark's JSONL lines (train_step_gpu, rollout_gpu,
#                          exit_iteration_gpu, kernels_gpu): append them to bench/results/
#   OUT/ncu_summary.txt    the per-kernel Nsight Compute summary, when ncu ran
# The binaries: prebuilt/ when its binaries load here (no missing shared library once the CUDA
# and cuDNN libraries of PyTorch's wheels are added to LD_LIBRARY_PATH, when those are what is
# missing) and the driver runs their CUDA major version; otherwise (or with --rebuild) the build
# step builds them with tools/gpu_prebuild.sh on all cores (about a minute or two), and the summary
# says so. prebuilt/ built from other sources than the tree's is used all the same, with a warning
# in the summary, and the JSONL lines carry the revision it was built from (its MANIFEST).
#
# Every step runs under its own time cap (seconds), the whole call under a budget
# (GPU_SESSION_BUDGET, default 420, inside the device's 10-minute command limit): a step that
# would not fit in what is left is skipped and says so. A step that fails is recorded and the
# next one still runs; a benchmark step passes only when it appended a JSONL line. Without a GPU
# (nvidia-smi lists none) the benchmarks and ncu are skipped, and the tests and memcheck skip
# themselves (exit 77): the plumbing can be tried anywhere.
#
# Usage: tools/gpu_session.sh [--steps LIST] [--rebuild] [--dry-run] [OUT]
#   --steps LIST  comma-separated, run in the order given; env and build are always added first
#                 (build only finds the binaries, or builds them). Default: every step below but
#                 the last two. Steps: env build test train rollout exit kernels memcheck ncu,
#                 and, only when named: sanitize (tests/gpu_sanitize.sh: memcheck and racecheck)
#                 and train_gpt2vocab (bench_train with GPT-2's 50257-token vocabulary).
#                 The summary ends with the --steps line that reruns what failed or did not fit.
#   --rebuild     build the binaries here even when prebuilt/ loads (e.g. it is stale)
#   --dry-run     say where the binaries would come from, print the steps and their caps and
#                 commands; run nothing, write nothing
#   OUT           default $OUT, else out/gpu_session_<UTC time>
# Environment: GPU_SESSION_BUDGET (seconds), EXITRL_GIT_REVISION (the revision recorded in the
# JSONL; default: prebuilt/MANIFEST's when its binaries run, else the tree's git revision),
# JOBS and NICE (parallelism and niceness of a build here; default all cores, 0).
# Exit: 0 when every step that ran passed or skipped, 1 otherwise, 2 usage.
set -u
default_steps="env build test train rollout exit kernels memcheck ncu"
known=" env build test train rollout exit kernels memcheck ncu sanitize train_gpt2vocab "
steps=""
dry=0
rebuild=0
out="${OUT:-}"
while [ $# -gt 0 ]; do
    case "$1" in
    --steps) steps=$(printf '%s' "${2:-}" | tr ',' ' '); shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_session: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) out="$1"; shift ;;
    esac
done
if [ -z "$steps" ]; then
    steps=$default_steps
else
    for s in $steps; do
        case "$known" in
        *" $s "*) ;;
        *) echo "gpu_session: unknown step '$s' (see --help)" >&2; exit 2 ;;
        esac
    done
    rest=$(printf ' %s ' $steps | sed 's/ env / /g; s/ build / /g')
    steps="env build$(echo $rest | sed 's/^/ /; s/ *$//')"
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
[ -z "$out" ] && out="$root/out/gpu_session_$(date -u +%Y%m%dT%H%M%SZ)"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
budget=${GPU_SESSION_BUDGET:-420}
reserve=10 # seconds kept for the summary at the end
start=$(date +%s)
log="$out/session.log"
summary="$out/summary.txt"
bin="$root/prebuilt"
export PYTHONUNBUFFERED=1
# The benchmarks find their peers under $EXITRL_SOURCE_DIR/bench/peers/: prebuilt/ has the copies
# that go with its binaries (bench/bench_common.c, bench_source_dir()).
export EXITRL_SOURCE_DIR="$bin"

# ---- the GPU ----
gpu=""
if command -v nvidia-smi > /dev/null; then
    gpu=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -n 1)
fi
driver_cuda=$(timeout 20 nvidia-smi 2> /dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9.]*\).*/\1/p' | head -n 1)

# ---- shared libraries: PyTorch's wheels bring CUDA's and cuDNN's where the system has none ----
wheel_lib_dirs() {
    python3 - 2> /dev/null << 'EOF'
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "nvidia", "*", "*", "lib"))
                    + glob.glob(os.path.join(r, "torch", "lib"))):
        print(d)
EOF
}
missing_libs() { # the sonames the binaries in $1 need and the loader does not find
    ldd "$1"/tests/test_gpu_* "$1"/bench/bench_* 2> /dev/null | awk '/not found/ { print $1 }' | sort -u
}
libs_note=""
resolve_libs() { # adds to LD_LIBRARY_PATH the first folder holding each missing library
    local lib d dirs=""
    for lib in $(missing_libs "$1"); do
        for d in $(wheel_lib_dirs) /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-*/lib64 \
            /usr/local/cuda/targets/*/lib; do
            if [ -e "$d/$lib" ]; then
                case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
                dirs="$dirs $lib->$d"
                break
            fi
        done
    done
    [ -n "$dirs" ] && libs_note="LD_LIBRARY_PATH adds:$dirs"
}
manifest_value() { sed -n "s/^$1 //p" "$bin/MANIFEST" 2> /dev/null | head -n 1; }

# Can the binaries in prebuilt/ run here? Sets why_not to the reason when they cannot.
why_not=""
prebuilt_usable() {
    why_not=""
    if [ ! -f "$bin/MANIFEST" ]; then
        why_not="no prebuilt/ (tools/gpu_prebuild.sh makes it)"
        return 1
    fi
    resolve_libs "$bin"
    local check
    if ! check=$(tools/gpu_prebuild.sh --check "$bin" 2>&1); then
        why_not="prebuilt/ does not load: $(echo "$check" | head -n 3 | tr '\n' ' ')"
        return 1
    fi
    local built_major driver_major
    built_major=$(manifest_value nvcc | sed -n 's/.*cuda_\([0-9]*\)\..*/\1/p')
    driver_major=${driver_cuda%%.*}
    if [ -n "$built_major" ] && [ -n "$driver_major" ] && [ "$driver_major" -lt "$built_major" ]; then
        why_not="prebuilt/ needs a CUDA $built_major driver; this one runs CUDA $driver_cuda"
        return 1
    fi
    return 0
}

# cuDNN: when the system has no cudnn.h, a build here uses the one PyTorch's wheel brings
# (nvidia-cudnn-cu13), so the backend's cuDNN attention is built and can be measured.
cmake_extra=()
if ! ls /usr/include/cudnn.h /usr/include/*/cudnn.h /usr/local/cuda/include/cudnn.h > /dev/null 2>&1; then
    dnn=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2> /dev/null || true)
    if [ -n "$dnn" ] && [ -f "$dnn/include/cudnn.h" ]; then
        lib=$(ls "$dnn"/lib/libcudnn.so* 2> /dev/null | head -n 1)
        [ -n "$lib" ] && cmake_extra=(-DCUDNN_LIBRARY="$lib" -DCMAKE_CUDA_FLAGS="-I$dnn/include")
    fi
fi

# Where the binaries come from: "prebuilt" or "build" (and why).
source_of_bins=prebuilt
if [ $rebuild = 1 ]; then
    source_of_bins=build
    bins_note="--rebuild: building them here with tools/gpu_prebuild.sh"
elif prebuilt_usable; then
    stale=""
    tree_hash=$(tools/gpu_prebuild.sh --source-hash 2> /dev/null)
    [ -n "$tree_hash" ] && [ "$tree_hash" != "$(manifest_value source_hash)" ] &&
        stale="; WARNING: built from other sources than this tree's (hash $(manifest_value source_hash), tree $tree_hash): rebuild with tools/gpu_prebuild.sh, or rerun with --rebuild"
    bins_note="prebuilt/ (revision $(manifest_value revision), built $(manifest_value built | cut -d' ' -f1), $(manifest_value nvcc | sed 's/.*cuda_\([0-9.]*\)\.r.*/CUDA \1/'))$stale"
else
    source_of_bins=build
    bins_note="$why_not: building them here with tools/gpu_prebuild.sh"
fi
if [ $source_of_bins = build ] && [ ${#cmake_extra[@]} -gt 0 ]; then # the wheel's cuDNN, to run what is built
    export LD_LIBRARY_PATH="$dnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ $source_of_bins = build ] && ! ldconfig -p 2> /dev/null | grep -q libcublas; then # the toolkit's own
    nvcc_dir=$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")
    [ -d "$nvcc_dir/../lib64" ] && export LD_LIBRARY_PATH="$(cd "$nvcc_dir/../lib64" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export GS_BINS_NOTE="$bins_note" GS_LIBS_NOTE="$libs_note"
if [ -z "${EXITRL_GIT_REVISION:-}" ]; then
    rev=""
    [ $source_of_bins = prebuilt ] && rev=$(manifest_value revision)
    [ -z "$rev" ] && rev=$(git -C "$root" rev-parse --short HEAD 2> /dev/null || true)
    [ -n "$rev" ] && export EXITRL_GIT_REVISION="$rev"
fi

# A benchmark's command: it passes only when it appended a JSONL line to file $1 (bench_kernels,
# for one, exits 0 with "nothing measured" when no GPU answers).
bench_cmd() {
    local f=$1
    shift
    echo "n0=\$(cat '$f' 2>/dev/null | wc -l); $*; rc=\$?; [ \$rc = 0 ] && [ \$(cat '$f' 2>/dev/null | wc -l) -le \$n0 ] && { echo 'gpu_session: no JSONL line written: nothing measured'; rc=1; }; exit \$rc"
}

# name | time cap (s) | least time worth starting it with (s) | needs a GPU | command
step_spec() {
    local b="$bin/bench" t="$bin/tests"
    case "$1" in
    env) echo "20|3|0|nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; python3 -c 'import torch, sys; print(\"python\", sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"gpu\", torch.cuda.is_available() and torch.cuda.get_device_name())'; command -v nvcc ncu compute-sanitizer; echo \"binaries: \$GS_BINS_NOTE\"; echo \"\${GS_LIBS_NOTE:-LD_LIBRARY_PATH unchanged}\"; echo \"git revision recorded: \${EXITRL_GIT_REVISION:-unknown}\"; cat '$bin/MANIFEST' 2>/dev/null | sed -n '1,/^files/p'; uname -r; nproc; free -g | head -n 2; df -h . | tail -n 1" ;;
    build)
        if [ $source_of_bins = prebuilt ]; then
            echo "30|1|0|tools/gpu_prebuild.sh --check '$bin' && ldd '$b/bench_train' | grep -E 'cuda|cublas|cudnn|gomp'"
        else
            echo "300|30|0|JOBS=${JOBS:-$(nproc)} NICE=${NICE:-0} tools/gpu_prebuild.sh --out '$bin' --any-size -- ${cmake_extra[*]}"
        fi ;;
    test) echo "150|20|0|rc=0; n_skip=0; for x in test_gpu_ops test_gpu_train_step test_gpu_rollout; do t0=\$(date +%s); OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive timeout 120 '$t'/\$x; r=\$?; echo \"---- \$x: exit \$r in \$((\$(date +%s) - t0))s\"; case \$r in 0) ;; 77) n_skip=\$((n_skip + 1)) ;; *) rc=1 ;; esac; done; [ \$rc = 0 ] && [ \$n_skip -gt 0 ] && rc=77; exit \$rc" ;;
    train) echo "150|60|1|$(bench_cmd "$out/train_step_gpu.jsonl" "$b/bench_train --device cuda --configs gpt2-124m --steps 20 --warmup 5 --out '$out/train_step_gpu.jsonl'")" ;;
    rollout) echo "100|40|1|$(bench_cmd "$out/rollout_gpu.jsonl" "$b/bench_rollout --device cuda --configs gpt2-124m --batches 64,1024 --reps 2 --warmup 1 --out '$out/rollout_gpu.jsonl'")" ;;
    exit) echo "70|30|1|$(bench_cmd "$out/exit_iteration_gpu.jsonl" "$b/bench_exit_iteration --device cuda --iterations 2 --warmup 1 --out '$out/exit_iteration_gpu.jsonl'")" ;;
    kernels) echo "70|30|1|$(bench_cmd "$out/kernels_gpu.jsonl" "$b/bench_kernels --reps 10 --warmup 2 --out '$out/kernels_gpu.jsonl'")" ;;
    # tests/gpu_sanitize.sh's memcheck pass alone (see there for the environment).
    memcheck) echo "100|40|0|san=\$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null); [ -z \"\$san\" ] && { echo 'SKIP: compute-sanitizer not found'; exit 77; }; EXITRL_TEST_SMALL=1 EXITRL_CUDA_SYNC_EACH_OP=1 OMP_NUM_THREADS=2 \"\$san\" --tool memcheck --leak-check full --target-processes application-only --error-exitcode 99 '$t/test_gpu_ops'" ;;
    sanitize) echo "200|60|0|tests/gpu_sanitize.sh '$bin'" ;;
    ncu) echo "120|45|1|mkdir -p '$out/ncu' && SUMMARY_DIR='$out/ncu' NCU_EXTRA='--clock-control none' NCU_LAUNCH_COUNT=400 OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 profiles/ncu_train_step.sh $b/bench_train --device cuda --configs gpt2-124m --batch 4 --steps 1 --warmup 0 --no-peer --out /dev/null; rc=\$?; mv '$out'/ncu/summary_*.txt '$out/ncu_summary.txt' 2>/dev/null; rm -rf '$out/ncu'; exit \$rc" ;;
    train_gpt2vocab) echo "150|60|1|$(bench_cmd "$out/train_step_gpu.jsonl" "$b/bench_train --device cuda --vocab 50257 --steps 20 --warmup 5 --out '$out/train_step_gpu.jsonl'")" ;;
    esac
}

if [ $dry = 1 ]; then
    echo "budget ${budget}s, out $out, GPU: ${gpu:-none found}"
    echo "binaries: $bins_note"
    [ -n "$libs_note" ] && echo "$libs_note"
    echo "git revision recorded: ${EXITRL_GIT_REVISION:-unknown}"
    printf '%-16s %5s %5s %3s  %s\n' step cap least gpu command
    for s in $steps; do
        IFS='|' read -r cap least needs_gpu cmd <<< "$(step_spec "$s")"
        printf '%-16s %4ss %4ss %3s  %s\n' "$s" "$cap" "$least" "$([ "$needs_gpu" = 1 ] && echo yes || echo -)" "$cmd"
    done
    exit 0
fi
if ! mkdir -p "$out"; then
    echo "gpu_session: cannot create $out" >&2
    exit 2
fi

: > "$log"
{
    echo "gpu_session: steps: $steps"
    echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${budget}s, GPU: ${gpu:-none found}, revision ${EXITRL_GIT_REVISION:-unknown}"
    echo "binaries: $bins_note"
    printf '%-16s %-28s %7s\n' step status seconds
} > "$summary"
cat "$summary"

failed=0
build_ok=1
rerun=""
for s in $steps; do
    IFS='|' read -r cap least needs_gpu cmd <<< "$(step_spec "$s")"
    left=$((budget - ($(date +%s) - start) - reserve))
    status=""
    if [ "$s" != env ] && [ "$s" != build ] && [ $build_ok = 0 ]; then
        status="skipped (no binaries)"
        rerun="$rerun,$s"
    elif [ "$needs_gpu" = 1 ] && [ -z "$gpu" ]; then
        status="skipped (no GPU)"
    elif [ $left -lt "$least" ]; then
        status="skipped (${left}s left)"
        rerun="$rerun,$s"
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
    [ "$rc" != 0 ] && [ "$rc" != 77 ] && rerun="$rerun,$s"
    if [ "$s" = build ]; then
        if [ $rc != 0 ]; then
            build_ok=0
        elif [ $source_of_bins = build ]; then
            status="ok (built here)"
            resolve_libs "$bin"
            [ -n "$libs_note" ] && echo "$libs_note" >> "$log"
        else
            status="ok (prebuilt/)"
        fi
    fi
    printf '==== step %s: %s in %ss\n' "$s" "$status" "$dt" >> "$log"
    printf '%-16s %-28s %7s\n' "$s" "$status" "$dt" | tee -a "$summary"
    # The step's last lines (its result table, or the error) go to the reply's output too.
    tail -c +"$offset" "$log" | grep -v '^\[ *[0-9]*%\]' | tail -n 12 | sed 's/^/    /'
done
if [ -n "$rerun" ]; then
    echo "rerun what failed or did not fit: tools/gpu_session.sh --steps ${rerun#,} \$OUT" | tee -a "$summary"
fi

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
# What comes back from the device: at most 8 plain files of at most 16 MiB each.
rm -rf "$out/ncu"
for f in "$out"/*; do
    [ -f "$f" ] || continue
    size=$(stat -c %s "$f")
    if [ "$size" -gt $((15 << 20)) ]; then
        { head -c $((7 << 20)) "$f"; printf '\n[... %s bytes cut ...]\n' "$size"; tail -c $((7 << 20)) "$f"; } > "$f.cut"
        mv "$f.cut" "$f"
    fi
done
n_files=$(find "$out" -mindepth 1 -maxdepth 1 | wc -l)
[ "$n_files" -gt 8 ] && echo "WARNING: $n_files entries in $out: only 8 files come back from the device" | tee -a "$summary"
echo "total $(($(date +%s) - start))s; files in $out: $(ls "$out" | tr '\n' ' ')" | tee -a "$summary"
echo
sed -n '/^$/,$p' "$summary"
exit $failed
