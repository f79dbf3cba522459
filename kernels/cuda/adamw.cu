/* Fused AdamW: fp32 master weights and moments, then the act-dtype compute copy in the same pass.
 * The update is the CPU reference's formula term by term (ops.h). With
 * EXITRL_STOCHASTIC_ROUNDING=1 (bf16 only) the copy is rounded stochastically, unbiased in
 * expectation, from a counter-based hash of (step, call within the step, index): reproducible.
 * lr, the bias corrections, the clip scale and the step are read from the step values in device
 * memory (ops.h), so a captured training step replays with the current step's values. */
#include <math.h>

#include "cuda_common.cuh"

#define ADAMW_THREADS 256

/* A 32-bit integer hash (Wang/Jenkins-style mixing) for counter-based random bits. */
__device__ __forceinline__ uint32_t hash_u32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Rounds x to bf16 up or down with probability given by the distance to each neighbour: adding a
 * uniform 16-bit value below the kept bits and truncating does exactly that (sign-magnitude). */
__device__ __forceinline__ bf16 bf16_round_stochastic(float x, uint32_t random_bits) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x); /* inf or NaN */
    uint32_t r = (u + (random_bits & 0xffffu)) & 0xffff0000u;
    if ((r & 0x7f800000u) == 0x7f800000u) r = u & 0xffff0000u; /* would overflow to inf: truncate */
    return __ushort_as_bfloat16((unsigned short)(r >> 16));
}

/* The compute copy of an updated master weight. */
template <typename act_t> __device__ __forceinline__ act_t param_copy(float w, int stochastic, size_t i,
                                                                   uint32_t seed);
template <> __device__ __forceinline__ float param_copy<float>(float w, int, size_t, uint32_t) { return w; }
template <> __device__ __forceinline__ bf16 param_copy<bf16>(float w, int stochastic, size_t i, uint32_t seed) {
    if (!stochastic) return __float2bfloat16_rn(w);
    return bf16_round_stochastic(w, hash_u32((uint32_t)i ^ hash_u32(seed + (uint32_t)(i >> 32))));
}

template <typename act_t>
__global__ void __launch_bounds__(ADAMW_THREADS)
adamw_kernel(float *master, act_t *params_act, const float *grads, float *m, float *v, size_t n,
             const float *vals, float beta1, float beta2, float eps, float weight_decay, int stochastic,
             uint32_t call) {
    const float lr = vals[EXITRL_STEP_LR], bc1 = vals[EXITRL_STEP_BC1], bc2 = vals[EXITRL_STEP_BC2];
    const float grad_scale = vals[EXITRL_STEP_SCALE];
    const uint32_t seed = (uint32_t)vals[EXITRL_STEP_T] * 0x9e3779b9u ^ call * 0x85ebca6bu;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        float w = master[i];
        w -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * w);
        master[i] = w;
        params_act[i] = param_copy<act_t>(w, stochastic, i, seed);
    }
}

extern "C" void cuda_adamw_update(exitrl_backend *be, float *master, void *params_act, const float *grads,
                                  float *m, float *v, size_t n, const float *vals, float beta1, float beta2,
                                  float eps, float weight_decay) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (!n) return;
    uint32_t call = (uint32_t)ctx->adamw_call++;
    unsigned blocks = cuda_blocks_for(n, ADAMW_THREADS);
    if (ctx->fp32)
        adamw_kernel<float><<<blocks, ADAMW_THREADS, 0, ctx->stream>>>(
            master, (float *)params_act, grads, m, v, n, vals, beta1, beta2, eps, weight_decay, 0, call);
    else
        adamw_kernel<bf16><<<blocks, ADAMW_THREADS, 0, ctx->stream>>>(
            master, (bf16 *)params_act, grads, m, v, n, vals, beta1, beta2, eps, weight_decay,
            ctx->stochastic_rounding, call);
    CUDA_AFTER_LAUNCH(ctx, "adamw_update");
}
