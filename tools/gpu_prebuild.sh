#!/usr/bin/env bash
# Builds the CUDA tests and benchmarks on a machine without a GPU (nvcc is enough) and assembles
# prebuilt/: one relocatable folder that tools/gpu_session.sh runs on a lent GPU machine, so that
# no device time goes to compiling. Carry it to the device with the tree (it is ignored by git).
#
#   prebuilt/tests/test_gpu_ops, test_gpu_train_step, test_gpu_rollout
#   prebuilt/bench/bench_train, bench_rollout, bench_exit_iteration, bench_kernels
#   prebuilt/bench/peers/*.py   the PyTorch peers, found by the benchmarks next to themselves
#   prebuilt/lib/               shared libraries that are not CUDA's and may be absent on the device
#                               (OpenMP's libgomp), found through the binaries' RUNPATH $ORIGIN/../lib
#   prebuilt/MANIFEST           git revision, source hash, build date, nvcc, flags, sizes
#   prebuilt/SHA256SUMS         the files' checksums (--check compares them)
#
# The layout is a build folder's (tests/, bench/), so `tests/gpu_sanitize.sh prebuilt` works. The
# build is the default preset's (Release, CMAKE_CUDA_ARCHITECTURES 90a-real 80-virtual, cuBLAS,
# cuBLASLt, cuDNN when found) in its own folder (build-prebuilt/), with three changes that make it
# run elsewhere: the CPU code targets x86-64-v3 (AVX2, FMA) instead of -march=native, which could
# use instructions the device's CPU lacks; OpenBLAS is left out (EXITRL_BLAS=OFF: the GPU programs
# use it only for CPU reference results, and the device may not have it), and so are MPI and NCCL
# (EXITRL_MPI=OFF, EXITRL_NCCL=OFF: one GPU, and the device may lack libmpi); source paths in messages
# are made relative (-ffile-prefix-map). The benchmarks find their peers through
# bench_source_dir() (bench/bench_common.c: $EXITRL_SOURCE_DIR, else the source tree they were built
# from while it exists, else the folder above their own). The binaries keep their symbols (a
# Release build has no debug info; stripping would save about 1 MiB of about 40 and cost
# compute-sanitizer's host backtraces); --strip strips them anyway.
#
# Usage: tools/gpu_prebuild.sh [--out DIR] [--strip] [--any-size] [-- CMAKE_ARGS...]
#        (--any-size: no 60 MiB limit, for a build on the device itself)
#        tools/gpu_prebuild.sh --check [DIR]    only check DIR (default prebuilt/): its binaries are
#                                               intact (SHA256SUMS), load (ldd) and start (--help)
#        tools/gpu_prebuild.sh --source-hash    print the hash of the sources the binaries come from
# Environment: JOBS (build parallelism, default 2), NICE (niceness of the build, default 19),
# BUILD_DIR (default build-prebuilt), EXITRL_PREBUILT_MARCH (default x86-64-v3).
# Exit: 0 built and checked; 1 the build or a check failed; 2 usage.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
self="$here/$(basename "$0")"

# Used as the C compiler launcher (CMAKE_C_COMPILER_LAUNCHER): the project adds -march=native to
# Release builds; a prebuilt binary must run on another machine's CPU.
if [ "${1:-}" = --cc-launcher ]; then
    shift
    args=()
    for a in "$@"; do
        [ "$a" = -march=native ] && a="-march=${EXITRL_PREBUILT_MARCH:-x86-64-v3}"
        args+=("$a")
    done
    exec "${args[@]}"
fi

# The files the binaries are built from, hashed in a fixed order: the same on any copy of the tree.
source_hash() {
    (cd "$1" && find CMakeLists.txt kernels host bench tests -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' -o -name CMakeLists.txt \) \
        -not -path '*/__pycache__/*' -not -path 'bench/results/*' 2> /dev/null | LC_ALL=C sort | xargs sha256sum) |
        sha256sum | cut -c1-16
}

tests="test_gpu_ops test_gpu_train_step test_gpu_rollout"
benches="bench_train bench_rollout bench_exit_iteration bench_kernels"

# Every binary in DIR: present, no shared library missing (ldd), no RUNPATH outside DIR, and the
# benchmarks start (--help). Prints what is wrong; returns 0 when all is well.
check() {
    local dir=$1 bad=0 f missing rp rc
    for f in $tests; do set -- "$@" "$dir/tests/$f"; done
    for f in $benches; do set -- "$@" "$dir/bench/$f"; done
    shift
    for f in "$@"; do
        if [ ! -x "$f" ]; then
            echo "missing: $f"
            bad=1
            continue
        fi
        missing=$(ldd "$f" 2>&1 | grep -E 'not found|not a dynamic' | sed 's/^[[:space:]]*//' | tr '\n' ' ')
        if [ -n "$missing" ]; then
            echo "cannot load $f: $missing"
            bad=1
        fi
        rp=$(readelf -d "$f" 2> /dev/null | grep -E 'RPATH|RUNPATH' | sed 's/.*\[\(.*\)\]/\1/')
        if [ -n "$rp" ] && [ "$rp" != '$ORIGIN/../lib' ]; then
            echo "unexpected RUNPATH in $f: $rp"
            bad=1
        fi
    done
    for f in $benches; do
        [ -x "$dir/bench/$f" ] || continue
        rc=$( ("$dir/bench/$f" --help > /dev/null 2>&1; echo $?) 2> /dev/null)
        if [ "$rc" != 0 ]; then
            echo "does not start: $dir/bench/$f --help (exit $rc)"
            bad=1
        fi
    done
    [ -d "$dir/bench/peers" ] || { echo "missing: $dir/bench/peers/"; bad=1; }
    if [ -f "$dir/SHA256SUMS" ] && ! (cd "$dir" && sha256sum --quiet -c SHA256SUMS > /dev/null 2>&1); then
        echo "changed since the build: $(cd "$dir" && sha256sum --quiet -c SHA256SUMS 2>&1 | head -n 3 | tr '\n' ' ')"
        bad=1
    fi
    return $bad
}

out="$root/prebuilt"
strip=0
max_mib=60
mode=build
cmake_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --out) out=${2:-}; shift 2 ;;
    --strip) strip=1; shift ;;
    --any-size) max_mib=0; shift ;;
    --check) mode=check; [ -n "${2:-}" ] && [ "${2#-}" = "$2" ] && { out=$2; shift; }; shift ;;
    --source-hash) source_hash "$root"; exit 0 ;;
    --) shift; cmake_args=("$@"); break ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_prebuild: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
if [ $mode = check ]; then
    check "$out" && echo "gpu_prebuild: $out: every binary loads"
    exit $?
fi

jobs=${JOBS:-2}
niceness=${NICE:-19}
build=${BUILD_DIR:-$root/build-prebuilt}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
command -v nvcc > /dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu_prebuild: nvcc not found" >&2; exit 1; }
[ -z "$(command -v nvcc)" ] && export PATH="/usr/local/cuda/bin:$PATH"

t0=$(date +%s)
echo "gpu_prebuild: configuring $build"
mkdir -p "$build" || exit 1
nice -n "$niceness" cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DEXITRL_CUDA=ON -DEXITRL_BLAS=OFF \
    -DEXITRL_MPI=OFF -DEXITRL_NCCL=OFF \
    -DCMAKE_C_COMPILER_LAUNCHER="$self;--cc-launcher" \
    -DCMAKE_C_FLAGS="-ffile-prefix-map=$root/=" -DCMAKE_CUDA_FLAGS_INIT="-Xcompiler=-ffile-prefix-map=$root/=" \
    -DCMAKE_SKIP_BUILD_RPATH=OFF -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DCMAKE_BUILD_RPATH='$ORIGIN/../lib' \
    "${cmake_args[@]}" > "$build/configure.log" 2>&1 ||
    { cat "$build/configure.log"; echo "gpu_prebuild: configure failed" >&2; exit 1; }
if ! grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=.\+' "$build/CMakeCache.txt"; then
    echo "gpu_prebuild: CMake found no CUDA compiler (see $build/configure.log)" >&2
    exit 1
fi
grep -E 'exitrl:|CUDNN|cuDNN' "$build/configure.log" | sed 's/^/    /'
echo "gpu_prebuild: building $tests $benches (-j$jobs, nice $niceness)"
# shellcheck disable=SC2086
nice -n "$niceness" cmake --build "$build" -j "$jobs" --target $tests $benches 2>&1 | grep -v '^\[ *[0-9]*%\]' |
    grep -v '^$' | tail -n 40
[ "${PIPESTATUS[0]}" = 0 ] || { echo "gpu_prebuild: build failed" >&2; exit 1; }
t1=$(date +%s)

# Only a folder this script made (it has a MANIFEST) or a new one is replaced.
if [ -e "$out" ] && [ ! -f "$out/MANIFEST" ]; then
    echo "gpu_prebuild: $out exists and is not a prebuilt folder (no MANIFEST); not replacing it" >&2
    exit 1
fi
rm -rf "$out"
mkdir -p "$out/tests" "$out/bench/peers" "$out/lib" || exit 1
for f in $tests; do cp "$build/tests/$f" "$out/tests/"; done
for f in $benches; do cp "$build/bench/$f" "$out/bench/"; done
cp "$root"/bench/peers/*.py "$out/bench/peers/"
[ $strip = 1 ] && strip --strip-unneeded "$out"/tests/* "$out"/bench/bench_*
# Shared libraries outside the CUDA toolkit and glibc that a bare device image may lack.
for lib in libgomp.so.1; do
    path=$(ldd "$out/bench/bench_train" | awk -v l="$lib" '$1 == l { print $3 }')
    [ -n "$path" ] && [ -f "$path" ] && cp -L "$path" "$out/lib/"
done

nvcc_version=$(nvcc --version | tail -n 1)
revision=$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)
[ -n "$(git -C "$root" status --porcelain --untracked-files=no -- CMakeLists.txt kernels host bench tests 2> /dev/null)" ] &&
    revision="$revision-dirty"
{
    echo "revision $revision"
    echo "source_hash $(source_hash "$root")"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'))"
    echo "build_seconds $((t1 - t0))"
    echo "nvcc $nvcc_version"
    echo "cuda_code $(grep -o -h 'arch=compute_[0-9a-z]*,code=\[[a-z_0-9]*\]' "$build"/CMakeFiles/exitrl_cuda.dir/flags.make | sort -u | tr '\n' ' ')"
    echo "cudnn $(sed -n 's/^CUDNN_LIBRARY:[A-Z]*=//p' "$build/CMakeCache.txt")"
    echo "c_march ${EXITRL_PREBUILT_MARCH:-x86-64-v3}"
    echo "blas off"
    echo "stripped $strip"
    echo "needs $(ldd "$out/bench/bench_train" | awk '{ print $1 }' | grep -v -E '^(linux-vdso|/)' | sort | tr '\n' ' ')"
    echo "files"
    (cd "$out" && find . -type f | LC_ALL=C sort | xargs du -k | sed 's/^/  /')
} > "$out/MANIFEST"
(cd "$out" && find tests bench lib -type f | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)

status=0
check "$out" || status=1
# No path into this machine's tree may be needed at run time. The compiled-in source dir is only
# a default (bench_source_dir() looks elsewhere when it is absent); any other hit is reported.
hits=$(grep -l -a -F "$build" "$out"/tests/* "$out"/bench/bench_* 2> /dev/null)
if [ -n "$hits" ]; then
    echo "gpu_prebuild: the build folder's path is in: $hits" >&2
    status=1
fi
# The CUDA line tables (-lineinfo) name the .cu files for compute-sanitizer and ncu; nothing
# opens them at run time.
named=$(cat "$out"/tests/* "$out"/bench/bench_* | strings -n 8 | grep -F "$root")
n_default=$(printf '%s\n' "$named" | grep -c -x -F "$root")
n_lines=$(printf '%s\n' "$named" | grep -c -F "$root/kernels")
other=$(printf '%s\n' "$named" | grep -v -x -F "$root" | grep -v -F "$root/kernels" | sort -u | head -n 5)
echo "gpu_prebuild: strings naming $root in the binaries: $n_default the compiled-in default source" \
    "dir (bench_source_dir()), $n_lines the CUDA line tables' file names${other:+, and: $other}"
size=$(du -sm "$out" | cut -f1)
echo "gpu_prebuild: $out: $(du -sh "$out" | cut -f1), built in $((t1 - t0))s, assembled in $(($(date +%s) - t1))s"
if [ "$max_mib" -gt 0 ] && [ "$size" -gt "$max_mib" ]; then
    echo "gpu_prebuild: $out is ${size} MiB, over the $max_mib MiB a device call can carry" >&2
    status=1
fi
sed -n '1,/^files/p' "$out/MANIFEST" | sed '$d'
exit $status
