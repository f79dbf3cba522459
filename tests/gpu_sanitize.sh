#!/usr/bin/env bash
# Runs test_gpu_ops under compute-sanitizer: memcheck (out-of-bounds and misaligned accesses,
# leaks) and racecheck (shared-memory hazards). Every op of both dtypes goes through it.
# Usage: tests/gpu_sanitize.sh BUILD_DIR
# Exit: 0 clean; 1 a finding or a failing test; 2 usage; 77 skipped (no GPU or no compute-sanitizer).
set -u
build=${1:-}
if [ -z "$build" ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
exe="$build/tests/test_gpu_ops"
if [ ! -x "$exe" ]; then
    echo "gpu_sanitize: $exe not found; build it first (cmake --build $build --target test_gpu_ops)" >&2
    exit 2
fi
sanitizer=$(command -v compute-sanitizer || true)
[ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [ -z "$sanitizer" ]; then
    echo "SKIP: compute-sanitizer not found"
    exit 77
fi
"$exe" > /dev/null 2>&1
if [ $? -eq 77 ]; then
    echo "SKIP: no GPU"
    exit 77
fi

status=0
for tool in memcheck racecheck; do
    extra=()
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    log=$(mktemp)
    # Synchronising after every op makes a report name the op whose kernel faulted. The child
    # processes the test starts on purpose (bad inputs that must exit(1)) are not instrumented:
    # they end without freeing, by design. EXITRL_TEST_SMALL=1 leaves out the gpt2-size attention
    # case, which the tools would slow down many times over (the small cases run the same code).
    EXITRL_TEST_SMALL=1 EXITRL_CUDA_SYNC_EACH_OP=1 "$sanitizer" --tool "$tool" "${extra[@]}" \
        --target-processes application-only --error-exitcode 99 "$exe" > "$log" 2>&1
    rc=$?
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY" "$log" | tr '\n' ' ')
    if [ $rc -eq 0 ]; then
        echo "$tool: clean. $summary"
    else
        status=1
        echo "$tool: FAILED (exit $rc). $summary"
        grep -E "=========|FAIL" "$log" | head -60
    fi
    rm -f "$log"
done
exit $status
