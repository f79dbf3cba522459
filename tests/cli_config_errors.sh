#!/usr/bin/env bash
# Config errors: an unknown key, a malformed number and an out-of-range value, from the command line
# and from a config file, each exit with code 2 and a message naming the key and what is allowed.
set -u
EXITRL="$1"
fails=0; checks=0
expect() { # expect <exit code> <message fragment> <args...>
    local code="$1" frag="$2"; shift 2
    local out rc
    out=$("$EXITRL" "$@" 2>&1); rc=$?
    checks=$((checks + 1))
    if [ "$rc" != "$code" ] || ! grep -qF -- "$frag" <<<"$out"; then
        echo "FAIL: exitrl $* -> exit $rc, output: $out (wanted exit $code and '$frag')"
        fails=$((fails + 1))
    fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
expect 2 "unknown config key 'lrr'" pretrain --lrr 1e-3 --data x
expect 2 "config key 'lr': 'abc' is not a number" pretrain --lr abc --data x
expect 2 "config key 'steps': '1.5' is not an integer" pretrain --steps 1.5 --data x
expect 2 "config key 'lr' = 7 is out of range: expected a number in [0, 1]" pretrain --lr 7 --data x
expect 2 "config key 'batch_size' = 0 is out of range: expected an integer in [1, 65536]" pretrain --batch_size 0 --data x
expect 2 "config key 'device' = 'tpu' is invalid: expected one of auto|cpu|cuda" pretrain --device tpu --data x
expect 2 "option '--steps' needs a value" pretrain --data x --steps
expect 2 "unexpected argument 'foo'" pretrain foo
expect 2 "give --data FILE or --task NAME" pretrain
expect 2 "unknown command 'frobnicate'" frobnicate
printf 'lr = 1e-3\n# a comment\nwarmup_stepz = 3\n' > "$tmp/bad.conf"
expect 2 "$tmp/bad.conf:3: unknown config key 'warmup_stepz'" pretrain --config "$tmp/bad.conf" --data x
printf 'lr 1e-3\n' > "$tmp/bad2.conf"
expect 2 "$tmp/bad2.conf:1: expected 'key = value'" pretrain --config "$tmp/bad2.conf" --data x
printf 'seq_len = 100000\n' > "$tmp/bad3.conf"
expect 2 "config key 'seq_len' = 100000 is out of range" pretrain --config "$tmp/bad3.conf" --data x
expect 2 "cannot open config file" pretrain --config "$tmp/missing.conf" --data x
expect 2 "config key 'seq_len' = 512 is out of range: the model's max_seq is 256" pretrain --seq_len 512 --data x
expect 1 "cannot open data file 'x'" pretrain --data x --out_dir "$tmp"
expect 0 "usage: exitrl pretrain" pretrain --help
expect 0 "usage: exitrl export" export --help
expect 0 "usage: exitrl info" info --help
expect 0 "parameters:" info --model small
expect 2 "--checkpoint and --out are required" export
# --resume takes the configuration from the checkpoint: meaningful overrides pass, others are errors.
"$EXITRL" pretrain --task arith --n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --seq_len 64 --batch_size 2 --steps 1 \
    --eval_instances 2 --threads 1 --progress 0 --out_dir "$tmp" --name ck >/dev/null 2>&1
expect 0 "steps 1..2" pretrain --resume "$tmp/ck/checkpoint.bin" --steps 2 --out_dir "$tmp/o" --progress 0
expect 2 "config key 'n_head' = '4' cannot change on --resume: the run in $tmp/ck/checkpoint.bin has '2'" \
    pretrain --resume "$tmp/ck/checkpoint.bin" --n_head 4
expect 2 "config key 'task' = 'knapsack' cannot change on --resume" pretrain --resume "$tmp/ck/checkpoint.bin" --task knapsack
expect 0 "steps 1..2" pretrain --resume "$tmp/ck/checkpoint.bin" --task arith --steps 2 --out_dir "$tmp/o2" --progress 0
expect 1 "section 'pretrain_state' field 'step' is outside [0, steps] (step 2, steps 1" \
    pretrain --resume "$tmp/o/ck/checkpoint.bin" --steps 1
expect 1 "has no section 'train_state'" train --resume "$tmp/ck/checkpoint.bin"
echo "cli_config_errors: $checks checks, $fails failed"
[ "$fails" = 0 ]
