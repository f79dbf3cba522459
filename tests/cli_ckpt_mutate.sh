#!/usr/bin/env bash
# Hostile checkpoints: a real pretrain and a real train checkpoint (a very small model), each
# section mutated (1-16 bytes, EXITRL_MUTATIONS per section, 4 by default) with every CRC computed
# again (tests/ckpt_mutate.py), then resumed from the checkpoint alone (exitrl <cmd> --resume F,
# one more step or iteration). Each run must end within a time cap, without a crash (a signal or a
# sanitizer report), and either
#   - be rejected: exit 1 with a message naming the file and a section, or
#   - be accepted: exit 0, and the checkpoint it writes must load again under every check
#     (a resume with nothing left to do) - an accepted mutation cannot leave corrupt state behind.
# Prints the table of sections x outcomes.
set -u
EXITRL="$1"
MUT="$(dirname "$0")/ckpt_mutate.py"
N="${EXITRL_MUTATIONS:-4}"
CAP=60
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
small=(--n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --threads 1 --progress 0 --device cpu)
"$EXITRL" pretrain --task arith --task_knobs ops=1 "${small[@]}" --steps 4 --batch_size 4 --seq_len 64 \
    --eval_instances 4 --out_dir "$tmp" --name warm >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
"$EXITRL" train --init "$tmp/warm/checkpoint.bin" --task arith --task_knobs ops=1 --method exit --prompts 4 \
    --group_size 4 --buffer_min 2 --p_replay 0.7 --p_diverge 0.5 --max_new_tokens 12 --kl_beta 0.01 --ref_every 1 \
    --iterations 2 --eval_every 0 --threads 1 --progress 0 --out_dir "$tmp" --name rl >"$tmp/log" 2>&1 ||
    { cat "$tmp/log"; exit 1; }

# run <kind> <checkpoint> <out_dir>: resume one more unit; sets rc and out.
run() {
    local total=3 key=--iterations
    [ "$1" = pretrain ] && total=5 key=--steps
    out=$(timeout -s KILL $CAP "$EXITRL" "$1" --resume "$2" $key $total --out_dir "$3" --name r --device cpu \
          --threads 1 --progress 0 --eval_every 0 2>&1)
    rc=$?
}

printf "%-10s %-14s %8s %8s %8s\n" checkpoint section rejected accepted stopped >"$tmp/table"
for kind in pretrain train; do
    ck="$tmp/warm/checkpoint.bin"; [ $kind = train ] && ck="$tmp/rl/checkpoint.bin"
    # The unchanged checkpoint resumes.
    run $kind "$ck" "$tmp/o_$kind"
    [ $rc = 0 ] || fail "$kind: the unchanged checkpoint does not resume (exit $rc): $out"
    for section in $(python3 "$MUT" list "$ck" | cut -d' ' -f1); do
        rej=0 acc=0 stop=0
        for seed in $(seq 0 $((N - 1))); do
            f="$tmp/m_${kind}_${section}_$seed.bin"
            what=$(python3 "$MUT" mutate "$ck" "$section" "$seed" "$f")
            o="$tmp/o_${kind}_${section}_$seed"
            run $kind "$f" "$o"
            case "$rc" in
            0)
                acc=$((acc + 1))
                run $kind "$o/r/checkpoint.bin" "$o"
                [ $rc = 0 ] || fail "$kind $section seed $seed ($what): accepted, but the checkpoint it wrote does not load (exit $rc): $out"
                ;;
            1)
                if grep -qF -- "$f" <<<"$out" && grep -q "section '" <<<"$out"; then
                    rej=$((rej + 1))
                elif grep -qE "non-finite|not finite" <<<"$out"; then
                    stop=$((stop + 1)) # accepted at load; a numeric fault stopped the run before it saved
                else
                    fail "$kind $section seed $seed ($what): exit 1 without a message naming the file and section: $out"
                fi
                ;;
            137) fail "$kind $section seed $seed ($what): no end within ${CAP}s (killed)" ;;
            *) fail "$kind $section seed $seed ($what): exit $rc: $out" ;;
            esac
            if grep -qE "AddressSanitizer|runtime error|LeakSanitizer" <<<"$out"; then
                fail "$kind $section seed $seed ($what): sanitizer report: $out"
            fi
        done
        printf "%-10s %-14s %8d %8d %8d\n" $kind "$section" $rej $acc $stop >>"$tmp/table"
    done
done
cat "$tmp/table"
echo "cli_ckpt_mutate: $N mutations per section; $((fails == 0 ? 1 : 0)) passed, $fails failed"
[ $fails = 0 ]
