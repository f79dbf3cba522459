/* Causal multi-head attention, flash-attention style (Dao et al. 2022; FlashAttention-2's backward
 * split): tiles of queries and keys in shared memory, an online softmax in fp32, and nothing of
 * size T x T in global memory. Contract in ops.h; lse[b, h, t] = log sum_{s <= t} exp(q_t.k_s /
 * sqrt(hs)), natural log.
 *
 * Layout: qkv[B, T, 3C] = q | k | v, head h of q at columns [h*hs, (h+1)*hs).
 * Work split: a block owns BR query rows (or BC key rows in the dK/dV kernel) of one (b, h);
 * TPR consecutive threads (lanes of one warp) share one row: each computes 1/TPR of the row's
 * scores and owns hs/TPR of its output columns (d = sub + TPR*k). Tiles live in shared memory as
 * fp32, rows padded by one float so the strided reads hit distinct banks.
 *
 * Backward, deterministic (no atomics): D = rowsum(dO * O) first (attention.cu, shared with the
 * tensor-core kernels); then one kernel per key tile accumulates dK and dV over query tiles, and
 * one kernel per query tile accumulates dQ over key tiles. Each recomputes P = exp(S - lse); this
 * costs 7 tile products instead of FlashAttention-2's 5, in exchange for no fp32 atomics and
 * run-to-run identical gradients.
 *
 * Supported head sizes: 16, 32, 64, 128 (the kernels are unrolled per size); attention.cu checks
 * the shape and reports others as a clear error. The kernels use CUDA cores (fp32 FMA): they run
 * the fp32 parity mode, and bf16 only with EXITRL_ATTENTION=simt; bf16 attention otherwise runs on
 * tensor cores (attention_mma.cu) or cuDNN (attention_cudnn.cu). attention.cu's attention_choose
 * picks among them. */
#include <math.h>

#include "cuda_common.cuh"

#define ATT_TPR 8 /* threads per row: a power of two dividing 32 */

/* Tile sizes per head size: BR = BC = 64 rows, 32 for hs = 128 so shared memory stays below
 * 100 KB per block (two blocks per SM on H100, and within A100's opt-in limit). */
template <int HS> struct att_tile { static constexpr int R = HS >= 128 ? 32 : 64; };

/* Padded row strides (floats). Q/K/V/dO tiles: HS + 1. Score tiles: BC + 8 in the forward and
 * the dQ kernel (rows r, r+1.. of a warp start 8 banks apart), BC + 4 in the dK/dV kernel. */
template <int HS> __host__ __device__ constexpr int att_ld() { return HS + 1; }

template <int HS> __host__ __device__ constexpr size_t att_fwd_smem_floats() {
    return (size_t)3 * att_tile<HS>::R * att_ld<HS>() + (size_t)att_tile<HS>::R * (att_tile<HS>::R + 8);
}
template <int HS> __host__ __device__ constexpr size_t att_dkv_smem_floats() {
    return (size_t)4 * att_tile<HS>::R * att_ld<HS>() + (size_t)2 * att_tile<HS>::R * (att_tile<HS>::R + 4) +
           2 * att_tile<HS>::R;
}
template <int HS> __host__ __device__ constexpr size_t att_dq_smem_floats() {
    return (size_t)4 * att_tile<HS>::R * att_ld<HS>() + (size_t)att_tile<HS>::R * (att_tile<HS>::R + 8);
}

/* Copies rows [row0, row0 + rows) of one head of q, k or v (column offset col) into a padded fp32
 * tile; rows at or past T are zero. All threads of the block take part. */
template <typename act_t, int HS>
__device__ __forceinline__ void load_tile(float *tile, const act_t *base, size_t row_stride, int row0, int rows,
                                          int T) {
    for (int idx = threadIdx.x; idx < rows * HS; idx += blockDim.x) {
        int r = idx / HS, d = idx % HS, t = row0 + r;
        tile[r * att_ld<HS>() + d] = t < T ? to_f32(base[(size_t)t * row_stride + d]) : 0.0f;
    }
}

/* Sum / max over the TPR lanes sharing a row (aligned groups within a warp). */
__device__ __forceinline__ float group_sum(float v) {
    for (int o = ATT_TPR / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float group_max(float v) {
    for (int o = ATT_TPR / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <int HS> __device__ __forceinline__ float dot_rows(const float *a, const float *b) {
    float s = 0.0f;
#pragma unroll 16
    for (int d = 0; d < HS; d++) s += a[d] * b[d];
    return s;
}

/* ---- forward ---- */

template <typename act_t, int HS>
__global__ void __launch_bounds__(att_tile<HS>::R * ATT_TPR)
flash_forward_kernel(act_t *out, float *lse, const act_t *qkv, int T, int C, int NH, float scale) {
    constexpr int BR = att_tile<HS>::R, BC = att_tile<HS>::R, LD = att_ld<HS>(), PLD = BC + 8;
    constexpr int KEYS = BC / ATT_TPR, DIMS = HS / ATT_TPR;
    extern __shared__ float smem[];
    float *Qs = smem, *Ks = Qs + BR * LD, *Vs = Ks + BC * LD, *Ps = Vs + BC * LD;

    int q0 = blockIdx.x * BR, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    size_t row_stride = (size_t)3 * C;
    const act_t *qbase = qkv + (size_t)b * T * row_stride + h * HS;
    int r = threadIdx.x / ATT_TPR, sub = threadIdx.x % ATT_TPR, i = q0 + r;

    load_tile<act_t, HS>(Qs, qbase, row_stride, q0, BR, T);
    float m_i = -INFINITY, l_i = 0.0f, acc[DIMS];
#pragma unroll
    for (int k = 0; k < DIMS; k++) acc[k] = 0.0f;

    int q_last = min(q0 + BR, T) - 1;
    for (int k0 = 0; k0 <= q_last; k0 += BC) {
        __syncthreads(); /* the previous tile is consumed (and Qs is loaded, the first time) */
        load_tile<act_t, HS>(Ks, qbase + C, row_stride, k0, BC, T);
        load_tile<act_t, HS>(Vs, qbase + 2 * C, row_stride, k0, BC, T);
        __syncthreads();

        float s[KEYS], tile_max = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < KEYS; jj++) {
            int jl = sub + jj * ATT_TPR, j = k0 + jl;
            float v = dot_rows<HS>(&Qs[r * LD], &Ks[jl * LD]) * scale;
            s[jj] = (j <= i && j < T) ? v : -INFINITY;
            tile_max = fmaxf(tile_max, s[jj]);
        }
        tile_max = group_max(tile_max);
        /* Key 0 is in the first tile and visible to every row, so m_new is finite from there on. */
        float m_new = fmaxf(m_i, tile_max);
        float alpha = __expf(m_i - m_new); /* 0 on the first tile (m_i = -inf) */
        float row_sum = 0.0f;
#pragma unroll
        for (int jj = 0; jj < KEYS; jj++) {
            float p = s[jj] == -INFINITY ? 0.0f : __expf(s[jj] - m_new);
            Ps[r * PLD + sub + jj * ATT_TPR] = p;
            row_sum += p;
        }
        row_sum = group_sum(row_sum);
        l_i = l_i * alpha + row_sum;
        m_i = m_new;
        __syncwarp(); /* a row's P entries come from the lanes of one warp */
#pragma unroll
        for (int k = 0; k < DIMS; k++) acc[k] *= alpha;
        int jl_end = min(BC, i - k0 + 1); /* keys past the diagonal have p = 0 */
        for (int jl = 0; jl < jl_end; jl++) {
            float p = Ps[r * PLD + jl];
#pragma unroll
            for (int k = 0; k < DIMS; k++) acc[k] += p * Vs[jl * LD + sub + k * ATT_TPR];
        }
    }
    if (i < T) {
        float inv = 1.0f / l_i;
        act_t *o = out + ((size_t)b * T + i) * C + h * HS;
#pragma unroll
        for (int k = 0; k < DIMS; k++) o[sub + k * ATT_TPR] = from_f32<act_t>(acc[k] * inv);
        if (lse && sub == 0) lse[(size_t)bh * T + i] = m_i + logf(l_i);
    }
}

/* ---- backward ---- */

/* dK, dV for BC keys of one (b, h), summed over the query tiles at or after them. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(att_tile<HS>::R * ATT_TPR)
flash_backward_dkv_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse, const float *D, int T,
                          int C, int NH, float scale) {
    constexpr int BR = att_tile<HS>::R, BC = att_tile<HS>::R, LD = att_ld<HS>(), PLD = BC + 4;
    constexpr int QROWS = BR / ATT_TPR, DIMS = HS / ATT_TPR;
    extern __shared__ float smem[];
    float *Ks = smem, *Vs = Ks + BC * LD, *Qs = Vs + BC * LD, *dOs = Qs + BR * LD;
    float *Ps = dOs + BR * LD, *dSs = Ps + BR * PLD, *lse_s = dSs + BR * PLD, *D_s = lse_s + BR;

    int k0 = blockIdx.x * BC, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    size_t row_stride = (size_t)3 * C;
    const act_t *qbase = qkv + (size_t)b * T * row_stride + h * HS;
    const act_t *dobase = dout + (size_t)b * T * C + h * HS;
    int jl = threadIdx.x / ATT_TPR, sub = threadIdx.x % ATT_TPR, j = k0 + jl;

    load_tile<act_t, HS>(Ks, qbase + C, row_stride, k0, BC, T);
    load_tile<act_t, HS>(Vs, qbase + 2 * C, row_stride, k0, BC, T);
    float dk[DIMS], dv[DIMS];
#pragma unroll
    for (int k = 0; k < DIMS; k++) dk[k] = dv[k] = 0.0f;

    for (int q0 = (k0 / BR) * BR; q0 < T; q0 += BR) {
        __syncthreads(); /* the previous query tile is consumed (K, V are loaded, the first time) */
        load_tile<act_t, HS>(Qs, qbase, row_stride, q0, BR, T);
        load_tile<act_t, HS>(dOs, dobase, C, q0, BR, T);
        for (int r = threadIdx.x; r < BR; r += blockDim.x) {
            int i = q0 + r;
            lse_s[r] = i < T ? lse[(size_t)bh * T + i] : 0.0f;
            D_s[r] = i < T ? D[(size_t)bh * T + i] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int mm = 0; mm < QROWS; mm++) {
            int il = sub + mm * ATT_TPR, i = q0 + il;
            float p = 0.0f, ds = 0.0f;
            if (j <= i && i < T) { /* j <= i < T also means j < T */
                p = __expf(dot_rows<HS>(&Qs[il * LD], &Ks[jl * LD]) * scale - lse_s[il]);
                ds = p * (dot_rows<HS>(&dOs[il * LD], &Vs[jl * LD]) - D_s[il]);
            }
            Ps[il * PLD + jl] = p;
            dSs[il * PLD + jl] = ds;
        }
        __syncthreads();
        for (int il = 0; il < BR; il++) {
            float p = Ps[il * PLD + jl], ds = dSs[il * PLD + jl];
#pragma unroll
            for (int k = 0; k < DIMS; k++) {
                int d = sub + k * ATT_TPR;
                dv[k] += p * dOs[il * LD + d];
                dk[k] += ds * Qs[il * LD + d];
            }
        }
    }
    if (j < T) {
        act_t *dkrow = dqkv + ((size_t)b * T + j) * row_stride + C + h * HS;
#pragma unroll
        for (int k = 0; k < DIMS; k++) {
            dkrow[sub + k * ATT_TPR] = from_f32<act_t>(dk[k] * scale);
            dkrow[C + sub + k * ATT_TPR] = from_f32<act_t>(dv[k]);
        }
    }
}

/* dQ for BR queries of one (b, h), summed over the key tiles at or before them. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(att_tile<HS>::R * ATT_TPR)
flash_backward_dq_kernel(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse, const float *D, int T,
                         int C, int NH, float scale) {
    constexpr int BR = att_tile<HS>::R, BC = att_tile<HS>::R, LD = att_ld<HS>(), PLD = BC + 8;
    constexpr int KEYS = BC / ATT_TPR, DIMS = HS / ATT_TPR;
    extern __shared__ float smem[];
    float *Qs = smem, *dOs = Qs + BR * LD, *Ks = dOs + BR * LD, *Vs = Ks + BC * LD, *dSs = Vs + BC * LD;

    int q0 = blockIdx.x * BR, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    size_t row_stride = (size_t)3 * C;
    const act_t *qbase = qkv + (size_t)b * T * row_stride + h * HS;
    int r = threadIdx.x / ATT_TPR, sub = threadIdx.x % ATT_TPR, i = q0 + r;

    load_tile<act_t, HS>(Qs, qbase, row_stride, q0, BR, T);
    load_tile<act_t, HS>(dOs, dout + (size_t)b * T * C + h * HS, C, q0, BR, T);
    float lse_i = i < T ? lse[(size_t)bh * T + i] : 0.0f, D_i = i < T ? D[(size_t)bh * T + i] : 0.0f;
    float dq[DIMS];
#pragma unroll
    for (int k = 0; k < DIMS; k++) dq[k] = 0.0f;

    int q_last = min(q0 + BR, T) - 1;
    for (int k0 = 0; k0 <= q_last; k0 += BC) {
        __syncthreads();
        load_tile<act_t, HS>(Ks, qbase + C, row_stride, k0, BC, T);
        load_tile<act_t, HS>(Vs, qbase + 2 * C, row_stride, k0, BC, T);
        __syncthreads();
#pragma unroll
        for (int jj = 0; jj < KEYS; jj++) {
            int jl = sub + jj * ATT_TPR, j = k0 + jl;
            float ds = 0.0f;
            if (j <= i && i < T) {
                float p = __expf(dot_rows<HS>(&Qs[r * LD], &Ks[jl * LD]) * scale - lse_i);
                ds = p * (dot_rows<HS>(&dOs[r * LD], &Vs[jl * LD]) - D_i);
            }
            dSs[r * PLD + jl] = ds;
        }
        __syncwarp();
        int jl_end = min(BC, i - k0 + 1);
        for (int jl = 0; jl < jl_end; jl++) {
            float ds = dSs[r * PLD + jl];
#pragma unroll
            for (int k = 0; k < DIMS; k++) dq[k] += ds * Ks[jl * LD + sub + k * ATT_TPR];
        }
    }
    if (i < T) {
        act_t *dqrow = dqkv + ((size_t)b * T + i) * row_stride + h * HS;
#pragma unroll
        for (int k = 0; k < DIMS; k++) dqrow[sub + k * ATT_TPR] = from_f32<act_t>(dq[k] * scale);
    }
}

/* ---- launch ---- */

template <typename act_t, int HS>
static void flash_forward_launch(cuda_ctx *ctx, act_t *out, float *lse, const act_t *qkv, int B, int T, int C, int NH) {
    constexpr int R = att_tile<HS>::R;
    size_t smem = att_fwd_smem_floats<HS>() * sizeof(float);
    static bool configured = false;
    attention_smem_opt_in(ctx, flash_forward_kernel<act_t, HS>, smem, "attention_forward", HS, &configured);
    dim3 grid((T + R - 1) / R, B * NH);
    flash_forward_kernel<act_t, HS><<<grid, R * ATT_TPR, smem, ctx->stream>>>(out, lse, qkv, T, C, NH,
                                                                              1.0f / sqrtf((float)HS));
    CUDA_AFTER_LAUNCH(ctx, "attention_forward");
}

template <typename act_t, int HS>
static void flash_backward_launch(cuda_ctx *ctx, act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse,
                                  const float *D, int B, int T, int C, int NH) {
    constexpr int R = att_tile<HS>::R;
    float scale = 1.0f / sqrtf((float)HS);
    dim3 grid((T + R - 1) / R, B * NH);
    size_t smem_dkv = att_dkv_smem_floats<HS>() * sizeof(float);
    static bool configured_dkv = false, configured_dq = false;
    attention_smem_opt_in(ctx, flash_backward_dkv_kernel<act_t, HS>, smem_dkv, "attention_backward", HS,
                          &configured_dkv);
    flash_backward_dkv_kernel<act_t, HS><<<grid, R * ATT_TPR, smem_dkv, ctx->stream>>>(dqkv, dout, qkv, lse, D, T, C,
                                                                                       NH, scale);
    CUDA_AFTER_LAUNCH(ctx, "attention_backward (dk, dv)");
    size_t smem_dq = att_dq_smem_floats<HS>() * sizeof(float);
    attention_smem_opt_in(ctx, flash_backward_dq_kernel<act_t, HS>, smem_dq, "attention_backward", HS, &configured_dq);
    flash_backward_dq_kernel<act_t, HS><<<grid, R * ATT_TPR, smem_dq, ctx->stream>>>(dqkv, dout, qkv, lse, D, T, C,
                                                                                     NH, scale);
    CUDA_AFTER_LAUNCH(ctx, "attention_backward (dq)");
}

template <typename act_t>
static void attention_forward_typed(cuda_ctx *ctx, act_t *out, float *lse, const act_t *qkv, int B, int T, int C,
                                    int NH, int hs) {
    switch (hs) {
    case 16: flash_forward_launch<act_t, 16>(ctx, out, lse, qkv, B, T, C, NH); break;
    case 32: flash_forward_launch<act_t, 32>(ctx, out, lse, qkv, B, T, C, NH); break;
    case 64: flash_forward_launch<act_t, 64>(ctx, out, lse, qkv, B, T, C, NH); break;
    default: flash_forward_launch<act_t, 128>(ctx, out, lse, qkv, B, T, C, NH); break;
    }
}

template <typename act_t>
static void attention_backward_typed(cuda_ctx *ctx, act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse,
                                     const float *D, int B, int T, int C, int NH, int hs) {
    switch (hs) {
    case 16: flash_backward_launch<act_t, 16>(ctx, dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    case 32: flash_backward_launch<act_t, 32>(ctx, dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    case 64: flash_backward_launch<act_t, 64>(ctx, dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    default: flash_backward_launch<act_t, 128>(ctx, dqkv, dout, qkv, lse, D, B, T, C, NH); break;
    }
}

/* The entry points attention.cu calls: act dtype fp32 in the fp32 parity mode, else bf16. */
extern "C" void cuda_attention_simt_forward(cuda_ctx *ctx, void *out, float *lse, const void *qkv, int B, int T, int C,
                                            int NH, int hs) {
    if (ctx->fp32)
        attention_forward_typed<float>(ctx, (float *)out, lse, (const float *)qkv, B, T, C, NH, hs);
    else
        attention_forward_typed<bf16>(ctx, (bf16 *)out, lse, (const bf16 *)qkv, B, T, C, NH, hs);
}

extern "C" void cuda_attention_simt_backward(cuda_ctx *ctx, void *dqkv, const void *dout, const void *qkv,
                                             const float *lse, const float *D, int B, int T, int C, int NH, int hs) {
    if (ctx->fp32)
        attention_backward_typed<float>(ctx, (float *)dqkv, (const float *)dout, (const float *)qkv, lse, D, B, T, C,
                                        NH, hs);
    else
        attention_backward_typed<bf16>(ctx, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, D, B, T, C, NH,
                                       hs);
}
