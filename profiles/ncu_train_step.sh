#!/usr/bin/env bash
# Profiles the kernels of a training step with Nsight Compute and writes a per-kernel summary
# (share of time, achieved DRAM bandwidth, FLOP/s, what bounds it) to profiles/summary_<device>.txt.
#
# Usage: profiles/ncu_train_step.sh EXECUTABLE [ARGS...]
#   e.g. profiles/ncu_train_step.sh build/tests/test_gpu_train_step
#        profiles/ncu_train_step.sh build/exitrl bench --steps 1 ...
# Only kernels inside the host's NVTX ranges "forward", "backward" and "optimizer" (and the
# "layer" ranges nested in them) are profiled, so give the program one step (or set
# NCU_LAUNCH_COUNT to cap the number of kernels). Environment: NCU (the ncu binary),
# NCU_LAUNCH_COUNT, NCU_EXTRA (more ncu options), SUMMARY_DIR (default: this script's folder).
# Exit: 0 written; 1 ncu or the summary failed; 2 usage; 77 skipped (no ncu or no GPU).
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 EXECUTABLE [ARGS...]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
ncu=${NCU:-$(command -v ncu || true)}
[ -z "$ncu" ] && [ -x /usr/local/cuda/bin/ncu ] && ncu=/usr/local/cuda/bin/ncu
if [ -z "$ncu" ]; then
    echo "SKIP: Nsight Compute (ncu) not found"
    exit 77
fi
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -n 1)
if [ -z "$device" ]; then
    echo "SKIP: no GPU (nvidia-smi lists none)"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count=()
[ -n "${NCU_LAUNCH_COUNT:-}" ] && count=(--launch-count "$NCU_LAUNCH_COUNT")
# SpeedOfLight gives the compute and memory throughput (% of peak); the roofline section adds the
# DRAM bytes and the instruction counts the FLOP/s come from.
# shellcheck disable=SC2086
"$ncu" --target-processes all --nvtx \
    --nvtx-include "forward/" --nvtx-include "forward/layer/" \
    --nvtx-include "backward/" --nvtx-include "backward/layer/" \
    --nvtx-include "optimizer/" \
    --section SpeedOfLight --section SpeedOfLight_RooflineChart \
    --metrics gpu__time_duration.sum,dram__bytes.sum.per_second \
    "${count[@]}" ${NCU_EXTRA:-} -f -o "$work/step" "$@"
if [ ! -f "$work/step.ncu-rep" ]; then
    echo "ncu_train_step: ncu wrote no report (did the program open NVTX ranges and run kernels?)" >&2
    exit 1
fi
"$ncu" --import "$work/step.ncu-rep" --csv --page raw --print-units base > "$work/step.csv" || exit 1
slug=$(printf '%s' "$device" | tr -c 'A-Za-z0-9._-' '_' | sed 's/_*$//')
out="${SUMMARY_DIR:-$here}/summary_${slug}.txt"
python3 "$here/ncu_summary.py" "$work/step.csv" --device "$device" --command "$*" > "$out" || exit 1
cat "$out"
echo "written: $out"
