/* Device helpers shared by the CUDA kernels: element-type conversion (every kernel is a template on
 * the activation type, float or __nv_bfloat16, and computes in fp32), warp and block reductions,
 * GELU and the device-side bad-input report.
 *
 * Block reductions (deterministic: a fixed order that depends only on NT):
 *   template <int NT, typename T> __device__ T block_sum(T v, T *red);
 *   template <int NT, typename T> __device__ T block_max(T v, T *red);
 * T is float or double; the block has exactly NT threads (a multiple of 32, blockDim.x == NT) and
 * every thread must call (they contain barriers); every thread gets the result. red is shared
 * memory of NT / 32 elements of T, free for reuse once the call returns: a leading barrier lets
 * back-to-back calls share one red. Order: each warp's xor butterfly (offsets 16, 8, 4, 2, 1),
 * then the warp results in warp order, a sum starting from 0 and a max from warp 0's value. */
#ifndef EXITRL_CUDA_COMMON_CUH
#define EXITRL_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_backend.h"

typedef __nv_bfloat16 bf16;

template <typename act_t> __device__ __forceinline__ float to_f32(act_t x);
template <> __device__ __forceinline__ float to_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f32<bf16>(bf16 x) { return __bfloat162float(x); }

/* Round-to-nearest-even conversion from fp32. */
template <typename act_t> __device__ __forceinline__ act_t from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16_rn(x); }

/* The value x takes once stored as act_t (so a kernel can use exactly what it wrote). */
template <typename act_t> __device__ __forceinline__ float round_to_act(float x) {
    return to_f32<act_t>(from_f32<act_t>(x));
}

/* Sum over the 32 lanes of a warp (a fixed butterfly: deterministic). */
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* max for the block reduction's value types (fmaxf / fmax: a NaN operand yields the other one). */
__device__ __forceinline__ float max_of(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max_of(double a, double b) { return fmax(a, b); }

/* Stores each warp's result v (lane 0) into red[warp] between barriers; see block_sum. */
template <int NT, typename T> __device__ __forceinline__ void block_publish_warp(T v, T *red) {
    static_assert(NT % 32 == 0 && NT >= 32 && NT <= 1024, "block reductions need a whole number of warps");
    __syncthreads(); /* red may still be read by a previous reduction */
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
}

template <int NT, typename T> __device__ __forceinline__ T block_sum(T v, T *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    block_publish_warp<NT>(v, red);
    T r = T(0);
    for (int w = 0; w < NT / 32; w++) r += red[w];
    return r;
}

template <int NT, typename T> __device__ __forceinline__ T block_max(T v, T *red) {
    for (int o = 16; o > 0; o >>= 1) v = max_of(v, __shfl_xor_sync(0xffffffffu, v, o));
    block_publish_warp<NT>(v, red);
    T r = red[0];
    for (int w = 1; w < NT / 32; w++) r = max_of(r, red[w]);
    return r;
}

/* GELU, tanh approximation (GPT-2), and its derivative; the same formulas as kernels/cpu/matmul.c. */
#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
__device__ __forceinline__ float gelu_tanh(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = tanhf(u);
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

/* Host side, for the attention kernels: opts a kernel in to `bytes` of dynamic shared memory (once:
 * *done remembers it), or fails naming the limit. */
template <typename kernel_t>
static void attention_smem_opt_in(cuda_ctx *ctx, kernel_t kernel, size_t bytes, const char *op, int hs, bool *done) {
    if (*done) return;
    if (bytes > ctx->max_smem_optin)
        CUDA_UNSUPPORTED("%s: head size %d needs %zu bytes of shared memory per block; %s allows %zu", op, hs, bytes,
                         ctx->device_name, ctx->max_smem_optin);
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    *done = true;
}

/* Records the first bad input a kernel meets; the host reports it at the next sync. */
__device__ __forceinline__ void report_bad_input(int *dev_err, int code, int a, int b, int c) {
    if (atomicCAS(dev_err, 0, code) == 0) {
        dev_err[1] = a;
        dev_err[2] = b;
        dev_err[3] = c;
    }
}

#endif
