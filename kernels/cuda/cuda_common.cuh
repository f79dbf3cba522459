/* Device helpers shared by the CUDA kernels: element-type conversion (every kernel is a template on
 * the activation type, float or __nv_bfloat16, and computes in fp32), warp reductions, GELU and
 * the device-side bad-input report. */
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

/* Sums and maxima over the 32 lanes of a warp (a fixed butterfly: deterministic). */
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_double(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
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

/* Records the first bad input a kernel meets; the host reports it at the next sync. */
__device__ __forceinline__ void report_bad_input(int *dev_err, int code, int a, int b, int c) {
    if (atomicCAS(dev_err, 0, code) == 0) {
        dev_err[1] = a;
        dev_err[2] = b;
        dev_err[3] = c;
    }
}

#endif
