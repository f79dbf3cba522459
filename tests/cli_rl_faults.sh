#!/usr/bin/env bash
# RL numeric faults in exitrl train, injected by the test-only switch EXITRL_TEST_FAULT (a NaN in the
# advantages, the loss or the gradient of chosen iterations):
#   - each kind is detected: those iterations log skipped > 0 and the others 0, and the weights,
#     AdamW moments and step count after 1 clean + 2 faulty iterations are bit for bit those after
#     the clean iteration alone (section CRCs of the two checkpoints);
#   - max_skips faulty iterations in a row stop the run with exit 1 and a message, and the last
#     checkpoint (written before) stays intact and resumes.
set -u
EXITRL="$1"
MUT="$(dirname "$0")/ckpt_mutate.py"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
"$EXITRL" pretrain --task arith --task_knobs ops=1 --n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --threads 1 \
    --progress 0 --steps 4 --batch_size 4 --seq_len 64 --eval_instances 4 --out_dir "$tmp" --name warm >"$tmp/log" 2>&1 ||
    { cat "$tmp/log"; exit 1; }
rl=(--init "$tmp/warm/checkpoint.bin" --task arith --task_knobs ops=1 --prompts 4 --group_size 4 --buffer_min 2
    --max_new_tokens 12 --lr 1e-2 --kl_beta 0.01 --minibatches 2 --threads 1 --progress 0 --eval_every 0 --out_dir "$tmp")
crcs() { python3 "$MUT" list "$1" | grep -E "^(params|adam_m|adam_v|adam_step) "; }
skipped() { python3 -c 'import json,sys; print(",".join(str(json.loads(l)["skipped"]) for l in open(sys.argv[1]) if "reward_mean" in l))' "$1"; }

"$EXITRL" train "${rl[@]}" --iterations 1 --name clean1 >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
"$EXITRL" train "${rl[@]}" --iterations 3 --name clean3 >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
[ "$(crcs "$tmp/clean1/checkpoint.bin")" != "$(crcs "$tmp/clean3/checkpoint.bin")" ] || fail "clean iterations 2-3 changed nothing: the test cannot see a skip"
for kind in adv loss grad; do
    EXITRL_TEST_FAULT=$kind:2-3 "$EXITRL" train "${rl[@]}" --iterations 3 --name $kind >"$tmp/log" 2>&1
    rc=$?
    [ $rc = 0 ] || { fail "$kind: exit $rc"; cat "$tmp/log"; continue; }
    s=$(skipped "$tmp/$kind/metrics.jsonl")
    [ "$s" = "0,2,2" ] || fail "$kind: skipped per iteration = $s, want 0,2,2 (2 minibatch steps each)"
    want=$([ $kind = adv ] && echo advantage || { [ $kind = loss ] && echo loss || echo "gradient norm"; })
    grep -q "iteration 2: non-finite $want" "$tmp/log" || { fail "$kind: no message naming the non-finite $want"; cat "$tmp/log"; }
    [ "$(crcs "$tmp/$kind/checkpoint.bin")" = "$(crcs "$tmp/clean1/checkpoint.bin")" ] ||
        fail "$kind: weights or optimizer state changed by skipped steps"
done

# Persistent faults from iteration 3 on: checkpoints every 2 iterations; max_skips 3 stops the run
# after iteration 5, and the checkpoint of iteration 4 (weights of iteration 2) is what remains.
"$EXITRL" train "${rl[@]}" --iterations 2 --name clean2 >/dev/null 2>&1
EXITRL_TEST_FAULT=grad:3-1000 "$EXITRL" train "${rl[@]}" --iterations 20 --ckpt_every 2 --max_skips 3 --name stop >"$tmp/log" 2>&1
rc=$?
[ $rc = 1 ] || fail "persistent faults: exit $rc, want 1"
grep -q "stopping after 3 iterations in a row with skipped updates (max_skips = 3)" "$tmp/log" &&
    grep -q "checkpoint.bin is intact" "$tmp/log" || { fail "persistent faults: no clear stop message"; cat "$tmp/log"; }
[ "$(skipped "$tmp/stop/metrics.jsonl")" = "0,0,2,2,2" ] || fail "persistent faults: skipped = $(skipped "$tmp/stop/metrics.jsonl")"
[ "$(crcs "$tmp/stop/checkpoint.bin")" = "$(crcs "$tmp/clean2/checkpoint.bin")" ] || fail "persistent faults: the last checkpoint is not the weights of iteration 2"
"$EXITRL" train --resume "$tmp/stop/checkpoint.bin" --iterations 5 --out_dir "$tmp/again" >"$tmp/log" 2>&1 ||
    { fail "the last checkpoint does not resume"; cat "$tmp/log"; }
grep -q "iterations 4\.\.5" "$tmp/log" || fail "resume did not start at iteration 4"
EXITRL_TEST_FAULT=nan:1-2 "$EXITRL" train "${rl[@]}" --iterations 1 --name bad >"$tmp/log" 2>&1
[ $? = 2 ] && grep -q "EXITRL_TEST_FAULT" "$tmp/log" || fail "a malformed EXITRL_TEST_FAULT must be a usage error"
echo "cli_rl_faults: $((fails == 0 ? 1 : 0)) passed, $fails failed"
[ $fails = 0 ]
