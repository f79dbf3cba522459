/* Causal attention on tensor cores, the default bf16 path of attention_forward/backward (contract in
 * ops.h; attention.cu chooses the implementation; attention_simt.cu keeps the CUDA-core kernels for
 * the fp32 parity mode and for EXITRL_ATTENTION=simt).
 * FlashAttention-2's work split (Dao 2023) with warp-level mma.sync m16n8k16 (bf16 inputs, fp32
 * accumulators, PTX ISA "Matrix fragments for mma.m16n8k16"):
 *   forward:  a block owns 64 query rows of one (b, h), 16 per warp; it walks the key tiles up to
 *             its last row: S = Q K^T, an online softmax on the accumulators (base 2, fp32), then
 *             O += P V with P taken straight from the S accumulators as bf16 A fragments.
 *   backward: deterministic, no atomics, as attention_simt.cu: D = rowsum(dO * O) (attention.cu),
 *             then one kernel per 64-key tile accumulates dK, dV over the query tiles at or after
 *             it, and one kernel per 64-query tile accumulates dQ over the key tiles at or before
 *             it; each recomputes P = exp(S - lse).
 * Tiles are staged in shared memory as bf16. An operand read along its rows ("row" A, "col" B) is
 * stored [rows][HS] with rows padded by 8 elements (16 bytes), so the 8 rows a fragment load
 * touches begin in 8 different groups of 4 banks (no conflicts); an operand read along its
 * columns (V in P V, Q and dO in the backward's second products, K in dQ) is stored transposed,
 * [HS][64], padded likewise.
 * Rounding: P and dS are rounded to bf16 for their products (as cuDNN and FlashAttention do); the
 * softmax statistics, lse and all accumulations are fp32.
 * Head sizes 16, 32, 64, 128 (multiples of 16: the mma's k). */
#include <math.h>

#include "cuda_common.cuh"

#define MMA_WARPS 4
#define MMA_THREADS (MMA_WARPS * 32)
#define MMA_TILE 64 /* rows of every tile: 16 per warp, and the inner (key or query) tile */
#define MMA_LDT (MMA_TILE + 8) /* stride (elements) of a transposed [HS][64] tile */
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

template <int HS> __host__ __device__ constexpr int mma_ld() { return HS + 8; } /* [64][HS] tile stride */

/* ---- fragments (g = lane / 4, t = lane % 4; two bf16 per 32-bit register, lower index in the
 * low half). A (16 x 16, row-major): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..),
 * a[3] = (g+8, 2t+8..). B (16 x 8, k x n): b[0] = (k 2t..2t+1, n g), b[1] = (k 2t+8.., n g).
 * C (16 x 8, fp32): c[0], c[1] = (g, 2t), (g, 2t+1); c[2], c[3] = (g+8, 2t), (g+8, 2t+1). ---- */

#ifndef CUDASIM /* the simulator (tools/cudasim) brings an emulation of the instruction */
/* d += a b for one 16 x 8 x 16 tile (sm_80 and newer). */
__device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

__device__ __forceinline__ uint32_t ld_pair(const bf16 *p) { return *(const uint32_t *)p; }

/* A fragment of rows [m0, m0+16) and columns [k0, k0+16) of a row-major tile. */
__device__ __forceinline__ void load_a(uint32_t a[4], const bf16 *tile, int ld, int m0, int k0, int g, int t) {
    const bf16 *p = tile + (m0 + g) * ld + k0 + 2 * t;
    a[0] = ld_pair(p);
    a[1] = ld_pair(p + 8 * ld);
    a[2] = ld_pair(p + 8);
    a[3] = ld_pair(p + 8 * ld + 8);
}

/* B fragment of a tile stored n-major ([n][k]): columns n0..n0+8, k rows k0..k0+16. */
__device__ __forceinline__ void load_b(uint32_t b[2], const bf16 *tile, int ld, int n0, int k0, int g, int t) {
    const bf16 *p = tile + (n0 + g) * ld + k0 + 2 * t;
    b[0] = ld_pair(p);
    b[1] = ld_pair(p + 8);
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}

/* The A fragment of k-step kk (16 columns) from the accumulators of n-tiles 2kk and 2kk+1: the C
 * layout of two neighbouring 8-column tiles is the A layout of their 16 columns. */
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float lo[4], const float hi[4]) {
    a[0] = pack_bf16(lo[0], lo[1]);
    a[1] = pack_bf16(lo[2], lo[3]);
    a[2] = pack_bf16(hi[0], hi[1]);
    a[3] = pack_bf16(hi[2], hi[3]);
}

template <int N> __device__ __forceinline__ void zero_acc(float (*acc)[4]) {
#pragma unroll
    for (int nt = 0; nt < N; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
}

/* Sum / max over the 4 lanes that share a row of a C fragment. */
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

/* ---- tiles: rows [row0, row0 + 64) of one head (columns [0, HS) from base), zero past T, into a
 * [64][HS] tile `rows` and/or a transposed [HS][64] tile `cols` (either may be NULL); each global
 * element is read once even when both are wanted. ---- */
template <int HS>
__device__ __forceinline__ void stage(bf16 *rows, bf16 *cols, const bf16 *base, size_t row_stride, int row0, int T) {
    constexpr int PAIRS = HS / 2;
    for (int idx = threadIdx.x; idx < MMA_TILE * PAIRS; idx += MMA_THREADS) {
        int r = idx / PAIRS, c = 2 * (idx % PAIRS), t = row0 + r;
        uint32_t v = t < T ? ld_pair(base + (size_t)t * row_stride + c) : 0u;
        if (rows) *(uint32_t *)(rows + r * mma_ld<HS>() + c) = v;
        if (cols) {
            cols[c * MMA_LDT + r] = __ushort_as_bfloat16((unsigned short)(v & 0xffffu));
            cols[(c + 1) * MMA_LDT + r] = __ushort_as_bfloat16((unsigned short)(v >> 16));
        }
    }
}

/* acc[nt] (16 rows x 8 columns each, NT tiles) = A (rows m0.. of a [64][HS] tile) B^T, B the
 * n-major [64][HS] tile: the product of 16 rows with 8 * NT rows of B over HS. */
template <int HS, int NT>
__device__ __forceinline__ void rows_times_rows(float (*acc)[4], const bf16 *A, const bf16 *B, int m0, int g, int t) {
    zero_acc<NT>(acc);
#pragma unroll
    for (int k0 = 0; k0 < HS; k0 += 16) {
        uint32_t a[4];
        load_a(a, A, mma_ld<HS>(), m0, k0, g, t);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            uint32_t b[2];
            load_b(b, B, mma_ld<HS>(), nt * 8, k0, g, t);
            mma_bf16_16816(acc[nt], a, b);
        }
    }
}

/* out[nt] (16 x HS) += P (16 x 64, the accumulators p) times the 64 x HS operand stored transposed
 * in Bt ([HS][64]). */
template <int HS>
__device__ __forceinline__ void acc_times_cols(float (*out)[4], const float (*p)[4], const bf16 *Bt, int g, int t) {
#pragma unroll
    for (int kk = 0; kk < MMA_TILE / 16; kk++) {
        uint32_t a[4];
        acc_to_a(a, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
        for (int nt = 0; nt < HS / 8; nt++) {
            uint32_t b[2];
            load_b(b, Bt, MMA_LDT, nt * 8, kk * 16, g, t);
            mma_bf16_16816(out[nt], a, b);
        }
    }
}

template <int HS> __host__ __device__ constexpr size_t mma_fwd_smem() {
    return sizeof(bf16) * ((size_t)2 * MMA_TILE * mma_ld<HS>() + (size_t)HS * MMA_LDT);
}
template <int HS> __host__ __device__ constexpr size_t mma_dq_smem() {
    return sizeof(bf16) * ((size_t)4 * MMA_TILE * mma_ld<HS>() + (size_t)HS * MMA_LDT);
}
template <int HS> __host__ __device__ constexpr size_t mma_dkv_smem() {
    return sizeof(bf16) * ((size_t)4 * MMA_TILE * mma_ld<HS>() + (size_t)2 * HS * MMA_LDT) +
           sizeof(float) * 2 * MMA_TILE;
}

/* ---- forward ---- */

template <int HS>
__global__ void __launch_bounds__(MMA_THREADS)
mma_forward_kernel(bf16 *out, float *lse, const bf16 *qkv, int T, int C, int NH, float scale_log2) {
    constexpr int LD = mma_ld<HS>(), NS = MMA_TILE / 8, NO = HS / 8;
    extern __shared__ float smem[];
    bf16 *Qs = (bf16 *)smem, *Ks = Qs + MMA_TILE * LD, *Vt = Ks + MMA_TILE * LD;

    int q0 = blockIdx.x * MMA_TILE, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    size_t row_stride = (size_t)3 * C;
    const bf16 *base = qkv + (size_t)b * T * row_stride + h * HS;
    int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8}; /* rows of c[0..1] and c[2..3] */

    stage<HS>(Qs, NULL, base, row_stride, q0, T);
    float o[NO][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    zero_acc<NO>(o);

    int q_last = min(q0 + MMA_TILE, T) - 1;
    for (int k0 = 0; k0 <= q_last; k0 += MMA_TILE) {
        __syncthreads(); /* the previous tile is consumed (and Qs is staged, the first time) */
        stage<HS>(Ks, NULL, base + C, row_stride, k0, T);
        stage<HS>(NULL, Vt, base + 2 * C, row_stride, k0, T);
        __syncthreads();

        float s[NS][4];
        rows_times_rows<HS, NS>(s, Qs, Ks, warp * 16, g, t);

        /* Scores in base 2, masked: key j visible to row i when j <= i (and j < T, implied for
         * rows < T; rows past T are never written). Key k0 <= i is visible to every row of the
         * block, so each row's max is finite from the first tile on. */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = k0 + nt * 8 + 2 * t + (e & 1), i = row[e >> 1];
                float v = (j <= i && j < T) ? s[nt][e] * scale_log2 : -INFINITY;
                s[nt][e] = v;
                mx[e >> 1] = fmaxf(mx[e >> 1], v);
            }
        float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float m_new = fmaxf(m[r], quad_max(mx[r]));
            alpha[r] = exp2f(m[r] - m_new); /* 0 on the first tile (m = -inf) */
            m[r] = m_new;
        }
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = s[nt][e] == -INFINITY ? 0.0f : exp2f(s[nt][e] - m[e >> 1]);
                s[nt][e] = p;
                sum[e >> 1] += p;
            }
#pragma unroll
        for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + quad_sum(sum[r]);
#pragma unroll
        for (int nt = 0; nt < NO; nt++) {
            o[nt][0] *= alpha[0];
            o[nt][1] *= alpha[0];
            o[nt][2] *= alpha[1];
            o[nt][3] *= alpha[1];
        }
        acc_times_cols<HS>(o, s, Vt, g, t);
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = row[r];
        if (i >= T) continue;
        float inv = 1.0f / l[r];
        bf16 *orow = out + ((size_t)b * T + i) * C + h * HS + 2 * t;
#pragma unroll
        for (int nt = 0; nt < NO; nt++)
            *(uint32_t *)(orow + nt * 8) = pack_bf16(o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
        if (lse && t == 0) lse[(size_t)bh * T + i] = (m[r] + log2f(l[r])) * LN2;
    }
}

/* ---- backward ---- */

/* dQ for 64 queries of one (b, h): dQ = scale * dS K over the key tiles at or before them, with
 * dS = P * (dO V^T - D) and P = exp(S - lse). */
template <int HS>
__global__ void __launch_bounds__(MMA_THREADS)
mma_backward_dq_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse, const float *D, int T, int C,
                       int NH, float scale, float scale_log2) {
    constexpr int LD = mma_ld<HS>(), NS = MMA_TILE / 8, NO = HS / 8;
    extern __shared__ float smem[];
    bf16 *Qs = (bf16 *)smem, *dOs = Qs + MMA_TILE * LD, *Ks = dOs + MMA_TILE * LD, *Vs = Ks + MMA_TILE * LD;
    bf16 *Kt = Vs + MMA_TILE * LD;

    int q0 = blockIdx.x * MMA_TILE, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    size_t row_stride = (size_t)3 * C;
    const bf16 *base = qkv + (size_t)b * T * row_stride + h * HS;
    int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    float lse2[2], Drow[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        lse2[r] = row[r] < T ? lse[(size_t)bh * T + row[r]] * LOG2E : 0.0f;
        Drow[r] = row[r] < T ? D[(size_t)bh * T + row[r]] : 0.0f;
    }

    stage<HS>(Qs, NULL, base, row_stride, q0, T);
    stage<HS>(dOs, NULL, dout + (size_t)b * T * C + h * HS, C, q0, T);
    float dq[NO][4];
    zero_acc<NO>(dq);

    int q_last = min(q0 + MMA_TILE, T) - 1;
    for (int k0 = 0; k0 <= q_last; k0 += MMA_TILE) {
        __syncthreads();
        stage<HS>(Ks, Kt, base + C, row_stride, k0, T);
        stage<HS>(Vs, NULL, base + 2 * C, row_stride, k0, T);
        __syncthreads();

        float s[NS][4], dp[NS][4];
        rows_times_rows<HS, NS>(s, Qs, Ks, warp * 16, g, t);
        rows_times_rows<HS, NS>(dp, dOs, Vs, warp * 16, g, t);
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = k0 + nt * 8 + 2 * t + (e & 1), r = e >> 1, i = row[r];
                float p = (j <= i && i < T) ? exp2f(s[nt][e] * scale_log2 - lse2[r]) : 0.0f;
                s[nt][e] = p * (dp[nt][e] - Drow[r]); /* dS */
            }
        acc_times_cols<HS>(dq, s, Kt, g, t);
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = row[r];
        if (i >= T) continue;
        bf16 *dqrow = dqkv + ((size_t)b * T + i) * row_stride + h * HS + 2 * t;
#pragma unroll
        for (int nt = 0; nt < NO; nt++)
            *(uint32_t *)(dqrow + nt * 8) = pack_bf16(dq[nt][2 * r] * scale, dq[nt][2 * r + 1] * scale);
    }
}

/* dK, dV for 64 keys of one (b, h), over the query tiles at or after them, in transposed form (a
 * warp's 16 rows are keys): S^T = K Q^T, P^T = exp(S^T - lse), dV += P^T dO, dP^T = V dO^T,
 * dS^T = P^T * (dP^T - D), dK += scale * dS^T Q. */
template <int HS>
__global__ void __launch_bounds__(MMA_THREADS)
mma_backward_dkv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse, const float *D, int T,
                        int C, int NH, float scale, float scale_log2) {
    constexpr int LD = mma_ld<HS>(), NS = MMA_TILE / 8, NO = HS / 8;
    extern __shared__ float smem[];
    bf16 *Ks = (bf16 *)smem, *Vs = Ks + MMA_TILE * LD, *Qs = Vs + MMA_TILE * LD, *dOs = Qs + MMA_TILE * LD;
    bf16 *Qt = dOs + MMA_TILE * LD, *dOt = Qt + HS * MMA_LDT;
    float *lse2_s = (float *)(dOt + HS * MMA_LDT), *D_s = lse2_s + MMA_TILE;

    int k0 = blockIdx.x * MMA_TILE, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    size_t row_stride = (size_t)3 * C;
    const bf16 *base = qkv + (size_t)b * T * row_stride + h * HS;
    const bf16 *dobase = dout + (size_t)b * T * C + h * HS;
    int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8}; /* keys of c[0..1] and c[2..3] */

    stage<HS>(Ks, NULL, base + C, row_stride, k0, T);
    stage<HS>(Vs, NULL, base + 2 * C, row_stride, k0, T);
    float dk[NO][4], dv[NO][4];
    zero_acc<NO>(dk);
    zero_acc<NO>(dv);

    for (int q0 = k0; q0 < T; q0 += MMA_TILE) { /* tiles are aligned: k0 is a query-tile start */
        __syncthreads(); /* the previous query tile is consumed (K, V are staged, the first time) */
        stage<HS>(Qs, Qt, base, row_stride, q0, T);
        stage<HS>(dOs, dOt, dobase, C, q0, T);
        for (int r = threadIdx.x; r < MMA_TILE; r += MMA_THREADS) {
            int i = q0 + r;
            lse2_s[r] = i < T ? lse[(size_t)bh * T + i] * LOG2E : 0.0f;
            D_s[r] = i < T ? D[(size_t)bh * T + i] : 0.0f;
        }
        __syncthreads();

        float s[NS][4], dp[NS][4]; /* rows: this warp's 16 keys; columns: the tile's 64 queries */
        rows_times_rows<HS, NS>(s, Ks, Qs, warp * 16, g, t);
        rows_times_rows<HS, NS>(dp, Vs, dOs, warp * 16, g, t);
#pragma unroll
        for (int nt = 0; nt < NS; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int il = nt * 8 + 2 * t + (e & 1), i = q0 + il, j = key[e >> 1];
                float p = (j <= i && i < T) ? exp2f(s[nt][e] * scale_log2 - lse2_s[il]) : 0.0f;
                s[nt][e] = p;
                dp[nt][e] = p * (dp[nt][e] - D_s[il]); /* dS^T */
            }
        acc_times_cols<HS>(dv, s, dOt, g, t);
        acc_times_cols<HS>(dk, dp, Qt, g, t);
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        int j = key[r];
        if (j >= T) continue;
        bf16 *dkrow = dqkv + ((size_t)b * T + j) * row_stride + C + h * HS + 2 * t;
#pragma unroll
        for (int nt = 0; nt < NO; nt++) {
            *(uint32_t *)(dkrow + nt * 8) = pack_bf16(dk[nt][2 * r] * scale, dk[nt][2 * r + 1] * scale);
            *(uint32_t *)(dkrow + C + nt * 8) = pack_bf16(dv[nt][2 * r], dv[nt][2 * r + 1]);
        }
    }
}

/* ---- launch ---- */

template <int HS>
static void mma_forward_launch(cuda_ctx *ctx, bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH) {
    static bool configured = false;
    attention_smem_opt_in(ctx, mma_forward_kernel<HS>, mma_fwd_smem<HS>(), "attention_forward", HS, &configured);
    dim3 grid((T + MMA_TILE - 1) / MMA_TILE, B * NH);
    mma_forward_kernel<HS><<<grid, MMA_THREADS, mma_fwd_smem<HS>(), ctx->stream>>>(out, lse, qkv, T, C, NH,
                                                                                  LOG2E / sqrtf((float)HS));
    CUDA_AFTER_LAUNCH(ctx, "attention_forward (tensor cores)");
}

template <int HS>
static void mma_backward_launch(cuda_ctx *ctx, bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                const float *D, int B, int T, int C, int NH) {
    static bool configured_dkv = false, configured_dq = false;
    float scale = 1.0f / sqrtf((float)HS);
    dim3 grid((T + MMA_TILE - 1) / MMA_TILE, B * NH);
    attention_smem_opt_in(ctx, mma_backward_dkv_kernel<HS>, mma_dkv_smem<HS>(), "attention_backward", HS,
                          &configured_dkv);
    mma_backward_dkv_kernel<HS><<<grid, MMA_THREADS, mma_dkv_smem<HS>(), ctx->stream>>>(dqkv, dout, qkv, lse, D, T,
                                                                                       C, NH, scale, scale * LOG2E);
    CUDA_AFTER_LAUNCH(ctx, "attention_backward (tensor cores: dk, dv)");
    attention_smem_opt_in(ctx, mma_backward_dq_kernel<HS>, mma_dq_smem<HS>(), "attention_backward", HS, &configured_dq);
    mma_backward_dq_kernel<HS><<<grid, MMA_THREADS, mma_dq_smem<HS>(), ctx->stream>>>(dqkv, dout, qkv, lse, D, T, C,
                                                                                     NH, scale, scale * LOG2E);
    CUDA_AFTER_LAUNCH(ctx, "attention_backward (tensor cores: dq)");
}

void cuda_attention_mma_forward(cuda_ctx *ctx, void *out, float *lse, const void *qkv, int B, int T, int C, int NH,
                                int hs) {
    bf16 *o = (bf16 *)out;
    const bf16 *x = (const bf16 *)qkv;
    switch (hs) {
    case 16: mma_forward_launch<16>(ctx, o, lse, x, B, T, C, NH); break;
    case 32: mma_forward_launch<32>(ctx, o, lse, x, B, T, C, NH); break;
    case 64: mma_forward_launch<64>(ctx, o, lse, x, B, T, C, NH); break;
    default: mma_forward_launch<128>(ctx, o, lse, x, B, T, C, NH); break;
    }
}

void cuda_attention_mma_backward(cuda_ctx *ctx, void *dqkv, const void *dout, const void *qkv, const float *lse,
                                 const float *D, int B, int T, int C, int NH, int hs) {
    bf16 *dx = (bf16 *)dqkv;
    const bf16 *dO = (const bf16 *)dout, *x = (const bf16 *)qkv;
    switch (hs) {
    case 16: mma_backward_launch<16>(ctx, dx, dO, x, lse, D, B, T, C, NH); break;
    case 32: mma_backward_launch<32>(ctx, dx, dO, x, lse, D, B, T, C, NH); break;
    case 64: mma_backward_launch<64>(ctx, dx, dO, x, lse, D, B, T, C, NH); break;
    default: mma_backward_launch<128>(ctx, dx, dO, x, lse, D, B, T, C, NH); break;
    }
}
