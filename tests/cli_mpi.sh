#!/usr/bin/env bash
# Data parallelism over MPI (host/dist): 2 ranks against 1 process on the same global batch.
# - pretrain: the same metrics (losses, gradient norms, held-out eval) within a relative 1e-5;
# - a checkpoint of the 2-rank run resumes in 1 process and continues the 1-process curve;
# - train (ExIt, the method with every moving part, then the other rungs of the ladder): the same
#   metrics within a relative 1e-4, and the same task buffer (and for ExIt RNG state) in the
#   checkpoint, byte for byte; a 2-rank train checkpoint resumes in 1 process on the 1-process curve;
# - eval: the same JSON as one process;
# - ranks with different configurations stop at start with a message, not train;
# - a rank killed mid-run ends the run (mpirun names the rank) and the last checkpoint loads.
# Exits 77 (SKIP) without mpirun or when exitrl was built without MPI.
set -u
EXITRL="$1"
command -v mpirun >/dev/null || { echo "SKIP: no mpirun (Debian: apt-get install openmpi-bin libopenmpi-dev)"; exit 77; }
"$EXITRL" info | grep -q '^MPI: none' && { echo "SKIP: exitrl was built without MPI"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# Under AddressSanitizer (the asan preset) the ranks run without leak checks: Open MPI's plugins leak
# by design, and their stacks cannot be symbolised for a suppression once unloaded. Memory errors
# are still caught, and the 1-process runs here keep leak checking.
mpi=(mpirun --oversubscribe -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=passive
     -x "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
small=(--task knapsack --n_layer 1 --n_head 2 --d_model 32 --max_seq 96 --batch_size 8 --seq_len 96 --log_every 1
       --eval_every 6 --eval_instances 8 --threads 1 --progress 0 --out_dir "$tmp")

# Numeric fields of two metrics.jsonl files (timings aside) agree within a relative tol (values
# below 1e-3 are compared absolutely), line by line (or from line $4 of the first file on).
same_metrics() {
    python3 - "$1" "$2" "$3" "${4:-0}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[4]):]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
skip = {"tokens_per_s", "step_ms", "elapsed_s", "rollout_tokens_per_s", "comm_ms"}  # comm_ms: ranks only
if len(a) != len(b):
    sys.exit(f"{len(a)} lines against {len(b)}")
worst = 0.0
for x, y in zip(a, b):
    if x.keys() - skip != y.keys() - skip:
        sys.exit(f"different fields: {sorted(x)} vs {sorted(y)}")
    for k in x:
        if k in skip or k.startswith("t_") or not isinstance(x[k], (int, float)):
            continue
        d = abs(x[k] - y[k]) / max(abs(x[k]), 1e-3)
        worst = max(worst, d)
        if d > tol:
            sys.exit(f"step {x.get('step')}: {k} {x[k]} vs {y[k]} (relative {d:.2e} > {tol})")
print(f"{len(a)} lines agree (largest relative difference {worst:.2e})")
PY
}

# ---- pretrain: 1 process vs 2 ranks ----
"$EXITRL" pretrain "${small[@]}" --steps 12 --name one >"$tmp/log" 2>&1 || { fail "1-process pretrain"; cat "$tmp/log"; }
"${mpi[@]}" -np 2 "$EXITRL" pretrain "${small[@]}" --steps 12 --name two >"$tmp/log" 2>&1 ||
    { fail "2-rank pretrain"; cat "$tmp/log"; }
grep -q "2 MPI ranks" "$tmp/log" || fail "the 2-rank start-up line does not say '2 MPI ranks'"
[ "$(grep -c 'exitrl pretrain: done' "$tmp/log")" = 1 ] || fail "the done line should come from rank 0 alone"
same_metrics "$tmp/one/metrics.jsonl" "$tmp/two/metrics.jsonl" 1e-5 || fail "2-rank pretrain metrics differ"

# ---- a 2-rank checkpoint resumes in 1 process on the same curve ----
"${mpi[@]}" -np 2 "$EXITRL" pretrain "${small[@]}" --steps 6 --name half >"$tmp/log" 2>&1 ||
    { fail "2-rank pretrain (6 steps)"; cat "$tmp/log"; }
"$EXITRL" pretrain --resume "$tmp/half/checkpoint.bin" --steps 12 --out_dir "$tmp" --name resumed --progress 0 \
    >"$tmp/log" 2>&1 || { fail "resume of the 2-rank checkpoint"; cat "$tmp/log"; }
# one/metrics.jsonl: steps 1..6 and the eval at 6 (7 lines), then steps 7..12 and the eval at 12.
same_metrics "$tmp/one/metrics.jsonl" "$tmp/resumed/metrics.jsonl" 1e-5 7 || fail "the resumed run left the curve"

# ---- train: 1 process vs 2 ranks, then a 2-rank checkpoint resumed in 1 process ----
warm=(--task knapsack --n_layer 2 --n_head 2 --d_model 48 --max_seq 96 --batch_size 16 --seq_len 96 --lr 3e-3
      --eval_every 0 --threads 1 --progress 0 --out_dir "$tmp")
"$EXITRL" pretrain "${warm[@]}" --steps 300 --name warm >"$tmp/log" 2>&1 || { fail "warm start"; cat "$tmp/log"; }
rl=(--task knapsack --method exit --feedback 1 --prompts 6 --group_size 4 --buffer_min 2 --p_replay 0.9
    --max_new_tokens 16 --lr 1e-3 --eval_every 0 --ckpt_every 3 --threads 1 --progress 0 --out_dir "$tmp")
"$EXITRL" train --init "$tmp/warm/checkpoint.bin" "${rl[@]}" --iterations 6 --name rl1 >"$tmp/log" 2>&1 ||
    { fail "1-process train"; cat "$tmp/log"; }
"${mpi[@]}" -np 2 "$EXITRL" train --init "$tmp/warm/checkpoint.bin" "${rl[@]}" --iterations 6 --name rl2 \
    >"$tmp/log" 2>&1 || { fail "2-rank train"; cat "$tmp/log"; }
grep -q "P=6 G=4, 2 MPI ranks" "$tmp/log" || fail "the 2-rank train start-up line does not say '2 MPI ranks'"
awk '/"reward_mean"/ && !/"reward_mean":0,/ {n++} END {exit n < 3}' "$tmp/rl1/metrics.jsonl" ||
    fail "the warm start earns no reward: the comparison would test nothing"
same_metrics "$tmp/rl1/metrics.jsonl" "$tmp/rl2/metrics.jsonl" 1e-4 || fail "2-rank train metrics differ"
for section in exit_buffer train_state; do
    a=$(python3 "$(dirname "$0")/ckpt_mutate.py" list "$tmp/rl1/checkpoint.bin" | grep "^$section ")
    b=$(python3 "$(dirname "$0")/ckpt_mutate.py" list "$tmp/rl2/checkpoint.bin" | grep "^$section ")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "checkpoint section $section differs: '$a' vs '$b'"
done
# The other rungs of the ladder (no buffer; base tasks by learnability; improve / diverge steps).
for method in grpo curriculum improve diverge; do
    m=(--init "$tmp/warm/checkpoint.bin" "${rl[@]}" --method $method --iterations 4)
    "$EXITRL" train "${m[@]}" --name "${method}1" >"$tmp/log" 2>&1 || { fail "1-process $method"; cat "$tmp/log"; }
    "${mpi[@]}" -np 2 "$EXITRL" train "${m[@]}" --name "${method}2" >"$tmp/log" 2>&1 || { fail "2-rank $method"; cat "$tmp/log"; }
    same_metrics "$tmp/${method}1/metrics.jsonl" "$tmp/${method}2/metrics.jsonl" 1e-4 || fail "2-rank $method metrics differ"
    a=$(python3 "$(dirname "$0")/ckpt_mutate.py" list "$tmp/${method}1/checkpoint.bin" | grep "^exit_buffer ")
    b=$(python3 "$(dirname "$0")/ckpt_mutate.py" list "$tmp/${method}2/checkpoint.bin" | grep "^exit_buffer ")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "$method: checkpoint section exit_buffer differs: '$a' vs '$b'"
done
"${mpi[@]}" -np 2 "$EXITRL" train --init "$tmp/warm/checkpoint.bin" "${rl[@]}" --iterations 3 --name rl_half \
    >"$tmp/log" 2>&1 || { fail "2-rank train (3 iterations)"; cat "$tmp/log"; }
"$EXITRL" train --resume "$tmp/rl_half/checkpoint.bin" --iterations 6 --out_dir "$tmp" --name rl_resumed \
    --progress 0 >"$tmp/log" 2>&1 || { fail "resume of the 2-rank train checkpoint"; cat "$tmp/log"; }
same_metrics "$tmp/rl1/metrics.jsonl" "$tmp/rl_resumed/metrics.jsonl" 1e-4 3 || fail "the resumed train left the curve"

# ---- eval: the same JSON ----
ev=(--runs "$tmp/one" --task knapsack --feedback 1 --eval_steps 2 --eval_instances 7 --eval_samples 3
    --temperature 0.6 --max_new_tokens 16 --threads 1)
"$EXITRL" eval "${ev[@]}" --out "$tmp/e1.json" >"$tmp/log" 2>&1 || { fail "1-process eval"; cat "$tmp/log"; }
"${mpi[@]}" -np 2 "$EXITRL" eval "${ev[@]}" --out "$tmp/e2.json" >"$tmp/log" 2>&1 || { fail "2-rank eval"; cat "$tmp/log"; }
cmp -s "$tmp/e1.json" "$tmp/e2.json" || { fail "2-rank eval JSON differs"; diff "$tmp/e1.json" "$tmp/e2.json" | head; }

# ---- ranks that disagree on the configuration stop before training ----
"${mpi[@]}" -np 1 "$EXITRL" pretrain "${small[@]}" --steps 3 --name seeds --seed 1 : \
    -np 1 "$EXITRL" pretrain "${small[@]}" --steps 3 --name seeds --seed 2 >"$tmp/log" 2>&1 &&
    fail "ranks with different seeds trained"
grep -q "ranks disagree on the configuration" "$tmp/log" || { fail "no message about the disagreement"; cat "$tmp/log"; }
[ -e "$tmp/seeds/checkpoint.bin" ] && fail "a checkpoint was written by disagreeing ranks"

# ---- a rank killed mid-run ends the run; the last checkpoint loads ----
"${mpi[@]}" -np 2 "$EXITRL" pretrain "${small[@]}" --steps 100000 --ckpt_every 5 --eval_every 0 --name killed \
    >"$tmp/killed.log" 2>&1 &
job=$!
for _ in $(seq 600); do [ -e "$tmp/killed/checkpoint.bin" ] && break; sleep 0.1; done
# The ranks are the children of mpirun (exitrl may have re-executed itself: its comm is then "exe").
victim=$(pgrep -P "$(pgrep -f -- "^mpirun .*--name killed" | head -1)" | tail -1)
if [ -z "$victim" ]; then
    fail "no exitrl rank found to kill"
else
    kill -9 "$victim"
    for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$job" 2>/dev/null; then
        fail "the run went on after a rank was killed"
        kill -9 "$job" 2>/dev/null
    fi
    wait "$job" && fail "mpirun exited 0 after a rank was killed"
    grep -q "rank [01]" "$tmp/killed.log" || { fail "mpirun's message does not name the rank"; cat "$tmp/killed.log"; }
    "$EXITRL" eval --runs "$tmp/killed" --task knapsack --eval_steps 1 --eval_instances 2 --eval_samples 1 \
        --out "$tmp/k.json" --threads 1 >"$tmp/log" 2>&1 || { fail "the last checkpoint does not load"; cat "$tmp/log"; }
fi

[ "$fails" = 0 ] && echo "cli_mpi: all checks passed"
exit "$fails"
