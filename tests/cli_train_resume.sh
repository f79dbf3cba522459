#!/usr/bin/env bash
# A resumed ExIt run writes the same metrics as an uninterrupted one: train 4 iterations straight,
# and 2 + (resume) 2, from the same warm start; every non-timing field of every line must match.
# Twice: arith, and ledger's 3-turn episodes (a buffer of per-turn histories, played on).
set -euo pipefail
EXITRL="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
small=(--n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --threads 2 --progress 0)
check() { # $1 name: the straight and the split run of it write the same metrics
python3 - "$tmp/$1_straight/metrics.jsonl" "$tmp/$1_split/metrics.jsonl" "$1" <<'PY'
import json, sys
def load(p):
    rows = [json.loads(l) for l in open(p) if l.strip()]
    return [{k: v for k, v in r.items() if not k.startswith("t_") and k != "rollout_tokens_per_s"} for r in rows]
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == 4 and len(b) == 4, (len(a), len(b))
bad = [(i, k, a[i][k], b[i].get(k)) for i in range(4) for k in a[i] if a[i][k] != b[i].get(k)]
if bad:
    print("FAIL: %s: resumed metrics differ:" % sys.argv[3], bad[:5]); sys.exit(1)
assert any(r["buffer_size"] > 0 for r in a) and any(r["replay_share"] > 0 for r in a), "the buffer was never used"
if sys.argv[3] == "ledger":
    assert any(r["run_on"] > 0 for r in a) and any(r["mean_turn"] > 0 for r in a), "no later turns"
print("%s: resumed run: 4 iterations x %d fields identical to the uninterrupted run" % (sys.argv[3], len(a[0])))
PY
}
run() { # $1 name, $2 task, $3 knobs, $4 max_seq
    small=(--n_layer 1 --n_head 2 --d_model 32 --max_seq "$4" --threads 2 --progress 0)
    "$EXITRL" pretrain --task "$2" --task_knobs "$3" "${small[@]}" --steps 5 --batch_size 4 --seq_len "$4" \
        --eval_instances 8 --out_dir "$tmp" --name "$1_warm" >/dev/null 2>&1
    rl=(--task "$2" --task_knobs "$3" --method exit --prompts 4 --group_size 4 --buffer_min 2 --p_replay 0.7
        --max_new_tokens 12 --lr 1e-3 --kl_beta 0.01 --ref_every 1 --ref_alpha 0.5 --threads 2 --progress 0
        --eval_every 0 --out_dir "$tmp")
    "$EXITRL" train --init "$tmp/$1_warm/checkpoint.bin" "${rl[@]}" --iterations 4 --name "$1_straight" 2>/dev/null
    "$EXITRL" train --init "$tmp/$1_warm/checkpoint.bin" "${rl[@]}" --iterations 2 --name "$1_split" 2>/dev/null
    "$EXITRL" train --resume "$tmp/$1_split/checkpoint.bin" "${rl[@]}" --iterations 4 --name "$1_split" 2>/dev/null
    check "$1"
}
run arith arith ops=1 64
run ledger ledger turns=3,tools=1,accounts=2 256
