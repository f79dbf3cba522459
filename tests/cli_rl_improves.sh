#!/usr/bin/env bash
# RL improves the policy on problems it never trained on (issue #6): a short CPU warm start on
# arith demonstrations, then a short `exitrl train --method grpo` from it, then `exitrl eval` of
# both checkpoints on the held-out split. Passes when the held-out base accuracy after RL exceeds
# the warm start's by at least MARGIN.
#
# Metric: avg@8 at temperature 1 (the policy as it samples, which is what GRPO optimises) on 512
# held-out problems x 8 samples of arith ops=2,max=5, whose 512 held-out draws hold 187 distinct
# problems, so a problem gained or lost moves the score by ~0.2-0.5%, not in coarse jumps. Greedy
# accuracy before and after is printed too but not asserted: across seeds it moved by -0.04..+0.07
# (RL here mostly sharpens the policy towards answers it already ranks first; the noisy teacher of
# the warm start is right 85% of the time, so the warm start samples well below its greedy score).
#
# Measured while choosing the margin (tiny model, these exact settings; seeds 2-8 with 1 thread,
# 1 and 9-11 with the test's 2; the warm start's greedy accuracy ranged 0.13..0.30 across seeds):
#   seed      1      2      3      4      5      6      7      8      9     10     11
#   before  0.187  0.187  0.094  0.107  0.182  0.179  0.182  0.170  0.204  0.201  0.192
#   after   0.254  0.250  0.189  0.181  0.248  0.259  0.234  0.228  0.245  0.251  0.248
#   gain   +0.068 +0.063 +0.095 +0.075 +0.066 +0.080 +0.051 +0.058 +0.041 +0.050 +0.056
#   (mean +0.064, standard deviation 0.015; greedy accuracy moved by -0.037..+0.065)
# MARGIN = 0.025: 2.6 standard deviations below the mean gain, so a change of floating point
# (another CPU's BLAS kernels make the fixed seed a new draw) fails it rarely, while it stands well
# above the sampling noise of the difference (at most ~0.009: 512 x 8 draws per score). Before and
# after are scored on the same problems with the same sampling seed.
#
# Cost: ~220-270 CPU-seconds; 150-320 s wall on 2 cores, depending on load (pretrain 1000 steps
# ~60%, RL 200 iterations ~35%, eval the rest).
# Labelled `slow`: the asan preset leaves it out (far too slow under the sanitizers, and their
# floating point differs from the Release build this was measured on).
set -u
EXITRL="$1"
MARGIN=0.025
SEED=${RL_TEST_SEED:-1}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--task arith --task_knobs ops=2,max=5 --max_new_tokens 8 --threads 2 --progress 0 --seed "$SEED"
        --out_dir "$tmp")
# Warm start on base-format demonstrations only: the test is about base accuracy, and a shorter
# mix learns it faster. 1000 steps leave the tiny model mid-way (greedy 0.13..0.30), room for RL.
"$EXITRL" pretrain "${common[@]}" --model tiny --steps 1000 --batch_size 16 --seq_len 64 --lr 3e-3 \
    --warmup_steps 50 --demo_p_improve 0 --demo_p_diverge 0 --log_every 100 --eval_every 0 \
    --eval_instances 512 --name warm >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: pretrain"; exit 1; }
# Plain GRPO; its held-out greedy evaluations at iterations 0 and 200 are in the metrics.
"$EXITRL" train --init "$tmp/warm/checkpoint.bin" "${common[@]}" --method grpo --prompts 16 --group_size 8 \
    --lr 2e-4 --iterations 200 --eval_every 200 --eval_instances 512 --name rl >"$tmp/log" 2>&1 ||
    { cat "$tmp/log"; echo "FAIL: train"; exit 1; }
"$EXITRL" eval --runs "$tmp/warm,$tmp/rl" --task arith --task_knobs ops=2,max=5 --eval_steps 0 --eval_samples 8 \
    --temperature 1 --eval_instances 512 --max_new_tokens 8 --threads 2 --seed "$SEED" --out "$tmp/eval.json" \
    >"$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: eval"; exit 1; }
python3 - "$tmp/eval.json" "$tmp/rl/metrics.jsonl" "$MARGIN" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
greedy = [json.loads(l)["heldout_solved"] for l in open(sys.argv[2]) if '"heldout_solved"' in l]
margin = float(sys.argv[3])
before, after = runs[0]["score"][0], runs[1]["score"][0]
print("held-out avg@8: warm start %.4f -> after GRPO %.4f (gain %+.4f, required >= %.3f); "
      "greedy %.4f -> %.4f" % (before, after, after - before, margin, greedy[0], greedy[-1]))
if not after - before >= margin:
    print("FAIL: RL did not raise held-out accuracy by the margin")
    sys.exit(1)
PY
