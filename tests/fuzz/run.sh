#!/usr/bin/env bash
# Builds the libFuzzer targets of what a resume reads (fuzz_config, fuzz_task_buffer,
# fuzz_checkpoint) with clang (ASan + UBSan) and runs each for SECONDS (default 60), one after the
# other, printing libFuzzer's final figures. The checkpoint target is seeded with real
# pretrain and train checkpoints of a tiny model, made with EXITRL (default build-cpu/exitrl).
#   tests/fuzz/run.sh [SECONDS] [EXITRL]        from the repository root; work files in /tmp/exitrl_fuzz
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
exitrl="${2:-build-cpu/exitrl}"
out=/tmp/exitrl_fuzz
mkdir -p "$out"
host=$(ls host/*/*.c | grep -v host/cli/)
flags=(-std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Ihost -Ikernels -DEXITRL_VERSION=\"fuzz\"
       -DEXITRL_SOURCE_DIR=\".\" -Wno-unknown-pragmas)
for t in fuzz_config fuzz_task_buffer fuzz_checkpoint; do
    clang "${flags[@]}" $host kernels/cpu/*.c tests/fuzz/$t.c -lm -o "$out/$t"
done

# Seeds: configs/ for the config parser; real checkpoints (flag byte 3: re-sign, set the size).
mkdir -p "$out/seed_config" "$out/seed_checkpoint" "$out/seed_buffer"
cp configs/*.conf "$out/seed_config/"
if [ -x "$exitrl" ]; then
    w="$out/runs"; rm -rf "$w"
    tiny=(--n_layer 1 --n_head 1 --d_model 4 --max_seq 32 --threads 1 --progress 0 --device cpu --out_dir "$w")
    "$exitrl" pretrain --task arith --task_knobs ops=1 "${tiny[@]}" --steps 2 --batch_size 2 --seq_len 32 \
        --eval_instances 2 --name warm >/dev/null 2>&1
    "$exitrl" train --init "$w/warm/checkpoint.bin" --task arith --task_knobs ops=1 --prompts 2 --group_size 2 \
        --buffer_capacity 4 --buffer_min 1 --max_new_tokens 4 --iterations 2 --eval_every 0 --threads 1 \
        --progress 0 --out_dir "$w" --name rl >/dev/null 2>&1
    for ck in warm rl; do { printf '\003'; cat "$w/$ck/checkpoint.bin"; } >"$out/seed_checkpoint/$ck"; done
    cp "$w/rl/config.txt" "$out/seed_config/"
    python3 - "$w/rl/checkpoint.bin" "$out/seed_buffer/rl" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", d, 12)[0]
for i in range(n):
    e = 32 + 48 * i
    if d[e:e + 24].split(b"\0")[0] == b"exit_buffer":
        off, size = struct.unpack_from("<QQ", d, e + 24)
        cap = struct.unpack_from("<I", d, off + 16)[0]
        open(sys.argv[2], "wb").write(bytes([cap - 1]) + d[off:off + size])
PY
fi
run() { # run <target> <max_len> <seed dir>
    mkdir -p "$out/corpus_$1"
    echo "== $1 ($secs s)"
    "$out/$1" "$out/corpus_$1" "$3" -max_total_time="$secs" -max_len="$2" -close_fd_mask=2 -print_final_stats=1 \
        -artifact_prefix="$out/$1-" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==[0-9]+==ERROR|SUMMARY|artifact)" || true
}
run fuzz_config 4096 "$out/seed_config"
run fuzz_task_buffer 16384 "$out/seed_buffer"
run fuzz_checkpoint 65536 "$out/seed_checkpoint"
