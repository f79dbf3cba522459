#!/usr/bin/env bash
# The rooms of host/ include each other only as host/README.md allows (no cycles): every
# `#include "room/..."` in host/<room>/ must name the room itself or one it may use.
set -euo pipefail
cd "$(dirname "$0")/../host"
declare -A uses=(
    [model]="" [dist]="model" [run]="model dist" [tasks]="model" [rl]="model run tasks dist" [eval]="model rl tasks dist"
    [pretrain]="model run tasks eval dist" [cli]="model run tasks rl eval pretrain dist"
)
bad=0
for room in */; do
    room=${room%/}
    if [ -z "${uses[$room]+set}" ]; then echo "host/$room/ is not a known room (add it here and to host/README.md)"; bad=1; continue; fi
    for f in "$room"/*.[ch]; do
        for dep in $(grep -oE '^#include "[a-z_]+/' "$f" | sed 's/#include "//; s/\///' | sort -u); do
            if [ "$dep" != "$room" ] && ! [[ " ${uses[$room]} " == *" $dep "* ]]; then
                echo "host/$f includes $dep/, which $room/ may not use (allowed: ${uses[$room]:-none})"; bad=1
            fi
        done
    done
done
[ "$bad" = 0 ] && echo "host rooms: every include follows host/README.md"
exit "$bad"
