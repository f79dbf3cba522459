/* Linear layers through cuBLASLt (contracts in ops.h), fp32 accumulation (CUBLAS_COMPUTE_32F, no
 * TF32, so the fp32 mode is a true fp32 GEMM).
 *
 * Row-major X[R, K] is the column-major K x R matrix, so with w[OC, C] and inp[N, C]:
 *   forward  out^T[OC, N]   = w^T-op (A: C x OC, transposed) * inp^T (B: C x N)       m=OC n=N k=C
 *   dinp     dinp^T[C, N]   = w (A: C x OC) * dout^T (B: OC x N)                      m=C  n=N k=OC
 *   dweight  dweight^T[C,OC] += inp^T (A: C x N) * dout (B: OC x N, transposed)       m=C  n=OC k=N
 *
 * Forward epilogues: BIAS, GELU_AUX or GELU_AUX_BIAS (GELU output in `out`, its input stored in
 * `pre_gelu` as the aux matrix). When cuBLASLt offers no algorithm for the fused epilogue or
 * refuses the call, or the bias/aux pointers or the aux leading dimension miss its alignment
 * rules (16 bytes, OC % 8), the GEMM runs plain and bias_gelu_kernel applies the epilogue:
 * slower, same contract. cuBLASLt's GELU is assumed to be GPT-2's tanh form (the parity test
 * checks it against the CPU's).
 *
 * Backward: ops.h hands pre_gelu to the layer whose OUTPUT went through GELU, so the GELU
 * derivative multiplies this GEMM's input dout; cuBLASLt's DGELU epilogues apply it to a GEMM's
 * output instead and do not fit. bias_grad_kernel applies it in place and sums dbias in the same
 * pass (BGRADB would overwrite dbias, while ops.h accumulates it), deterministically by chunks.
 *
 * Plans (descriptors, layouts, the heuristic's algorithm) are cached per shape, type, epilogue and
 * pointer alignment, in a small array owned by the context. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

#define BIAS_MAX_CHUNKS 128
#define BIAS_THREADS 128

typedef struct {
    int transa, transb;
    int m, n, k;
    int64_t lda, ldb, ldd;
    int ab_type, d_type; /* cudaDataType of A and B, of C and D */
    int epilogue;        /* cublasLtEpilogue_t */
    int aux_ld;          /* 0 unless the epilogue has an aux matrix */
    int align_a, align_b, align_d;
} plan_key;

typedef struct {
    plan_key key;
    int supported; /* 0: cuBLASLt has no algorithm for this key */
    int heuristic_status, heuristic_found; /* what the query answered (for the error message) */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} matmul_plan;

typedef struct {
    matmul_plan *items;
    int count, cap;
} plan_cache;

static int ptr_alignment(const void *p) {
    uintptr_t v = (uintptr_t)p;
    int a = 16;
    while (a > 1 && v % a) a >>= 1;
    return a;
}

extern "C" void cuda_matmul_plans_destroy(cuda_ctx *ctx) {
    plan_cache *cache = (plan_cache *)ctx->matmul_plans;
    if (!cache) return;
    for (int i = 0; i < cache->count; i++) {
        matmul_plan *p = &cache->items[i];
        if (p->desc) cublasLtMatmulDescDestroy(p->desc);
        if (p->la) cublasLtMatrixLayoutDestroy(p->la);
        if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
        if (p->ld) cublasLtMatrixLayoutDestroy(p->ld);
    }
    free(cache->items);
    free(cache);
    ctx->matmul_plans = NULL;
}

static void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void *value,
                     size_t size) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, value, size));
}

/* Finds or builds the plan for `key`; bias/aux are this call's pointers (the heuristic reads their
 * alignment, and fused epilogues are only tried with 16-byte-aligned ones). */
static matmul_plan *get_plan(cuda_ctx *ctx, const plan_key *key, const void *bias, const void *aux) {
    plan_cache *cache = (plan_cache *)ctx->matmul_plans;
    if (!cache) {
        cache = (plan_cache *)calloc(1, sizeof *cache);
        if (!cache) CUDA_UNSUPPORTED("matmul: out of host memory for the plan cache");
        ctx->matmul_plans = cache;
    }
    for (int i = 0; i < cache->count; i++)
        if (memcmp(&cache->items[i].key, key, sizeof *key) == 0) return &cache->items[i];
    if (cache->count == cache->cap) {
        int cap = cache->cap ? 2 * cache->cap : 32;
        matmul_plan *items = (matmul_plan *)realloc(cache->items, cap * sizeof *items);
        if (!items) CUDA_UNSUPPORTED("matmul: out of host memory for the plan cache");
        cache->items = items;
        cache->cap = cap;
    }
    matmul_plan *p = &cache->items[cache->count++];
    memset(p, 0, sizeof *p);
    p->key = *key;

    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    int32_t ta = key->transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = key->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    set_desc(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    set_desc(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    uint32_t epi = (uint32_t)key->epilogue;
    set_desc(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    /* Bias and aux keep their default type, D's type (the act dtype): the type attributes are
     * meant for fp8 kernels and may be refused elsewhere. */
    if (epi & CUBLASLT_EPILOGUE_BIAS) set_desc(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (key->aux_ld) {
        int64_t ld = key->aux_ld;
        set_desc(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld);
        set_desc(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    }
    /* Stored (pre-transpose) shapes: A is m x k (k x m if transposed), B is k x n (n x k). */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, (cudaDataType_t)key->ab_type, key->transa ? key->k : key->m,
                                            key->transa ? key->m : key->k, key->lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, (cudaDataType_t)key->ab_type, key->transb ? key->n : key->k,
                                            key->transb ? key->k : key->n, key->ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->ld, (cudaDataType_t)key->d_type, key->m, key->n, key->ldd));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = ctx->lt_workspace_bytes;
    uint32_t al_a = key->align_a, al_b = key->align_b, al_d = key->align_d;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx->lt, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1,
                                                       &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p->heuristic_status = (int)st;
    p->heuristic_found = found;
    /* NOT_SUPPORTED (or no result) means "no algorithm for this combination": a fallback case. A
     * fused epilogue has the unfused path, so any refusal of the query is one too: cuBLASLt has
     * been seen to answer INVALID_VALUE for bias epilogues on degenerate shapes (a dimension of 1,
     * e.g. n = N = 1 in a one-sequence decode step), and a failed query enqueues nothing. */
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED &&
        key->epilogue == CUBLASLT_EPILOGUE_DEFAULT)
        CUDA_UNSUPPORTED("matmul: cublasLtMatmulAlgoGetHeuristic(m=%d n=%d k=%d trans=%c%c lda=%lld ldb=%lld "
                         "ldd=%lld) failed: %s",
                         key->m, key->n, key->k, key->transa ? 'T' : 'N', key->transb ? 'T' : 'N',
                         (long long)key->lda, (long long)key->ldb, (long long)key->ldd, cuda_cublas_status_text(st));
    p->supported = st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS;
    if (p->supported) p->algo = result.algo;
    return p;
}

/* D = alpha * op(A) op(B) + beta * D with the key's epilogue. Returns -1 when cuBLASLt has no
 * algorithm for a fused epilogue (the caller falls back); fatal for a plain GEMM it cannot run. */
static int lt_matmul(cuda_ctx *ctx, plan_key *key, void *d, const void *a, const void *b, float beta,
                     const void *bias, void *aux) {
    key->align_a = ptr_alignment(a);
    key->align_b = ptr_alignment(b);
    key->align_d = ptr_alignment(d);
    matmul_plan *p = get_plan(ctx, key, bias, aux);
    if (!p->supported) {
        if (key->epilogue != CUBLASLT_EPILOGUE_DEFAULT) return -1;
        CUDA_UNSUPPORTED("matmul: cuBLASLt has no algorithm for m=%d n=%d k=%d trans=%c%c lda=%lld ldb=%lld "
                         "ldd=%lld (types %d/%d, alignments %d/%d/%d; heuristic: %s, %d results)",
                         key->m, key->n, key->k, key->transa ? 'T' : 'N', key->transb ? 'T' : 'N',
                         (long long)key->lda, (long long)key->ldb, (long long)key->ldd, key->ab_type, key->d_type,
                         key->align_a, key->align_b, key->align_d,
                         cuda_cublas_status_text((cublasStatus_t)p->heuristic_status), p->heuristic_found);
    }
    if (key->epilogue & CUBLASLT_EPILOGUE_BIAS) set_desc(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (key->aux_ld) set_desc(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux);
    const float alpha = 1.0f;
    cublasStatus_t st = cublasLtMatmul(ctx->lt, p->desc, &alpha, a, p->la, b, p->lb, &beta, d, p->ld, d, p->ld,
                                       &p->algo, ctx->lt_workspace, ctx->lt_workspace_bytes, ctx->stream);
    if (st != CUBLAS_STATUS_SUCCESS && key->epilogue != CUBLASLT_EPILOGUE_DEFAULT &&
        (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE)) {
        /* A fused epilogue the heuristic offered but the call refused (nothing ran): remember
         * it and let the caller take the plain GEMM + epilogue kernel path. */
        p->supported = 0;
        return -1;
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        CUDA_UNSUPPORTED("matmul: cublasLtMatmul(m=%d n=%d k=%d epilogue=%d) failed: %s", key->m, key->n, key->k,
                         key->epilogue, cuda_cublas_status_text(st));
    CUDA_AFTER_LAUNCH(ctx, "matmul (cublasLt)");
    return 0;
}

static plan_key make_key(int transa, int transb, int m, int n, int k, int64_t lda, int64_t ldb, int64_t ldd,
                         cudaDataType_t ab, cudaDataType_t dt, cublasLtEpilogue_t epi, int aux_ld) {
    plan_key key;
    memset(&key, 0, sizeof key); /* the cache compares keys bytewise, padding included */
    key.transa = transa;
    key.transb = transb;
    key.m = m;
    key.n = n;
    key.k = k;
    key.lda = lda;
    key.ldb = ldb;
    key.ldd = ldd;
    key.ab_type = ab;
    key.d_type = dt;
    key.epilogue = epi;
    key.aux_ld = aux_ld;
    return key;
}

/* Fallback epilogue over pre[N, OC] (the plain GEMM's result): adds bias, and with GELU stores the
 * pre-activation back to pre and GELU of it to out. pre == out when there is no GELU. */
template <typename act_t>
__global__ void bias_gelu_kernel(act_t *out, act_t *pre, const act_t *bias, int gelu, size_t total, int OC) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float x = to_f32(pre[i]);
        if (bias) x += to_f32(bias[i % OC]);
        if (gelu) {
            pre[i] = from_f32<act_t>(x);
            out[i] = from_f32<act_t>(gelu_tanh(x));
        } else {
            out[i] = from_f32<act_t>(x);
        }
    }
}

template <typename act_t>
static void matmul_forward_typed(cuda_ctx *ctx, act_t *out, act_t *pre_gelu, const act_t *inp, const act_t *w,
                                 const act_t *bias, int N, int C, int OC) {
    cudaDataType_t t = ctx->fp32 ? CUDA_R_32F : CUDA_R_16BF;
    int fusable = (!bias || ptr_alignment(bias) == 16) &&
                  (!pre_gelu || (ptr_alignment(pre_gelu) == 16 && OC % 8 == 0));
    if (fusable && (bias || pre_gelu)) {
        cublasLtEpilogue_t epi = pre_gelu ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                          : CUBLASLT_EPILOGUE_BIAS;
        plan_key key = make_key(1, 0, OC, N, C, C, C, OC, t, t, epi, pre_gelu ? OC : 0);
        if (lt_matmul(ctx, &key, out, w, inp, 0.0f, bias, pre_gelu) == 0) return;
    }
    act_t *acc = pre_gelu ? pre_gelu : out;
    plan_key key = make_key(1, 0, OC, N, C, C, C, OC, t, t, CUBLASLT_EPILOGUE_DEFAULT, 0);
    lt_matmul(ctx, &key, acc, w, inp, 0.0f, NULL, NULL);
    if (bias || pre_gelu) {
        size_t total = (size_t)N * OC;
        bias_gelu_kernel<act_t><<<cuda_blocks_for(total, 256), 256, 0, ctx->stream>>>(out, acc, bias,
                                                                                       pre_gelu != NULL, total, OC);
        CUDA_AFTER_LAUNCH(ctx, "matmul_forward (bias/gelu epilogue)");
    }
}

static void check_matmul_shape(const char *op, int N, int C, int OC) {
    if (N < 1 || C < 1 || OC < 1) CUDA_UNSUPPORTED("%s: N=%d C=%d OC=%d must be positive", op, N, C, OC);
}

extern "C" void cuda_matmul_forward(exitrl_backend *be, void *out, void *pre_gelu, const void *inp, const void *w,
                                    const void *bias, int N, int C, int OC) {
    cuda_ctx *ctx = CUDA_CTX(be);
    check_matmul_shape("matmul_forward", N, C, OC);
    if (ctx->fp32)
        matmul_forward_typed<float>(ctx, (float *)out, (float *)pre_gelu, (const float *)inp, (const float *)w,
                                    (const float *)bias, N, C, OC);
    else
        matmul_forward_typed<bf16>(ctx, (bf16 *)out, (bf16 *)pre_gelu, (const bf16 *)inp, (const bf16 *)w,
                                   (const bf16 *)bias, N, C, OC);
}

/* Column sweep over dout[N, OC], one thread per column and a fixed chunk of rows: with pre_gelu,
 * dout *= GELU'(pre_gelu) in place; with partial, partial[chunk][o] = sum of the (new) dout. */
template <typename act_t>
__global__ void bias_grad_kernel(float *partial, act_t *dout, const act_t *pre_gelu, int N, int OC,
                                 int rows_per_chunk) {
    int o = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (o >= OC) return;
    int r0 = chunk * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
    float acc = 0.0f;
#pragma unroll 4
    for (int r = r0; r < r1; r++) {
        size_t i = (size_t)r * OC + o;
        float g = to_f32(dout[i]);
        if (pre_gelu) {
            act_t stored = from_f32<act_t>(g * gelu_tanh_grad(to_f32(pre_gelu[i])));
            dout[i] = stored;
            g = to_f32(stored); /* dbias must agree with the dout the GEMMs read */
        }
        acc += g;
    }
    if (partial) partial[(size_t)chunk * OC + o] = acc;
}

__global__ void bias_grad_final_kernel(float *dbias, const float *partial, int chunks, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float acc = 0.0f;
    for (int k = 0; k < chunks; k++) acc += partial[(size_t)k * OC + o];
    dbias[o] += acc;
}

template <typename act_t>
static void matmul_backward_typed(cuda_ctx *ctx, act_t *dinp, float *dweight, float *dbias, act_t *dout,
                                  const act_t *inp, const act_t *w, const act_t *pre_gelu, int N, int C, int OC) {
    if (pre_gelu || dbias) {
        /* The chunking depends on N only: the same sums in the same order on every run. */
        int rows_per_chunk = (N + BIAS_MAX_CHUNKS - 1) / BIAS_MAX_CHUNKS;
        if (rows_per_chunk < 16) rows_per_chunk = 16;
        int chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
        float *partial = dbias ? (float *)cuda_scratch(ctx, SCRATCH_BIAS_PARTIALS, (size_t)chunks * OC * sizeof(float))
                               : NULL;
        dim3 grid((OC + BIAS_THREADS - 1) / BIAS_THREADS, chunks);
        bias_grad_kernel<act_t><<<grid, BIAS_THREADS, 0, ctx->stream>>>(partial, dout, pre_gelu, N, OC, rows_per_chunk);
        CUDA_AFTER_LAUNCH(ctx, "matmul_backward (gelu/bias grad)");
        if (dbias) {
            bias_grad_final_kernel<<<(OC + BIAS_THREADS - 1) / BIAS_THREADS, BIAS_THREADS, 0, ctx->stream>>>(
                dbias, partial, chunks, OC);
            CUDA_AFTER_LAUNCH(ctx, "matmul_backward (dbias)");
        }
    }
    cudaDataType_t t = ctx->fp32 ? CUDA_R_32F : CUDA_R_16BF;
    if (dinp) {
        plan_key key = make_key(0, 0, C, N, OC, C, OC, C, t, t, CUBLASLT_EPILOGUE_DEFAULT, 0);
        lt_matmul(ctx, &key, dinp, w, dout, 0.0f, NULL, NULL);
    }
    plan_key key = make_key(0, 1, C, OC, N, C, OC, C, t, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, 0);
    lt_matmul(ctx, &key, dweight, inp, dout, 1.0f, NULL, NULL);
}

extern "C" void cuda_matmul_backward(exitrl_backend *be, void *dinp, float *dweight, float *dbias, void *dout,
                                     const void *inp, const void *w, const void *pre_gelu, int N, int C, int OC) {
    cuda_ctx *ctx = CUDA_CTX(be);
    check_matmul_shape("matmul_backward", N, C, OC);
    if (ctx->fp32)
        matmul_backward_typed<float>(ctx, (float *)dinp, dweight, dbias, (float *)dout, (const float *)inp,
                                     (const float *)w, (const float *)pre_gelu, N, C, OC);
    else
        matmul_backward_typed<bf16>(ctx, (bf16 *)dinp, dweight, dbias, (bf16 *)dout, (const bf16 *)inp,
                                    (const bf16 *)w, (const bf16 *)pre_gelu, N, C, OC);
}
