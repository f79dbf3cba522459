/* Global gradient norm and clip scale (ops.h grad_norm_clip), deterministic: a fixed grid of
 * blocks each reduces a fixed grid-stride subset in a fixed order, then one block adds the block
 * sums in order and writes the norm and the clip scale into the step values on the device, so the
 * optimizer step never waits for the host. Accumulates in fp64 (the CPU reference does too); the
 * pass is memory-bound, so the wider adds cost nothing measurable. */
#include "cuda_common.cuh"

#define NORM_THREADS 256
#define NORM_BLOCKS 1024 /* fixed, not per device: the summation order must not depend on the GPU */

__global__ void __launch_bounds__(NORM_THREADS) sum_squares_partial_kernel(double *partial, const float *x, size_t n) {
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)NORM_THREADS + threadIdx.x; i < n; i += (size_t)NORM_BLOCKS * NORM_THREADS) {
        double xi = x[i];
        acc += xi * xi;
    }
    __shared__ double red[NORM_THREADS / 32];
    double total = block_sum<NORM_THREADS>(acc, red);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void __launch_bounds__(NORM_THREADS)
grad_norm_final_kernel(float *vals, const double *partial, float max_norm) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < NORM_BLOCKS; i += NORM_THREADS) acc += partial[i];
    __shared__ double red[NORM_THREADS / 32];
    double total = block_sum<NORM_THREADS>(acc, red);
    if (threadIdx.x == 0) {
        /* The same float expressions as the CPU reference. */
        float norm = (float)sqrt(total);
        float scale = (max_norm > 0.0f && norm > max_norm) ? max_norm / norm : 1.0f;
        if (!isfinite(norm)) scale = 0.0f;
        vals[EXITRL_STEP_NORM] = norm;
        vals[EXITRL_STEP_SCALE] = scale;
    }
}

extern "C" void cuda_grad_norm_clip(exitrl_backend *be, float *vals, const float *x, size_t n, float max_norm) {
    cuda_ctx *ctx = CUDA_CTX(be);
    ctx->adamw_call = 0; /* adamw_update numbers its calls from the last norm (stochastic rounding) */
    double *partial = (double *)cuda_scratch(ctx, SCRATCH_NORM_PARTIALS, NORM_BLOCKS * sizeof(double));
    sum_squares_partial_kernel<<<NORM_BLOCKS, NORM_THREADS, 0, ctx->stream>>>(partial, x, n);
    CUDA_AFTER_LAUNCH(ctx, "grad_norm_clip (partials)");
    grad_norm_final_kernel<<<1, NORM_THREADS, 0, ctx->stream>>>(vals, partial, max_norm);
    CUDA_AFTER_LAUNCH(ctx, "grad_norm_clip (final)");
}
