#!/usr/bin/env bash
# Builds the CUDA backend and tests/test_gpu_ops.c, test_gpu_train_step.c, test_gpu_rollout.c against a CPU
# simulator of CUDA, to check kernel logic on a machine without a GPU (it is not a substitute for a
# GPU run: no real numerics of cuBLASLt, no timing, no memory model). One host thread per CUDA
# thread, real barriers and warp shuffles, a reference cuBLASLt and CUB radix sort; prep.py rewrites
# kernels/cuda/*.cu launches into simulator calls. Slow: the training-step test takes many minutes.
# Usage: tools/cudasim/build.sh [OUT_DIR] [SANITIZER_FLAGS]
#   default OUT_DIR /tmp/cudasim-build, default flags "-fsanitize=address,undefined"; "-O2" builds
#   without sanitizers, much faster (test_gpu_train_step then takes about 1.2 min per training
#   step on 2 cores; under ASan it had not finished after 45 min)
#   then run OUT_DIR/test_gpu_ops, OUT_DIR/test_gpu_train_step and OUT_DIR/test_gpu_rollout --quick
#   (test_gpu_ops --attention-only runs just the attention cases: fp32, bf16 on the tensor-core
#   kernels, whose mma.sync the simulator emulates from the PTX fragment layouts, and bf16 simt)
set -e
S=$(cd "$(dirname "$0")" && pwd); R=$(cd "$S/../.." && pwd)
O=${1:-/tmp/cudasim-build}; SAN=${2:--fsanitize=address,undefined -fno-omit-frame-pointer}
mkdir -p "$O/obj"
rm -rf "$O/src"; python3 "$S/prep.py" "$R/kernels/cuda" "$O/src"
CXX="g++ -std=c++17 -O1 -g $SAN -I$S/include -I$O/src -I$R/kernels -Wall -Wno-unused-function"
CC="gcc -std=c11 -O1 -g $SAN -I$R/kernels -I$R/host -I$R/tests -Wall -Wextra -Wno-unused-parameter"
objs=""
for f in "$O"/src/*.cpp "$S/sim_runtime.cpp"; do b=$(basename "$f" .cpp); $CXX -c "$f" -o "$O/obj/$b.o" & objs="$objs $O/obj/$b.o"; done
for f in "$R"/kernels/cpu/*.c; do b=cpu_$(basename "$f" .c); $CC -c "$f" -o "$O/obj/$b.o" & objs="$objs $O/obj/$b.o"; done
wait
for f in model/model model/optimizer model/rng model/tokenizer rl/rollout; do
    $CC -DEXITRL_VERSION='"sim"' -DEXITRL_SOURCE_DIR="\"$R\"" -c "$R/host/$f.c" -o "$O/obj/host_$(basename "$f").o"
done
$CC -c "$R/tests/test_gpu_ops.c" -o "$O/obj/test_gpu_ops.o"
$CC -c "$R/tests/test_gpu_train_step.c" -o "$O/obj/test_gpu_train_step.o"
$CC -c "$R/tests/test_gpu_rollout.c" -o "$O/obj/test_gpu_rollout.o"
g++ $SAN -o "$O/test_gpu_ops" "$O/obj/test_gpu_ops.o" $objs -lm -lpthread
g++ $SAN -o "$O/test_gpu_train_step" "$O/obj/test_gpu_train_step.o" "$O"/obj/host_*.o $objs -lm -lpthread
g++ $SAN -o "$O/test_gpu_rollout" "$O/obj/test_gpu_rollout.o" "$O"/obj/host_*.o $objs -lm -lpthread
echo "built $O/test_gpu_ops, $O/test_gpu_train_step and $O/test_gpu_rollout"
