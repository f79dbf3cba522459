/* LayerNorm forward (optionally fused with the residual add) and backward; fp32 statistics.
 *
 * Forward: one warp per row, two passes over the row (mean, then the centred variance, as the CPU
 * reference does, so no cancellation from E[x^2] - E[x]^2).
 * Backward: dinp with one warp per row; dw/db deterministically, by channel: each block column
 * sums a fixed chunk of rows per channel, then one thread per channel adds the chunks in order. */
#include "cuda_common.cuh"

#define LN_EPS 1e-5f
#define LN_THREADS 256 /* 8 rows (warps) per block */
#define LN_MAX_CHUNKS 128

/* res/b_in may be NULL (plain LayerNorm of a); otherwise res = a + b_in, rounded to act_t, is
 * stored and normalised. mean/rstd may be NULL. */
template <typename act_t>
__global__ void layernorm_forward_kernel(act_t *out, float *mean, float *rstd, act_t *res, const act_t *a,
                                         const act_t *b_in, const act_t *w, const act_t *bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t off = (size_t)row * C;
    const act_t *x = a + off;
    float sum = 0.0f;
    if (res) {
        for (int c = lane; c < C; c += 32) {
            act_t r = from_f32<act_t>(to_f32(x[c]) + to_f32(b_in[off + c]));
            res[off + c] = r;
            sum += to_f32(r);
        }
        x = res + off; /* each lane re-reads only what it wrote itself */
    } else {
        for (int c = lane; c < C; c += 32) sum += to_f32(x[c]);
    }
    float m = warp_sum(sum) / C;
    float var = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = to_f32(x[c]) - m;
        var += d * d;
    }
    var = warp_sum(var) / C;
    float s = 1.0f / sqrtf(var + LN_EPS);
    for (int c = lane; c < C; c += 32)
        out[off + c] = from_f32<act_t>((to_f32(x[c]) - m) * s * to_f32(w[c]) + to_f32(bias[c]));
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = s;
    }
}

template <typename act_t>
static void layernorm_forward_launch(cuda_ctx *ctx, act_t *out, float *mean, float *rstd, act_t *res,
                                     const act_t *a, const act_t *b_in, const act_t *w, const act_t *bias,
                                     int N, int C) {
    int rows_per_block = LN_THREADS / 32;
    layernorm_forward_kernel<act_t><<<(N + rows_per_block - 1) / rows_per_block, LN_THREADS, 0, ctx->stream>>>(
        out, mean, rstd, res, a, b_in, w, bias, N, C);
    CUDA_AFTER_LAUNCH(ctx, res ? "residual_layernorm_forward" : "layernorm_forward");
}

static void check_ln_shape(const char *op, int N, int C) {
    if (N < 1 || C < 1) CUDA_UNSUPPORTED("%s: N=%d C=%d must be positive", op, N, C);
}

extern "C" void cuda_layernorm_forward(exitrl_backend *be, void *out, float *mean, float *rstd,
                                       const void *inp, const void *w, const void *b, int N, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    check_ln_shape("layernorm_forward", N, C);
    if (ctx->fp32)
        layernorm_forward_launch<float>(ctx, (float *)out, mean, rstd, NULL, (const float *)inp, NULL,
                                        (const float *)w, (const float *)b, N, C);
    else
        layernorm_forward_launch<bf16>(ctx, (bf16 *)out, mean, rstd, NULL, (const bf16 *)inp, NULL,
                                       (const bf16 *)w, (const bf16 *)b, N, C);
}

extern "C" void cuda_residual_layernorm_forward(exitrl_backend *be, void *res, void *out, float *mean,
                                                float *rstd, const void *a, const void *b_in,
                                                const void *w, const void *bias, int N, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    check_ln_shape("residual_layernorm_forward", N, C);
    if (ctx->fp32)
        layernorm_forward_launch<float>(ctx, (float *)out, mean, rstd, (float *)res, (const float *)a,
                                        (const float *)b_in, (const float *)w, (const float *)bias, N, C);
    else
        layernorm_forward_launch<bf16>(ctx, (bf16 *)out, mean, rstd, (bf16 *)res, (const bf16 *)a,
                                       (const bf16 *)b_in, (const bf16 *)w, (const bf16 *)bias, N, C);
}

/* dinp[row] += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w; one warp per row. */
template <typename act_t>
__global__ void layernorm_dinp_kernel(act_t *dinp, const act_t *dout, const act_t *inp, const act_t *w,
                                      const float *mean, const float *rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    size_t off = (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float gsum = 0.0f, gxsum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float xhat = (to_f32(inp[off + c]) - m) * s, g = to_f32(dout[off + c]) * to_f32(w[c]);
        gsum += g;
        gxsum += g * xhat;
    }
    float gmean = warp_sum(gsum) / C, gxmean = warp_sum(gxsum) / C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (to_f32(inp[off + c]) - m) * s, g = to_f32(dout[off + c]) * to_f32(w[c]);
        dinp[off + c] = from_f32<act_t>(to_f32(dinp[off + c]) + s * (g - gmean - xhat * gxmean));
    }
}

/* partial[chunk][0][c] = sum over the chunk's rows of dout * xhat, partial[chunk][1][c] = of dout. */
template <typename act_t>
__global__ void layernorm_dwdb_chunk_kernel(float *partial, const act_t *dout, const act_t *inp,
                                            const float *mean, const float *rstd, int N, int C,
                                            int rows_per_chunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C) return;
    int r0 = chunk * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
    float sw = 0.0f, sb = 0.0f;
#pragma unroll 4
    for (int r = r0; r < r1; r++) {
        size_t i = (size_t)r * C + c;
        float d = to_f32(dout[i]);
        sw += d * (to_f32(inp[i]) - mean[r]) * rstd[r];
        sb += d;
    }
    partial[((size_t)chunk * 2 + 0) * C + c] = sw;
    partial[((size_t)chunk * 2 + 1) * C + c] = sb;
}

__global__ void layernorm_dwdb_final_kernel(float *dw, float *db, const float *partial, int chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int k = 0; k < chunks; k++) {
        sw += partial[((size_t)k * 2 + 0) * C + c];
        sb += partial[((size_t)k * 2 + 1) * C + c];
    }
    dw[c] += sw;
    db[c] += sb;
}

template <typename act_t>
static void layernorm_backward_launch(cuda_ctx *ctx, act_t *dinp, float *dw, float *db, const act_t *dout,
                                      const act_t *inp, const act_t *w, const float *mean,
                                      const float *rstd, int N, int C) {
    int rows_per_block = LN_THREADS / 32;
    layernorm_dinp_kernel<act_t><<<(N + rows_per_block - 1) / rows_per_block, LN_THREADS, 0, ctx->stream>>>(
        dinp, dout, inp, w, mean, rstd, N, C);
    CUDA_AFTER_LAUNCH(ctx, "layernorm_backward (dinp)");

    /* The chunking depends on N only, so results are the same run to run on any GPU. */
    int rows_per_chunk = (N + LN_MAX_CHUNKS - 1) / LN_MAX_CHUNKS;
    if (rows_per_chunk < 16) rows_per_chunk = 16;
    int chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
    float *partial = (float *)cuda_scratch(ctx, SCRATCH_LN_PARTIALS, (size_t)chunks * 2 * C * sizeof(float));
    dim3 grid((C + 127) / 128, chunks);
    layernorm_dwdb_chunk_kernel<act_t><<<grid, 128, 0, ctx->stream>>>(partial, dout, inp, mean, rstd, N, C,
                                                                      rows_per_chunk);
    CUDA_AFTER_LAUNCH(ctx, "layernorm_backward (dw, db chunks)");
    layernorm_dwdb_final_kernel<<<(C + 127) / 128, 128, 0, ctx->stream>>>(dw, db, partial, chunks, C);
    CUDA_AFTER_LAUNCH(ctx, "layernorm_backward (dw, db)");
}

extern "C" void cuda_layernorm_backward(exitrl_backend *be, void *dinp, float *dw, float *db,
                                        const void *dout, const void *inp, const void *w,
                                        const float *mean, const float *rstd, int N, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    check_ln_shape("layernorm_backward", N, C);
    if (ctx->fp32)
        layernorm_backward_launch<float>(ctx, (float *)dinp, dw, db, (const float *)dout, (const float *)inp,
                                         (const float *)w, mean, rstd, N, C);
    else
        layernorm_backward_launch<bf16>(ctx, (bf16 *)dinp, dw, db, (const bf16 *)dout, (const bf16 *)inp,
                                        (const bf16 *)w, mean, rstd, N, C);
}
