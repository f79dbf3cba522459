#!/usr/bin/env bash
# Policies improve their own answers on problems they never trained on (issue #15): the README's
# CPU demo, shortened (configs/tiny_cpu.conf: a warm start on knapsack demonstrations whose improve
# examples keep a right attempt and make one hill-climbing move on a wrong one; then
# configs/tiny_cpu_exit.conf: ExIt with the verifier's feedback), then `exitrl eval` of both
# policies over K = 4 improve steps on 512 held-out instances x 2 chains at temperature 0.6 (the
# study's setting). Before the fixes of issue 15 both policies got worse at every step (Delta_8
# -0.2 at temperature 1).
#
# Measured with this exact script (seeds 1-3, 2 threads, while two other jobs ran: 240-340 s wall):
#   seed               1        2        3      mean    std
#   warm  Delta_4  +0.109   +0.047   +0.025   +0.060  0.044
#   exit  Delta_4  +0.032   -0.015   +0.027   +0.015  0.026
#   (standard error of one score <= 0.0123)
# What is asserted, at seed 1: the warm start improves (Delta_4 >= WARM_MARGIN = 0: every seed
# measured gains at least +0.025, two standard errors) and the ExIt policy does not degrade
# (Delta_4 >= EXIT_MARGIN = -0.04: a bit more than two standard deviations under the mean; the old
# behaviour fails both by far). That ExIt's Delta is above zero is not established in runs this
# short (one seed of three is negative), so it is printed, not asserted: docs/results/diagnosis.md.
# A different CPU (other BLAS kernels) makes the fixed seed a new draw from the spread above.
# Labelled `slow`: the asan preset leaves it out.
set -u
EXITRL="$1"
CONF="$(cd "$(dirname "$0")/.." && pwd)/configs"
SEED=${SELF_IMPROVE_TEST_SEED:-1}
WARM_MARGIN=${SELF_IMPROVE_TEST_WARM_MARGIN:-0}
EXIT_MARGIN=${SELF_IMPROVE_TEST_EXIT_MARGIN:--0.04}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--seed "$SEED" --threads 2 --progress 0 --out_dir "$tmp")
"$EXITRL" pretrain --config "$CONF/tiny_cpu.conf" "${common[@]}" --steps 800 --demo_p_shown_correct 0.25 --eval_every 0 --ckpt_every 800 \
    --name warm >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: pretrain"; exit 1; }
"$EXITRL" train --config "$CONF/tiny_cpu_exit.conf" --init "$tmp/warm/checkpoint.bin" "${common[@]}" \
    --iterations 60 --ckpt_every 60 --name exit >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: train"; exit 1; }
"$EXITRL" eval --config "$CONF/tiny_cpu_exit.conf" --runs "$tmp/warm,$tmp/exit" --seed "$SEED" --threads 2 \
    --eval_steps 4 --eval_instances 512 --eval_samples 2 --temperature 0.6 --out "$tmp/eval.json" \
    >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: eval"; exit 1; }
python3 - "$tmp/eval.json" "$WARM_MARGIN" "$EXIT_MARGIN" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
margins = [float(sys.argv[2]), float(sys.argv[3])]
failed = False
for r, margin in zip(runs, margins):
    name, s = r["run"].rstrip("/").split("/")[-1], r["score"]
    delta = s[-1] - s[0]
    print("%-5s k=0..%d: %s  Delta_K %+.4f (se of a score <= %.4f)" % (
        name, r["K"], " ".join("%.3f" % x for x in s), delta, max(r["score_se"])))
    if not delta >= margin:
        print("FAIL: %s: held-out Delta_K %+.4f is below the margin %+.3f" % (name, delta, margin))
        failed = True
sys.exit(1 if failed else 0)
PY
