/* KV-cache rollout ops (contracts in ops.h, "rollouts"): the embedding of each sequence's newest
 * token, KV-cache stores, one decode step of attention over the cache, row gathers and the
 * running sum of hidden states.
 *
 * attention_decode: one block per (b, h), DECODE_WARPS warps; warp w walks cache positions
 * w, w + DECODE_WARPS, ... with an online softmax, its lanes splitting the head dimension (so a
 * key row is one coalesced read); the warps' partial (max, sum, output) are then merged in a
 * fixed order. When B * NH blocks would underfill the GPU and the cache is long, each (b, h) is
 * split along the cache into a fixed number of blocks (flash-decoding) whose partials a second
 * kernel merges in split order. Deterministic for given shapes, fp32 throughout. */
#include <math.h>

#include "cuda_common.cuh"

#define DECODE_WARPS 4
/* Split path tuning (see decode_num_splits). */
#define DECODE_TARGET_BLOCKS_PER_SM 4
#define DECODE_MIN_SPLIT_KEYS 128 /* shortest range of cache positions worth a block of its own */
/* Capacity of the split partials, in blocks. The split path runs only while B * NH < 2 * SMs and
 * aims at 4 blocks per SM, so it needs fewer than 6 * SMs blocks: 2048 covers GPUs of up to ~340
 * SMs (beyond, fewer splits). A fixed-size device array rather than grow-on-demand scratch: it
 * never moves, so a decode step captured in a CUDA graph keeps valid pointers whatever runs in
 * between, and nothing is allocated on first use. It is per device, shared by every backend
 * context of the process: two contexts must not run attention_decode concurrently on one device. */
#define DECODE_MAX_PARTIALS 2048

template <typename act_t>
__global__ void encoder_forward_at_kernel(act_t *out, const int *tok_buf, const int *pos, int S, const act_t *wte,
                                          const act_t *wpe, int B, int C, int *dev_err) {
    size_t total = (size_t)B * C;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(idx / C), c = (int)(idx % C), p = pos[b];
        if (p < 0 || p >= S) {
            if (c == 0) report_bad_input(dev_err, CUDA_BAD_POSITION, b, p, S);
            continue;
        }
        int id = tok_buf[(size_t)b * S + p];
        if (id < 0) {
            if (c == 0) report_bad_input(dev_err, CUDA_BAD_TOKEN, b * S + p, id, 0);
            continue;
        }
        out[idx] = from_f32<act_t>(to_f32(wte[(size_t)id * C + c]) + to_f32(wpe[(size_t)p * C + c]));
    }
}

extern "C" void cuda_encoder_forward_at(exitrl_backend *be, void *out, const int *tok_buf, const int *pos, int S,
                                        const void *wte, const void *wpe, int B, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || C < 1 || S < 1) CUDA_UNSUPPORTED("encoder_forward_at: B=%d C=%d S=%d must be positive", B, C, S);
    unsigned blocks = cuda_blocks_for((size_t)B * C, 256);
    if (ctx->fp32)
        encoder_forward_at_kernel<float><<<blocks, 256, 0, ctx->stream>>>(
            (float *)out, tok_buf, pos, S, (const float *)wte, (const float *)wpe, B, C, ctx->dev_err);
    else
        encoder_forward_at_kernel<bf16><<<blocks, 256, 0, ctx->stream>>>(
            (bf16 *)out, tok_buf, pos, S, (const bf16 *)wte, (const bf16 *)wpe, B, C, ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "encoder_forward_at");
}

template <typename act_t>
__global__ void kv_cache_store_kernel(act_t *kcache, act_t *vcache, const act_t *qkv, const int *start_pos, int B,
                                      int T, int S, int C, int *dev_err) {
    size_t total = (size_t)B * T * C;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t bt = idx / C;
        int c = (int)(idx % C), t = (int)(bt % T), b = (int)(bt / T);
        int start = start_pos ? start_pos[b] : 0;
        if (start < 0 || start + t >= S) {
            if (c == 0) report_bad_input(dev_err, CUDA_BAD_POSITION, b, start + t, S);
            continue;
        }
        size_t dst = ((size_t)b * S + start + t) * C + c;
        const act_t *src = qkv + bt * 3 * C;
        kcache[dst] = src[C + c];
        vcache[dst] = src[2 * C + c];
    }
}

extern "C" void cuda_kv_cache_store(exitrl_backend *be, void *kcache, void *vcache, const void *qkv,
                                    const int *start_pos, int B, int T, int S, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || T < 1 || S < 1 || C < 1 || T > S)
        CUDA_UNSUPPORTED("kv_cache_store: B=%d T=%d S=%d C=%d (need positive sizes, T <= S)", B, T, S, C);
    unsigned blocks = cuda_blocks_for((size_t)B * T * C, 256);
    if (ctx->fp32)
        kv_cache_store_kernel<float><<<blocks, 256, 0, ctx->stream>>>((float *)kcache, (float *)vcache,
                                                                      (const float *)qkv, start_pos, B, T, S, C,
                                                                      ctx->dev_err);
    else
        kv_cache_store_kernel<bf16><<<blocks, 256, 0, ctx->stream>>>((bf16 *)kcache, (bf16 *)vcache,
                                                                     (const bf16 *)qkv, start_pos, B, T, S, C,
                                                                     ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "kv_cache_store");
}

/* Lane `lane` owns head dimensions d = lane + 32 * k, k < decode_dpl<HS>() (those below HS). */
template <int HS> __host__ __device__ constexpr int decode_dpl() { return HS >= 32 ? HS / 32 : 1; }

/* Softmax partial of one block over cache positions [s0, s1) (s0 < s1) of one (sequence, head):
 * the running max M, the sum L of exp(x - M) and the unnormalised output o = sum exp(x - M) v.
 * krow0 / vrow0 point at position 0 of the head's cache rows (row stride C). Every thread of the
 * block must call it (it has a barrier); the result is valid in warp 0 only, each lane holding
 * its dimensions of o. */
template <typename act_t, int HS>
__device__ __forceinline__ void decode_block_partial(const act_t *q, const act_t *krow0, const act_t *vrow0, int C,
                                                     int s0, int s1, float scale, float &M, float &L,
                                                     float (&o)[decode_dpl<HS>()]) {
    constexpr int DPL = decode_dpl<HS>();
    __shared__ float sh_m[DECODE_WARPS], sh_l[DECODE_WARPS], sh_acc[DECODE_WARPS][DPL * 32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float qd[DPL], acc[DPL];
#pragma unroll
    for (int k = 0; k < DPL; k++) {
        int d = lane + 32 * k;
        qd[k] = d < HS ? to_f32(q[d]) : 0.0f;
        acc[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int s = s0 + warp; s < s1; s += DECODE_WARPS) {
        const act_t *krow = krow0 + (size_t)s * C, *vrow = vrow0 + (size_t)s * C;
        float dot = 0.0f;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            int d = lane + 32 * k;
            if (d < HS) dot += qd[k] * to_f32(krow[d]);
        }
        float x = warp_sum(dot) * scale;
        float m_new = fmaxf(m, x);
        float alpha = __expf(m - m_new), p = __expf(x - m_new); /* alpha = 0 on the first key */
        l = l * alpha + p;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            int d = lane + 32 * k;
            acc[k] = acc[k] * alpha + (d < HS ? p * to_f32(vrow[d]) : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0) {
        sh_m[warp] = m;
        sh_l[warp] = l;
    }
#pragma unroll
    for (int k = 0; k < DPL; k++) sh_acc[warp][lane + 32 * k] = acc[k];
    __syncthreads();
    if (warp != 0) return;
    /* Merge the warps in order; a warp that saw no key (fewer than DECODE_WARPS keys) has
     * m = -inf, l = 0. */
    M = sh_m[0];
    for (int w = 1; w < DECODE_WARPS; w++) M = fmaxf(M, sh_m[w]);
    L = 0.0f;
#pragma unroll
    for (int k = 0; k < DPL; k++) o[k] = 0.0f;
    for (int w = 0; w < DECODE_WARPS; w++) {
        float f = sh_l[w] > 0.0f ? __expf(sh_m[w] - M) : 0.0f;
        L += sh_l[w] * f;
#pragma unroll
        for (int k = 0; k < DPL; k++) o[k] += sh_acc[w][lane + 32 * k] * f;
    }
}

/* Single pass: one block per (b, h) over all positions 0..pos[b]. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(DECODE_WARPS * 32)
attention_decode_kernel(act_t *out, const act_t *qkv, const act_t *kcache, const act_t *vcache, const int *pos,
                        int S, int C, int NH, float scale, int *dev_err) {
    constexpr int DPL = decode_dpl<HS>();
    int b = blockIdx.x / NH, h = blockIdx.x % NH, lane = threadIdx.x % 32;
    int n = pos[b] + 1;
    if (n < 1 || n > S) { /* block-uniform */
        if (threadIdx.x == 0) report_bad_input(dev_err, CUDA_BAD_POSITION, b, n - 1, S);
        return;
    }
    size_t head0 = (size_t)b * S * C + h * HS;
    float M, L, o[DPL];
    decode_block_partial<act_t, HS>(qkv + (size_t)b * 3 * C + h * HS, kcache + head0, vcache + head0, C, 0, n, scale,
                                    M, L, o);
    if (threadIdx.x >= 32) return;
    act_t *orow = out + (size_t)b * C + h * HS;
#pragma unroll
    for (int k = 0; k < DPL; k++) {
        int d = lane + 32 * k;
        if (d < HS) orow[d] = from_f32<act_t>(o[k] / L);
    }
}

/* Split path (flash-decoding). Block i = bh * splits + j covers cache positions
 * [j * chunk, (j + 1) * chunk) clipped to 0..pos[b] and leaves its partial (M, L, o) at
 * decode_partial_ml[2 i], [2 i + 1] and decode_partial_o[i * HS + d]. A range wholly past pos[b]
 * (the split count comes from the capacity S, so these exist until the sequence grows into them)
 * writes the empty partial M = -inf, L = 0 and no o, which the combine never reads. */
__device__ float decode_partial_ml[2 * DECODE_MAX_PARTIALS];
__device__ float decode_partial_o[DECODE_MAX_PARTIALS * 128];

template <typename act_t, int HS>
__global__ void __launch_bounds__(DECODE_WARPS * 32)
attention_decode_split_kernel(const act_t *qkv, const act_t *kcache, const act_t *vcache, const int *pos, int S,
                              int C, int NH, int splits, int chunk, float scale, int *dev_err) {
    constexpr int DPL = decode_dpl<HS>();
    int bh = blockIdx.x / splits, j = blockIdx.x % splits, b = bh / NH, h = bh % NH, lane = threadIdx.x % 32;
    int n = pos[b] + 1;
    if (n < 1 || n > S) { /* block-uniform */
        if (threadIdx.x == 0) report_bad_input(dev_err, CUDA_BAD_POSITION, b, n - 1, S);
        return;
    }
    int s0 = j * chunk, s1 = min(s0 + chunk, n);
    float *ml = decode_partial_ml + 2 * (size_t)blockIdx.x;
    if (s0 >= s1) { /* block-uniform */
        if (threadIdx.x == 0) {
            ml[0] = -INFINITY;
            ml[1] = 0.0f;
        }
        return;
    }
    size_t head0 = (size_t)b * S * C + h * HS;
    float M, L, o[DPL];
    decode_block_partial<act_t, HS>(qkv + (size_t)b * 3 * C + h * HS, kcache + head0, vcache + head0, C, s0, s1,
                                    scale, M, L, o);
    if (threadIdx.x >= 32) return;
    if (lane == 0) {
        ml[0] = M;
        ml[1] = L;
    }
    float *op = decode_partial_o + (size_t)blockIdx.x * HS;
#pragma unroll
    for (int k = 0; k < DPL; k++) {
        int d = lane + 32 * k;
        if (d < HS) op[d] = o[k];
    }
}

/* One warp per (b, h): merges its splits in order j = 0, 1, ... (deterministic) and normalises.
 * Split 0 always holds position 0, so L > 0. */
template <typename act_t, int HS>
__global__ void __launch_bounds__(32)
attention_decode_combine_kernel(act_t *out, const int *pos, int S, int C, int NH, int splits) {
    constexpr int DPL = decode_dpl<HS>();
    int bh = blockIdx.x, b = bh / NH, h = bh % NH, lane = threadIdx.x;
    int n = pos[b] + 1;
    if (n < 1 || n > S) return; /* already reported by the split kernel */
    const float *ml = decode_partial_ml + 2 * (size_t)bh * splits;
    float M = ml[0];
    for (int j = 1; j < splits; j++) M = fmaxf(M, ml[2 * j]);
    float L = 0.0f, o[DPL];
#pragma unroll
    for (int k = 0; k < DPL; k++) o[k] = 0.0f;
    for (int j = 0; j < splits; j++) {
        float l = ml[2 * j + 1];
        if (l == 0.0f) continue; /* empty range: its o was never written */
        float f = __expf(ml[2 * j] - M);
        L += l * f;
        const float *op = decode_partial_o + ((size_t)bh * splits + j) * HS;
#pragma unroll
        for (int k = 0; k < DPL; k++) {
            int d = lane + 32 * k;
            if (d < HS) o[k] += op[d] * f;
        }
    }
    act_t *orow = out + (size_t)b * C + h * HS;
#pragma unroll
    for (int k = 0; k < DPL; k++) {
        int d = lane + 32 * k;
        if (d < HS) orow[d] = from_f32<act_t>(o[k] / L);
    }
}

/* Number of blocks each (b, h) is split into, from host-known sizes only: the step is captured in
 * a CUDA graph and replayed while pos[] (device memory) advances, so it cannot depend on pos.
 * Split only when B * NH blocks would leave the GPU underfilled (fewer than 2 per SM), aiming at
 * about DECODE_TARGET_BLOCKS_PER_SM blocks per SM in all, each split at least
 * DECODE_MIN_SPLIT_KEYS positions of the capacity S long. 1 means the single pass. */
static int decode_num_splits(int B, int NH, int S) {
    static int sm_count; /* cached once per process (the first device used; only a heuristic) */
    if (!sm_count) {
        int dev = 0, n = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
        sm_count = n > 0 ? n : 1;
    }
    long long bh = (long long)B * NH;
    if (bh >= 2LL * sm_count) return 1;
    long long want = ((long long)DECODE_TARGET_BLOCKS_PER_SM * sm_count + bh - 1) / bh;
    long long by_length = S / DECODE_MIN_SPLIT_KEYS, by_buffer = DECODE_MAX_PARTIALS / bh;
    long long splits = want < by_length ? want : by_length;
    if (splits > by_buffer) splits = by_buffer;
    return splits > 1 ? (int)splits : 1;
}

template <typename act_t, int HS>
static void attention_decode_launch(cuda_ctx *ctx, act_t *out, const act_t *qkv, const act_t *kcache,
                                    const act_t *vcache, const int *pos, int B, int S, int C, int NH, float scale) {
    unsigned bh = (unsigned)B * NH;
    int splits = decode_num_splits(B, NH, S);
    if (splits == 1) {
        attention_decode_kernel<act_t, HS><<<bh, DECODE_WARPS * 32, 0, ctx->stream>>>(
            out, qkv, kcache, vcache, pos, S, C, NH, scale, ctx->dev_err);
        CUDA_AFTER_LAUNCH(ctx, "attention_decode");
        return;
    }
    int chunk = (S + splits - 1) / splits;
    attention_decode_split_kernel<act_t, HS><<<bh * splits, DECODE_WARPS * 32, 0, ctx->stream>>>(
        qkv, kcache, vcache, pos, S, C, NH, splits, chunk, scale, ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "attention_decode (split)");
    attention_decode_combine_kernel<act_t, HS><<<bh, 32, 0, ctx->stream>>>(out, pos, S, C, NH, splits);
    CUDA_AFTER_LAUNCH(ctx, "attention_decode (combine)");
}

template <typename act_t>
static void attention_decode_typed(cuda_ctx *ctx, act_t *out, const act_t *qkv, const act_t *kcache,
                                   const act_t *vcache, const int *pos, int B, int S, int C, int NH, int hs) {
    float scale = 1.0f / sqrtf((float)hs);
    switch (hs) {
    case 16: attention_decode_launch<act_t, 16>(ctx, out, qkv, kcache, vcache, pos, B, S, C, NH, scale); break;
    case 32: attention_decode_launch<act_t, 32>(ctx, out, qkv, kcache, vcache, pos, B, S, C, NH, scale); break;
    case 64: attention_decode_launch<act_t, 64>(ctx, out, qkv, kcache, vcache, pos, B, S, C, NH, scale); break;
    default: attention_decode_launch<act_t, 128>(ctx, out, qkv, kcache, vcache, pos, B, S, C, NH, scale); break;
    }
}

extern "C" void cuda_attention_decode(exitrl_backend *be, void *out, const void *qkv, const void *kcache,
                                      const void *vcache, const int *pos, int B, int S, int C, int NH) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || S < 1 || C < 1 || NH < 1 || C % NH)
        CUDA_UNSUPPORTED("attention_decode: B=%d S=%d C=%d NH=%d (need positive sizes and C %% NH == 0)", B, S, C,
                         NH);
    int hs = C / NH;
    if (hs != 16 && hs != 32 && hs != 64 && hs != 128)
        CUDA_UNSUPPORTED("attention_decode: head size %d is not supported (16, 32, 64 or 128)", hs);
    if ((size_t)B * NH > 0x7fffffff) CUDA_UNSUPPORTED("attention_decode: B*NH = %zu is too large", (size_t)B * NH);
    if (ctx->fp32)
        attention_decode_typed<float>(ctx, (float *)out, (const float *)qkv, (const float *)kcache,
                                      (const float *)vcache, pos, B, S, C, NH, hs);
    else
        attention_decode_typed<bf16>(ctx, (bf16 *)out, (const bf16 *)qkv, (const bf16 *)kcache, (const bf16 *)vcache,
                                     pos, B, S, C, NH, hs);
}

template <typename act_t>
__global__ void gather_rows_kernel(act_t *dst, const act_t *src, const int *idx, int B, int C, int *dev_err) {
    size_t total = (size_t)B * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / C), c = (int)(i % C), row = idx[b];
        if (row < 0) {
            if (c == 0) report_bad_input(dev_err, CUDA_BAD_INDEX, b, row, 0);
            continue;
        }
        dst[i] = src[(size_t)row * C + c];
    }
}

extern "C" void cuda_gather_rows(exitrl_backend *be, void *dst, const void *src, const int *idx, int B, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || C < 1) CUDA_UNSUPPORTED("gather_rows: B=%d C=%d must be positive", B, C);
    unsigned blocks = cuda_blocks_for((size_t)B * C, 256);
    if (ctx->fp32)
        gather_rows_kernel<float><<<blocks, 256, 0, ctx->stream>>>((float *)dst, (const float *)src, idx, B, C,
                                                                   ctx->dev_err);
    else
        gather_rows_kernel<bf16><<<blocks, 256, 0, ctx->stream>>>((bf16 *)dst, (const bf16 *)src, idx, B, C,
                                                                  ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "gather_rows");
}

template <typename act_t>
__global__ void hidden_accumulate_kernel(float *emb, const act_t *hidden, const int *done, int B, int C) {
    size_t total = (size_t)B * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        if (!done[i / C]) emb[i] += to_f32(hidden[i]);
}

extern "C" void cuda_hidden_accumulate(exitrl_backend *be, float *emb, const void *hidden, const int *done, int B,
                                       int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (B < 1 || C < 1) CUDA_UNSUPPORTED("hidden_accumulate: B=%d C=%d must be positive", B, C);
    unsigned blocks = cuda_blocks_for((size_t)B * C, 256);
    if (ctx->fp32)
        hidden_accumulate_kernel<float><<<blocks, 256, 0, ctx->stream>>>(emb, (const float *)hidden, done, B, C);
    else
        hidden_accumulate_kernel<bf16><<<blocks, 256, 0, ctx->stream>>>(emb, (const bf16 *)hidden, done, B, C);
    CUDA_AFTER_LAUNCH(ctx, "hidden_accumulate");
}
