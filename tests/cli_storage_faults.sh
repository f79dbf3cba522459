#!/usr/bin/env bash
# Storage faults: each failing write is an error (exit 1) naming the path and the reason, and the
# previous checkpoint stays byte for byte as it was and loadable:
#   - a file where the run directory should be;
#   - a full disk under the checkpoint (its temporary file is a link to /dev/full: ENOSPC);
#   - a file-size limit (ulimit -f; exitrl ignores SIGXFSZ, so the write fails with EFBIG);
#   - a full disk under metrics.jsonl (a link to /dev/full): the run stops after saving a checkpoint.
set -u
EXITRL="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_fail() { # expect_fail <what> <fragment>...: the last command's exit code is in rc, its output in log
    local what="$1"; shift
    [ "$rc" = 1 ] || fail "$what: exit $rc, want 1"
    for frag in "$@"; do grep -qF -- "$frag" "$tmp/log" || { fail "$what: no '$frag' in the message"; cat "$tmp/log"; }; done
}
pt=(--task arith --task_knobs ops=1 --n_layer 1 --n_head 2 --d_model 32 --max_seq 64 --threads 1 --progress 0
    --batch_size 4 --seq_len 64 --eval_instances 4 --log_every 1 --out_dir "$tmp")
"$EXITRL" pretrain "${pt[@]}" --steps 2 --name run >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
ck="$tmp/run/checkpoint.bin"
sum=$(cksum <"$ck")
unchanged() { # the previous checkpoint is the same file, loads, and no temporary file is left
    [ "$(cksum <"$ck")" = "$sum" ] || fail "$1: the previous checkpoint changed"
    [ ! -e "$ck.tmp" ] || fail "$1: $ck.tmp left behind"
    "$EXITRL" pretrain --resume "$ck" --steps 2 --out_dir "$tmp/check" >/dev/null 2>&1 || fail "$1: the previous checkpoint does not load"
}

touch "$tmp/blocked"
"$EXITRL" pretrain "${pt[@]}" --steps 2 --name blocked >"$tmp/log" 2>&1; rc=$?
expect_fail "a file in place of the run directory" "$tmp/blocked" "Not a directory"

ln -s /dev/full "$ck.tmp"
"$EXITRL" pretrain --resume "$ck" --steps 4 >"$tmp/log" 2>&1; rc=$?
expect_fail "disk full under the checkpoint" "$ck.tmp" "No space left on device"
unchanged "disk full"

(ulimit -f 64; exec "$EXITRL" pretrain --resume "$ck" --steps 4) >"$tmp/log" 2>&1; rc=$?
expect_fail "file-size limit" "$ck.tmp" "File too large"
unchanged "file-size limit"

mv "$tmp/run/metrics.jsonl" "$tmp/metrics.saved"
ln -s /dev/full "$tmp/run/metrics.jsonl"
"$EXITRL" pretrain --resume "$ck" --steps 4 >"$tmp/log" 2>&1; rc=$?
expect_fail "disk full under metrics.jsonl" "$tmp/run/metrics.jsonl" "No space left on device" "stopped at step 3"
[ "$(cksum <"$ck")" != "$sum" ] && "$EXITRL" pretrain --resume "$ck" --steps 4 --out_dir "$tmp/check" >"$tmp/log" 2>&1 &&
    grep -q "steps 3\.\.4" "$tmp/log" || fail "the checkpoint saved when metrics failed does not continue at step 3"
echo "cli_storage_faults: $((fails == 0 ? 1 : 0)) passed, $fails failed"
[ $fails = 0 ]
