#!/usr/bin/env bash
# The whole pipeline on a very small model: pretrain on task demonstrations -> train (each method
# of the ladder) -> eval (JSON with the protocol's fields) -> export (safetensors the independent
# reference reads, when PyTorch is present). Checks exit codes and outputs, not learning.
set -u
EXITRL="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
small=(--n_layer 1 --n_head 2 --d_model 32 --max_seq 96 --threads 2 --progress 0 --out_dir "$tmp")
for task in arith countdown knapsack; do
    "$EXITRL" pretrain --task $task "${small[@]}" --steps 3 --batch_size 2 --seq_len 96 --eval_instances 4 \
        --name "warm_$task" >"$tmp/log" 2>&1 || { fail "pretrain --task $task"; cat "$tmp/log"; }
    grep -q '"format_valid"' "$tmp/warm_$task/metrics.jsonl" || fail "$task: no format_valid in metrics"
done
for method in grpo curriculum improve diverge exit; do
    "$EXITRL" train --init "$tmp/warm_countdown/checkpoint.bin" --task countdown --method $method \
        --prompts 4 --group_size 3 --iterations 3 --buffer_min 2 --p_replay 0.9 --p_diverge 0.5 \
        --max_new_tokens 12 --eval_every 3 --eval_instances 4 --threads 2 --progress 0 --out_dir "$tmp" \
        --name "rl_$method" >"$tmp/log" 2>&1 || { fail "train --method $method"; cat "$tmp/log"; }
    n=$(grep -c '"reward_mean"' "$tmp/rl_$method/metrics.jsonl" 2>/dev/null || echo 0)
    [ "$n" = 3 ] || fail "$method: $n iteration lines, want 3"
done
"$EXITRL" train --init "$tmp/warm_countdown/checkpoint.bin" --task countdown --method exit --diversity_embed ngram \
    --prompts 4 --group_size 3 --iterations 2 --max_new_tokens 12 --threads 2 --progress 0 --eval_every 0 \
    --out_dir "$tmp" --name rl_ngram >"$tmp/log" 2>&1 || { fail "train with n-gram embeddings"; cat "$tmp/log"; }
"$EXITRL" eval --runs "$tmp/warm_countdown,$tmp/rl_exit" --task countdown --eval_steps 2 --eval_instances 3 \
    --eval_samples 2 --max_new_tokens 12 --threads 2 --out "$tmp/eval.json" >"$tmp/log" 2>&1 ||
    { fail "eval"; cat "$tmp/log"; }
python3 - "$tmp/eval.json" <<'PY' || fail "eval.json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["runs"]) == 2
for r in d["runs"]:
    assert len(r["score"]) == 3 and len(r["net_corrections"]) == 3 and r["K"] == 2
    assert set(r["score_at"]) == {"0", "1", "2"} and "delta_K" in r and "train_mean_depth" in r
    assert all(0 <= s <= 1 for s in r["score"])
assert d["runs"][1]["train_mean_depth"] is not None
PY
# ledger: multi-turn demonstrations (2 turns), ExIt on its first turn, the episode evaluation
mt=(--task ledger --task_knobs turns=2 --n_layer 1 --n_head 2 --d_model 32 --max_seq 256 --threads 2 --progress 0
    --out_dir "$tmp")
"$EXITRL" pretrain "${mt[@]}" --steps 3 --batch_size 2 --seq_len 256 --eval_instances 4 --name warm_ledger \
    >"$tmp/log" 2>&1 || { fail "pretrain --task ledger"; cat "$tmp/log"; }
"$EXITRL" train --init "$tmp/warm_ledger/checkpoint.bin" --task ledger --task_knobs turns=2 --method exit \
    --prompts 4 --group_size 3 --iterations 2 --max_new_tokens 12 --eval_every 0 --threads 2 --progress 0 \
    --out_dir "$tmp" --name rl_ledger >"$tmp/log" 2>&1 || { fail "train --task ledger"; cat "$tmp/log"; }
"$EXITRL" eval --runs "$tmp/warm_ledger,$tmp/rl_ledger" --task ledger --task_knobs turns=2 --eval_steps 1 \
    --eval_instances 3 --eval_samples 2 --max_new_tokens 12 --threads 2 --out "$tmp/eval_ledger.json" >"$tmp/log" 2>&1 ||
    { fail "eval ledger episodes"; cat "$tmp/log"; }
python3 - "$tmp/eval_ledger.json" <<'PY' || fail "eval_ledger.json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["runs"]) == 2
for r in d["runs"]:
    assert r["turns"] == 2 and r["K"] == 1
    for key in ("score", "return", "return_se", "turns_solved", "valid", "first_turn_score", "first_turn_solved"):
        assert len(r[key]) == 2, key
    assert all(0 <= s <= 1 for s in r["score"]) and all(0 <= x <= 2 for x in r["return"])
    assert all(t <= x + 1e-9 for t, x in zip(r["turns_solved"], r["return"]))
PY
"$EXITRL" train --init "$tmp/missing.bin" --task arith "${small[@]}" >"$tmp/log" 2>&1
[ $? = 1 ] && grep -q "cannot open checkpoint" "$tmp/log" || fail "missing checkpoint must be a clear runtime error"
"$EXITRL" train --init "$tmp/warm_arith/checkpoint.bin" --task arith --group_size 1 "${small[@]}" >"$tmp/log" 2>&1
[ $? = 2 ] && grep -q "group_size" "$tmp/log" || fail "group_size 1 must be a usage error"
"$EXITRL" export --checkpoint "$tmp/rl_exit/checkpoint.bin" --out "$tmp/hf" >"$tmp/log" 2>&1 || { fail "export"; cat "$tmp/log"; }
for f in model.safetensors config.json check.bin; do [ -s "$tmp/hf/$f" ] || fail "export: no $f"; done
for py in python3 /usr/bin/python3; do
    if "$py" -c "import torch" 2>/dev/null; then
        "$py" "$(dirname "$0")/ref/check_hf_export.py" "$tmp/hf" >"$tmp/log" 2>&1 || { fail "export check"; cat "$tmp/log"; }
        break
    fi
done
echo "cli_pipeline: $((fails == 0 ? 1 : 0)) passed, $fails failed"
[ $fails = 0 ]
