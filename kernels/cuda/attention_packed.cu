/* attention_forward_packed / attention_backward_packed (contract in ops.h): attention over packed
 * rows, a prefix shared by segments that each continue it. Query t of sequence b sees key s iff
 * s <= t and (s < prefix_len[b] or s >= seg_start[b*T + t]); written against the CPU reference
 * (kernels/cpu/attention.c), which uses the same visibility rule.
 *
 * One warp per (b, h, row), rows grid-strided; each lane owns the head columns d = lane + 32 j
 * (hs <= 128: j < 4) and the dot products are warp sums (a fixed butterfly). Accumulation in fp32,
 * inputs and outputs in the act dtype. Deterministic, no atomics:
 *   forward  per query row, an online softmax over its visible keys in key order; lse saved;
 *   backward D = rowsum(dO * O) (attention.cu), then per query row dq = scale * sum_s dS_ts k_s,
 *            and per key row dk = scale * sum_t dS_ts q_t, dv = sum_t P_ts dO_t over the queries
 *            that see it, in query order (a prefix key sums over every segment).
 * These are CUDA-core kernels without tiling: the GRPO update's attention is a small share of its
 * matmuls at the model sizes here. */
#include <math.h>

#include "cuda_common.cuh"

#define PACKED_MAX_HS 128
#define PACKED_COLS (PACKED_MAX_HS / 32) /* head columns per lane */
#define PACKED_THREADS 256

/* The visible keys of query t: [0, e1) and [s2, t] (e1 = s2 = t + 1 when all s <= t are). */
__device__ __forceinline__ void packed_visible(const int *prefix_len, const int *seg_start, int b, int T, int t, int *e1,
                                               int *s2) {
    const int plen = prefix_len[b], seg = seg_start[(size_t)b * T + t];
    *e1 = plen < t + 1 ? plen : t + 1;
    *s2 = seg > *e1 ? seg : *e1;
}

__device__ __forceinline__ bool packed_sees(const int *prefix_len, const int *seg_start, int b, int T, int t, int s) {
    return s <= t && (s < prefix_len[b] || s >= seg_start[(size_t)b * T + t]);
}

/* x[j] = row[lane + 32 j] (0 past hs) and the warp's dot product of two such rows. */
template <typename act_t>
__device__ __forceinline__ void load_cols(float *x, const act_t *row, int hs, int lane) {
#pragma unroll
    for (int j = 0; j < PACKED_COLS; j++) {
        int d = lane + 32 * j;
        x[j] = d < hs ? to_f32(row[d]) : 0.0f;
    }
}
__device__ __forceinline__ float dot_cols(const float *a, const float *b) {
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < PACKED_COLS; j++) s += a[j] * b[j];
    return warp_sum(s);
}

template <typename act_t>
__global__ void packed_forward_kernel(act_t *out, float *lse, const act_t *qkv, const int *prefix_len,
                                      const int *seg_start, int B, int T, int C, int NH, float scale) {
    const size_t rows = (size_t)B * NH * T, warps = (size_t)gridDim.x * blockDim.x / 32;
    const int lane = threadIdx.x % 32, hs = C / NH;
    for (size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; row < rows; row += warps) {
        const int t = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
        const act_t *base = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
        float q[PACKED_COLS], k[PACKED_COLS], v[PACKED_COLS], o[PACKED_COLS] = {0};
        load_cols(q, base + (size_t)t * 3 * C, hs, lane);
        int e1, s2;
        packed_visible(prefix_len, seg_start, b, T, t, &e1, &s2);
        float mx = -INFINITY, sum = 0.0f;
        for (int s = e1 > 0 ? 0 : s2; s <= t; s = s + 1 == e1 ? s2 : s + 1) {
            load_cols(k, base + (size_t)s * 3 * C + C, hs, lane);
            load_cols(v, base + (size_t)s * 3 * C + 2 * C, hs, lane);
            const float sc = dot_cols(q, k) * scale, m_new = fmaxf(mx, sc);
            const float corr = expf(mx - m_new), p = expf(sc - m_new);
            sum = sum * corr + p;
#pragma unroll
            for (int j = 0; j < PACKED_COLS; j++) o[j] = o[j] * corr + p * v[j];
            mx = m_new;
        }
        act_t *orow = out + ((size_t)b * T + t) * C + (size_t)h * hs;
#pragma unroll
        for (int j = 0; j < PACKED_COLS; j++) {
            int d = lane + 32 * j;
            if (d < hs) orow[d] = from_f32<act_t>(o[j] / sum);
        }
        if (lse && lane == 0) lse[((size_t)b * NH + h) * T + t] = mx + logf(sum);
    }
}

/* dq of each query row over the keys it sees. */
template <typename act_t>
__global__ void packed_dq_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse, const float *D,
                                 const int *prefix_len, const int *seg_start, int B, int T, int C, int NH,
                                 float scale) {
    const size_t rows = (size_t)B * NH * T, warps = (size_t)gridDim.x * blockDim.x / 32;
    const int lane = threadIdx.x % 32, hs = C / NH;
    for (size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; row < rows; row += warps) {
        const int t = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
        const act_t *base = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
        float q[PACKED_COLS], dO[PACKED_COLS], k[PACKED_COLS], v[PACKED_COLS], dq[PACKED_COLS] = {0};
        load_cols(q, base + (size_t)t * 3 * C, hs, lane);
        load_cols(dO, dout + ((size_t)b * T + t) * C + (size_t)h * hs, hs, lane);
        const float L = lse[((size_t)b * NH + h) * T + t], Dt = D[((size_t)b * NH + h) * T + t];
        int e1, s2;
        packed_visible(prefix_len, seg_start, b, T, t, &e1, &s2);
        for (int s = e1 > 0 ? 0 : s2; s <= t; s = s + 1 == e1 ? s2 : s + 1) {
            load_cols(k, base + (size_t)s * 3 * C + C, hs, lane);
            load_cols(v, base + (size_t)s * 3 * C + 2 * C, hs, lane);
            const float P = expf(dot_cols(q, k) * scale - L), dS = P * (dot_cols(dO, v) - Dt) * scale;
#pragma unroll
            for (int j = 0; j < PACKED_COLS; j++) dq[j] += dS * k[j];
        }
        act_t *drow = dqkv + ((size_t)b * T + t) * 3 * C + (size_t)h * hs;
#pragma unroll
        for (int j = 0; j < PACKED_COLS; j++) {
            int d = lane + 32 * j;
            if (d < hs) drow[d] = from_f32<act_t>(dq[j]);
        }
    }
}

/* dk and dv of each key row over the queries that see it. */
template <typename act_t>
__global__ void packed_dkv_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse, const float *D,
                                  const int *prefix_len, const int *seg_start, int B, int T, int C, int NH,
                                  float scale) {
    const size_t rows = (size_t)B * NH * T, warps = (size_t)gridDim.x * blockDim.x / 32;
    const int lane = threadIdx.x % 32, hs = C / NH;
    for (size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; row < rows; row += warps) {
        const int s = (int)(row % T), h = (int)(row / T % NH), b = (int)(row / T / NH);
        const act_t *base = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
        float k[PACKED_COLS], v[PACKED_COLS], q[PACKED_COLS], dO[PACKED_COLS];
        float dk[PACKED_COLS] = {0}, dv[PACKED_COLS] = {0};
        load_cols(k, base + (size_t)s * 3 * C + C, hs, lane);
        load_cols(v, base + (size_t)s * 3 * C + 2 * C, hs, lane);
        for (int t = s; t < T; t++) {
            if (!packed_sees(prefix_len, seg_start, b, T, t, s)) continue; /* the same for every lane */
            load_cols(q, base + (size_t)t * 3 * C, hs, lane);
            load_cols(dO, dout + ((size_t)b * T + t) * C + (size_t)h * hs, hs, lane);
            const size_t st = ((size_t)b * NH + h) * T + t;
            const float P = expf(dot_cols(q, k) * scale - lse[st]), dS = P * (dot_cols(dO, v) - D[st]) * scale;
#pragma unroll
            for (int j = 0; j < PACKED_COLS; j++) {
                dv[j] += P * dO[j];
                dk[j] += dS * q[j];
            }
        }
        act_t *drow = dqkv + ((size_t)b * T + s) * 3 * C + (size_t)h * hs;
#pragma unroll
        for (int j = 0; j < PACKED_COLS; j++) {
            int d = lane + 32 * j;
            if (d < hs) {
                drow[C + d] = from_f32<act_t>(dk[j]);
                drow[2 * C + d] = from_f32<act_t>(dv[j]);
            }
        }
    }
}

static int packed_check(const char *op, int B, int T, int C, int NH) {
    if (B < 1 || T < 1 || C < 1 || NH < 1 || C % NH)
        CUDA_UNSUPPORTED("%s: B=%d T=%d C=%d NH=%d (need positive sizes and C %% NH == 0)", op, B, T, C, NH);
    const int hs = C / NH;
    if (hs > PACKED_MAX_HS) CUDA_UNSUPPORTED("%s: head size %d exceeds %d", op, hs, PACKED_MAX_HS);
    return hs;
}

extern "C" void cuda_attention_forward_packed(exitrl_backend *be, void *out, float *lse, const void *qkv,
                                              const int *prefix_len, const int *seg_start, int B, int T, int C,
                                              int NH) {
    cuda_ctx *ctx = CUDA_CTX(be);
    const int hs = packed_check("attention_forward_packed", B, T, C, NH);
    const float scale = 1.0f / sqrtf((float)hs);
    const unsigned blocks = cuda_blocks_for((size_t)B * NH * T * 32, PACKED_THREADS);
    if (ctx->fp32)
        packed_forward_kernel<float><<<blocks, PACKED_THREADS, 0, ctx->stream>>>(
            (float *)out, lse, (const float *)qkv, prefix_len, seg_start, B, T, C, NH, scale);
    else
        packed_forward_kernel<bf16><<<blocks, PACKED_THREADS, 0, ctx->stream>>>(
            (bf16 *)out, lse, (const bf16 *)qkv, prefix_len, seg_start, B, T, C, NH, scale);
    CUDA_AFTER_LAUNCH(ctx, "attention_forward_packed");
}

extern "C" void cuda_attention_backward_packed(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                                               const void *out, const float *lse, const int *prefix_len,
                                               const int *seg_start, int B, int T, int C, int NH) {
    cuda_ctx *ctx = CUDA_CTX(be);
    const int hs = packed_check("attention_backward_packed", B, T, C, NH);
    const float scale = 1.0f / sqrtf((float)hs);
    const float *D = cuda_attention_rowdot(ctx, dout, out, B, T, C, NH);
    const unsigned blocks = cuda_blocks_for((size_t)B * NH * T * 32, PACKED_THREADS);
    if (ctx->fp32) {
        packed_dq_kernel<float><<<blocks, PACKED_THREADS, 0, ctx->stream>>>(
            (float *)dqkv, (const float *)dout, (const float *)qkv, lse, D, prefix_len, seg_start, B, T, C, NH, scale);
        CUDA_AFTER_LAUNCH(ctx, "attention_backward_packed (dq)");
        packed_dkv_kernel<float><<<blocks, PACKED_THREADS, 0, ctx->stream>>>(
            (float *)dqkv, (const float *)dout, (const float *)qkv, lse, D, prefix_len, seg_start, B, T, C, NH, scale);
    } else {
        packed_dq_kernel<bf16><<<blocks, PACKED_THREADS, 0, ctx->stream>>>(
            (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, D, prefix_len, seg_start, B, T, C, NH, scale);
        CUDA_AFTER_LAUNCH(ctx, "attention_backward_packed (dq)");
        packed_dkv_kernel<bf16><<<blocks, PACKED_THREADS, 0, ctx->stream>>>(
            (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, D, prefix_len, seg_start, B, T, C, NH, scale);
    }
    CUDA_AFTER_LAUNCH(ctx, "attention_backward_packed (dk, dv)");
}
