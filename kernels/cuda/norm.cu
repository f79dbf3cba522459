/* Sum of squares of an fp32 vector (the global gradient norm), deterministic: a fixed grid of
 * blocks each reduces a fixed grid-stride subset in a fixed order, then one block adds the block
 * sums in order. Accumulates in fp64 (the CPU reference does too); the pass is memory-bound, so
 * the wider adds cost nothing measurable. */
#include "cuda_common.cuh"

#define NORM_THREADS 256
#define NORM_BLOCKS 1024 /* fixed, not per device: the summation order must not depend on the GPU */

/* Sum over the block of v, in a fixed tree order; the result is valid in thread 0. */
__device__ double block_sum_double(double v) {
    __shared__ double warp_sums[NORM_THREADS / 32];
    v = warp_sum_double(v);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < NORM_THREADS / 32; w++) total += warp_sums[w];
    return total;
}

__global__ void __launch_bounds__(NORM_THREADS) sum_squares_partial_kernel(double *partial, const float *x, size_t n) {
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)NORM_THREADS + threadIdx.x; i < n; i += (size_t)NORM_BLOCKS * NORM_THREADS) {
        double xi = x[i];
        acc += xi * xi;
    }
    double total = block_sum_double(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void __launch_bounds__(NORM_THREADS) sum_squares_final_kernel(double *result, const double *partial) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < NORM_BLOCKS; i += NORM_THREADS) acc += partial[i];
    double total = block_sum_double(acc);
    if (threadIdx.x == 0) *result = total;
}

extern "C" float cuda_sum_squares(exitrl_backend *be, const float *x, size_t n) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (!n) return 0.0f;
    double *partial = (double *)cuda_scratch(ctx, SCRATCH_NORM_PARTIALS, (NORM_BLOCKS + 1) * sizeof(double));
    sum_squares_partial_kernel<<<NORM_BLOCKS, NORM_THREADS, 0, ctx->stream>>>(partial, x, n);
    CUDA_AFTER_LAUNCH(ctx, "sum_squares (partials)");
    sum_squares_final_kernel<<<1, NORM_THREADS, 0, ctx->stream>>>(partial + NORM_BLOCKS, partial);
    CUDA_AFTER_LAUNCH(ctx, "sum_squares (final)");
    double result = 0.0;
    be->download(be, &result, partial + NORM_BLOCKS, sizeof result);
    return (float)result;
}
