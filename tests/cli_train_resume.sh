#!/usr/bin/env bash
# A resumed ExIt run writes the same metrics as an uninterrupted one: train 4 iterations straight,
# and 2 + (resume) 2, from the same warm start; every non-timing field of every line must match.
set -euo pipefail
EXITRL="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
small=(--n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --threads 2 --progress 0)
"$EXITRL" pretrain --task arith --task_knobs ops=1 "${small[@]}" --steps 5 --batch_size 4 --seq_len 64 \
    --eval_instances 8 --out_dir "$tmp" --name warm >/dev/null 2>&1
rl=(--task arith --task_knobs ops=1 --method exit --prompts 4 --group_size 4 --buffer_min 2 --p_replay 0.7
    --max_new_tokens 12 --lr 1e-3 --kl_beta 0.01 --ref_every 1 --ref_alpha 0.5 --threads 2 --progress 0
    --eval_every 0 --out_dir "$tmp")
"$EXITRL" train --init "$tmp/warm/checkpoint.bin" "${rl[@]}" --iterations 4 --name straight 2>/dev/null
"$EXITRL" train --init "$tmp/warm/checkpoint.bin" "${rl[@]}" --iterations 2 --name split 2>/dev/null
"$EXITRL" train --resume "$tmp/split/checkpoint.bin" "${rl[@]}" --iterations 4 --name split 2>/dev/null
python3 - "$tmp/straight/metrics.jsonl" "$tmp/split/metrics.jsonl" <<'PY'
import json, sys
def load(p):
    rows = [json.loads(l) for l in open(p) if l.strip()]
    return [{k: v for k, v in r.items() if not k.startswith("t_") and k != "rollout_tokens_per_s"} for r in rows]
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == 4 and len(b) == 4, (len(a), len(b))
bad = [(i, k, a[i][k], b[i].get(k)) for i in range(4) for k in a[i] if a[i][k] != b[i].get(k)]
if bad:
    print("FAIL: resumed metrics differ:", bad[:5]); sys.exit(1)
assert any(r["buffer_size"] > 0 for r in a) and any(r["replay_share"] > 0 for r in a), "the buffer was never used"
print("resumed run: 4 iterations x %d fields identical to the uninterrupted run" % len(a[0]))
PY
