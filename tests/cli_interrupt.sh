#!/usr/bin/env bash
# Ctrl-C during pretraining: the run saves a valid checkpoint and exits with 130; --resume from it
# finishes the run; a run killed with SIGKILL mid-way leaves the last checkpoint intact (atomic).
set -u
EXITRL="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
small=(--task arith --n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --seq_len 64 --batch_size 4
       --eval_instances 4 --threads 1 --progress 0 --out_dir "$tmp")
"$EXITRL" pretrain "${small[@]}" --steps 100000 --ckpt_every 0 --name run >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/run/metrics.jsonl" ] && break; sleep 0.1; done
sleep 0.5
kill -INT $pid
wait $pid; rc=$?
if [ $rc != 130 ]; then echo "FAIL: exit code $rc after SIGINT, want 130"; cat "$tmp/log"; fails=$((fails+1)); fi
if ! grep -q "checkpoint saved" "$tmp/log"; then echo "FAIL: no 'checkpoint saved' message"; fails=$((fails+1)); fi
step=$(sed -n 's/.*interrupted at step \([0-9]*\);.*/\1/p' "$tmp/log")
# Resume with a smaller total: it must continue from the saved step and end there cleanly.
"$EXITRL" pretrain "${small[@]}" --steps $((step + 3)) --resume "$tmp/run/checkpoint.bin" --name run >"$tmp/log2" 2>&1
rc=$?
if [ $rc != 0 ]; then echo "FAIL: resume exit code $rc"; cat "$tmp/log2"; fails=$((fails+1)); fi
if ! grep -q "steps $step\.\.$((step + 3))" "$tmp/log2"; then echo "FAIL: resume did not start at step $step"; cat "$tmp/log2"; fails=$((fails+1)); fi
# SIGKILL while checkpointing every step: the file on disk is always a complete checkpoint.
"$EXITRL" pretrain "${small[@]}" --steps 100000 --ckpt_every 1 --name killed >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/killed/checkpoint.bin" ] && break; sleep 0.1; done
sleep 0.7
kill -KILL $pid; wait $pid 2>/dev/null
"$EXITRL" export --checkpoint "$tmp/killed/checkpoint.bin" --out "$tmp/export" >/dev/null 2>"$tmp/log3"
if [ $? != 0 ]; then echo "FAIL: checkpoint after SIGKILL is not loadable"; cat "$tmp/log3"; fails=$((fails+1)); fi
echo "cli_interrupt: $((fails == 0 ? 1 : 0)) passed, $fails failed"
[ $fails = 0 ]
