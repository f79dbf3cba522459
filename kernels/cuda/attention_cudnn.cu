/* Causal attention through cuDNN's fused (flash) attention, the third implementation of
 * attention_forward / attention_backward (contracts in ops.h), selected with EXITRL_ATTENTION=cudnn;
 * attention.cu's attention_choose decides, call by call, whether it runs or our kernels do.
 * Only cuDNN's C backend ("graph") API is used: cudnn-frontend is C++ and not a dependency.
 *
 * Which graph. cuDNN 9.19's single-node SDPA operation (CUDNN_BACKEND_OPERATION_SDPA_FWD/BWD_
 * DESCRIPTOR) takes a causal mask only as a score-modifier subgraph, an attribute that arrives in
 * cuDNN 9.21, so this file builds the composite pattern that cuDNN's fused-attention engines match
 * (the pattern cudnn-frontend emits for its SDPA node on these versions):
 *   forward   S = Q K^T (fp32); S *= 1/sqrt(hs); causal mask: S[i][j] = -inf unless i >= j
 *             (GEN_INDEX of rows and of columns, CMP_GE, BINARY_SELECT); softmax spelled out as
 *             max, sub, exp, sum, div, with Stats = max + log(sum) as an output; O = P V, P in bf16.
 *   backward  softmax_sum = rowsum(dO * O) (an fp32 buffer we provide); S recomputed and scaled,
 *             minus Stats, masked, exp -> P; dV = P^T dO; dP = dO V^T;
 *             dS = P * (dP - softmax_sum) * scale; dK = dS^T Q; dQ = dS K accumulated in an fp32
 *             buffer we provide, then copied (IDENTITY) into the bf16 dQ.
 * Stats is the natural-log log-sum-exp of the scaled, masked scores, which is exactly ops.h's lse:
 * the forward writes it to lse and the backward reads lse as its Stats, with no conversion.
 *
 * Layout. Q, K, V, O, dO, dQ, dK, dV are strided 4-D views [B, NH, T, hs] of the packed buffers
 * (qkv and dqkv: strides T*3C, hs, 3C, 1 at element offsets 0, C, 2C; out and dout: T*C, hs, C, 1),
 * so nothing is transposed or copied; K and V enter their matmuls as [B, NH, hs, T] views (the last
 * two strides swapped). Stats/lse is [B, NH, T, 1], packed.
 *
 * Limits: bf16 only (cuDNN has no fp32 fused attention, so the fp32 parity mode refuses
 * EXITRL_ATTENTION=cudnn when the backend is created); a cuDNN 9 library of 9.16 or newer at run
 * time (older backwards need a padding-mask workaround for T % 128 != 0 that this file does not
 * build). T == 1 always runs the flash kernels (cuDNN's fused attention has no key length 1).
 * A call cuDNN cannot take (head size not a multiple of 8 or above 256; qkv, out, dout or dqkv not
 * 16-byte aligned -- lse may be misaligned, it then goes through scratch; no engine or plan for
 * this shape; the plan cache full) gets no plan from cuda_attention_cudnn_plan, with the reason;
 * attention.cu then runs the flash kernels instead, with one line on stderr for the first such
 * call of each shape, and counts it (cuda_attention_cudnn_fallbacks), so a benchmark can tell;
 * with EXITRL_ATTENTION_STRICT=1 (the tests) it stops the program with the reason instead.
 * cuDNN's backward is not guaranteed to be bitwise reproducible from run to run, unlike the flash
 * kernel's.
 *
 * Plans. One execution plan per (direction, B, T, C, NH), built on first use and cached in the
 * context, like matmul.cu's cuBLASLt plans (cuDNN compiles the kernels at run time, so a new shape
 * costs a moment once; at most MAX_PLANS shapes, later ones run the flash kernels). Building a plan
 * allocates, so a new shape must not first appear inside a CUDA graph capture.
 * cuda_attention_cudnn_init builds one small forward and backward plan, so a cuDNN that cannot run
 * the graph is reported when the backend is created, with cuDNN's messages.
 * Workspace (cuDNN's, plus our fp32 buffers) comes from the SCRATCH_CUDNN slot; every call runs on
 * the backend's stream (cudnnSetStream).
 *
 * Files: cudnn_graph.cu builds graphs and plans through cuDNN's backend API (general helpers);
 * this file holds the attention graphs, the plan cache and the execution; without cuDNN (or with
 * cuDNN headers older than MIN_CUDNN) this file compiles to nothing and attention_cudnn_stub.cu
 * only reports that. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudnn_graph.h"

#if ATT_CUDNN

/* 1 when the loaded cuDNN library can run this file's graphs, else 0 with the reason. */
static int version_ok(char *why, size_t why_len) {
    size_t v = cudnnGetVersion();
    if (v >= MIN_CUDNN && v / 10000 == CUDNN_MAJOR) return 1;
    snprintf(why, why_len, "the loaded cuDNN library is %zu.%zu.%zu; this fused attention graph needs cuDNN %d.%d or "
             "newer within major version %d (built against %d.%d.%d)",
             v / 10000, v % 10000 / 100, v % 100, MIN_CUDNN / 10000, MIN_CUDNN % 10000 / 100, CUDNN_MAJOR,
             CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);
    return 0;
}

/* ---- plans ---- */

#define MAX_PLANS 64 /* cached shapes (each holds compiled kernels); rollout prefills vary B and T */

/* Unique ids of the tensors a variant pack binds to memory; virtual tensors count up from 100. */
enum {
    UID_Q = 1,
    UID_K,
    UID_V,
    UID_O,
    UID_STATS,
    UID_DO,
    UID_DQ,
    UID_DK,
    UID_DV,
    UID_SCALE,
    UID_NEG_INF,
    UID_ONE,
    UID_SOFTMAX_SUM,
    UID_DQ_ACCUM,
    UID_FIRST_VIRTUAL = 100
};

typedef struct {
    int backward;
    int B, T, C, NH;
} plan_key;

typedef struct {
    plan_key key;
    cudnn_plan c; /* the execution plan and every descriptor it was built from */
    int refused;  /* 1: cuDNN cannot run this shape (c.plan NULL): flash runs it */
    /* By-value scalars: the variant pack points at these host values. */
    alignas(16) float scale;
    alignas(16) float neg_inf;
    alignas(16) float one;
} att_plan;

typedef struct {
    cudnnHandle_t handle;
    att_plan **plans;
    int count, cap;
    int warned_align; /* the misaligned-pointer warning was printed */
    int warned_full;  /* the plan-cache-full warning was printed */
} att_state;

static void plan_free(att_plan *p) {
    if (!p) return;
    cudnn_plan_release(&p->c);
    free(p);
}

/* ---- the attention graphs ---- */

/* The shapes every graph uses, for one (B, T, C, NH). */
typedef struct {
    shape4 head;      /* [B, NH, T, hs] */
    shape4 qkv_str;   /* strides of q, k, v (and dq, dk, dv) in the packed [B, T, 3C] buffer */
    shape4 out_str;   /* strides of out / dout in [B, T, C] */
    shape4 head_t;    /* [B, NH, hs, T]: K and V as the right operand of a matmul */
    shape4 qkv_str_t; /* their strides */
    shape4 packed;    /* packed strides of a [B, NH, T, hs] tensor */
    shape4 scores;    /* [B, NH, T, T] */
    shape4 scores_str;
    shape4 scores_t_str; /* the transpose of a packed scores tensor, as a view */
    shape4 row;          /* [B, NH, T, 1]: Stats and softmax_sum */
    shape4 row_str;
} att_shapes;

static att_shapes shapes_for(const plan_key *k) {
    int64_t B = k->B, T = k->T, C = k->C, NH = k->NH, hs = C / NH;
    att_shapes s;
    s.head = s4(B, NH, T, hs);
    s.qkv_str = s4(T * 3 * C, hs, 3 * C, 1);
    s.out_str = s4(T * C, hs, C, 1);
    s.head_t = s4(B, NH, hs, T);
    s.qkv_str_t = s4(T * 3 * C, hs, 1, 3 * C);
    s.packed = s4(NH * T * hs, T * hs, hs, 1);
    s.scores = s4(B, NH, T, T);
    s.scores_str = s4(NH * T * T, T * T, T, 1);
    s.scores_t_str = s4(NH * T * T, T * T, 1, T);
    s.row = s4(B, NH, T, 1);
    s.row_str = s4(NH * T, T, 1, 1);
    return s;
}

/* Returns s with -inf where the key index exceeds the query index (causal, top-left aligned). */
static cudnnBackendDescriptor_t causal_mask(builder *b, const att_shapes *s, cudnnBackendDescriptor_t scores,
                                            cudnnBackendDescriptor_t neg_inf) {
    cudnnBackendDescriptor_t row = virt(b, "row index", CUDNN_DATA_INT32, s->scores, s->scores_str);
    op_pointwise(b, "row index (GEN_INDEX axis 2)", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 2, scores, NULL, NULL,
                 row);
    cudnnBackendDescriptor_t col = virt(b, "column index", CUDNN_DATA_INT32, s->scores, s->scores_str);
    op_pointwise(b, "column index (GEN_INDEX axis 3)", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 3, scores, NULL,
                 NULL, col);
    cudnnBackendDescriptor_t keep = virt(b, "causal keep", CUDNN_DATA_BOOLEAN, s->scores, s->scores_str);
    op_pointwise(b, "row >= column (CMP_GE)", CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, -1, row, col, NULL, keep);
    cudnnBackendDescriptor_t masked = virt(b, "masked scores", CUDNN_DATA_FLOAT, s->scores, s->scores_str);
    op_pointwise(b, "causal select (BINARY_SELECT)", CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, -1, scores,
                 neg_inf, keep, masked);
    return masked;
}

static void build_forward(builder *b, const plan_key *k) {
    att_shapes s = shapes_for(k);
    const cudnnDataType_t BF = CUDNN_DATA_BFLOAT16, F = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t Q = io(b, "Q", UID_Q, BF, s.head, s.qkv_str);
    cudnnBackendDescriptor_t KT = io(b, "K^T", UID_K, BF, s.head_t, s.qkv_str_t);
    cudnnBackendDescriptor_t V = io(b, "V", UID_V, BF, s.head, s.qkv_str);
    cudnnBackendDescriptor_t O = io(b, "O", UID_O, BF, s.head, s.out_str);
    cudnnBackendDescriptor_t stats = io(b, "Stats", UID_STATS, F, s.row, s.row_str);
    cudnnBackendDescriptor_t scale = scalar(b, "attention scale", UID_SCALE);
    cudnnBackendDescriptor_t neg_inf = scalar(b, "-inf", UID_NEG_INF);

    cudnnBackendDescriptor_t S = virt(b, "S", F, s.scores, s.scores_str);
    op_matmul(b, "S = Q K^T", Q, KT, S);
    cudnnBackendDescriptor_t scaled = virt(b, "scaled S", F, s.scores, s.scores_str);
    pw2(b, "S * scale", CUDNN_POINTWISE_MUL, S, scale, scaled);
    cudnnBackendDescriptor_t masked = causal_mask(b, &s, scaled, neg_inf);

    /* softmax with its statistics: Stats = max + log(sum exp(x - max)) */
    cudnnBackendDescriptor_t mx = virt(b, "row max", F, s.row, s.row_str);
    op_reduction(b, "row max", CUDNN_REDUCE_TENSOR_MAX, masked, mx);
    cudnnBackendDescriptor_t centred = virt(b, "x - max", F, s.scores, s.scores_str);
    pw2(b, "x - max", CUDNN_POINTWISE_SUB, masked, mx, centred);
    cudnnBackendDescriptor_t e = virt(b, "exp(x - max)", F, s.scores, s.scores_str);
    pw1(b, "exp(x - max)", CUDNN_POINTWISE_EXP, centred, e);
    cudnnBackendDescriptor_t sum = virt(b, "row sum", F, s.row, s.row_str);
    op_reduction(b, "row sum", CUDNN_REDUCE_TENSOR_ADD, e, sum);
    cudnnBackendDescriptor_t log_sum = virt(b, "log(row sum)", F, s.row, s.row_str);
    pw1(b, "log(row sum)", CUDNN_POINTWISE_LOG, sum, log_sum);
    pw2(b, "Stats = max + log(sum)", CUDNN_POINTWISE_ADD, mx, log_sum, stats);
    /* P feeds the second matmul in the input type (cuDNN requires it). */
    cudnnBackendDescriptor_t P = virt(b, "P", BF, s.scores, s.scores_str);
    pw2(b, "P = exp / sum", CUDNN_POINTWISE_DIV, e, sum, P);
    op_matmul(b, "O = P V", P, V, O);
}

static void build_backward(builder *b, const plan_key *k) {
    att_shapes s = shapes_for(k);
    const cudnnDataType_t BF = CUDNN_DATA_BFLOAT16, F = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t Q = io(b, "Q", UID_Q, BF, s.head, s.qkv_str);
    cudnnBackendDescriptor_t KT = io(b, "K^T", UID_K, BF, s.head_t, s.qkv_str_t);
    cudnnBackendDescriptor_t VT = io(b, "V^T", UID_V, BF, s.head_t, s.qkv_str_t);
    cudnnBackendDescriptor_t O = io(b, "O", UID_O, BF, s.head, s.out_str);
    cudnnBackendDescriptor_t dO = io(b, "dO", UID_DO, BF, s.head, s.out_str);
    cudnnBackendDescriptor_t stats = io(b, "Stats", UID_STATS, F, s.row, s.row_str);
    cudnnBackendDescriptor_t dQ = io(b, "dQ", UID_DQ, BF, s.head, s.qkv_str);
    cudnnBackendDescriptor_t dK = io(b, "dK", UID_DK, BF, s.head, s.qkv_str);
    cudnnBackendDescriptor_t dV = io(b, "dV", UID_DV, BF, s.head, s.qkv_str);
    cudnnBackendDescriptor_t scale = scalar(b, "attention scale", UID_SCALE);
    cudnnBackendDescriptor_t neg_inf = scalar(b, "-inf", UID_NEG_INF);
    cudnnBackendDescriptor_t one = scalar(b, "one", UID_ONE);
    cudnnBackendDescriptor_t softmax_sum = io(b, "softmax_sum", UID_SOFTMAX_SUM, F, s.row, s.row_str);
    cudnnBackendDescriptor_t dq_accum = io(b, "dQ accumulator", UID_DQ_ACCUM, F, s.head, s.packed);

    /* softmax_sum = rowsum(dO * O): the D of FlashAttention-2's backward */
    cudnnBackendDescriptor_t dOO = virt(b, "dO * O", F, s.head, s.packed);
    pw2(b, "dO * O", CUDNN_POINTWISE_MUL, dO, O, dOO);
    cudnnBackendDescriptor_t rowdot = virt(b, "rowsum(dO * O)", F, s.row, s.row_str);
    op_reduction(b, "rowsum(dO * O)", CUDNN_REDUCE_TENSOR_ADD, dOO, rowdot);
    /* times 1 (the dropout-scale slot of the pattern, unused here) into the buffer */
    pw2(b, "softmax_sum = rowsum * 1", CUDNN_POINTWISE_MUL, rowdot, one, softmax_sum);

    /* P recomputed from the saved statistics */
    cudnnBackendDescriptor_t S = virt(b, "S", F, s.scores, s.scores_str);
    op_matmul(b, "S = Q K^T", Q, KT, S);
    cudnnBackendDescriptor_t scaled = virt(b, "scaled S", F, s.scores, s.scores_str);
    pw2(b, "S * scale", CUDNN_POINTWISE_MUL, S, scale, scaled);
    cudnnBackendDescriptor_t centred = virt(b, "S - Stats", F, s.scores, s.scores_str);
    pw2(b, "S - Stats", CUDNN_POINTWISE_SUB, scaled, stats, centred);
    cudnnBackendDescriptor_t masked = causal_mask(b, &s, centred, neg_inf);
    cudnnBackendDescriptor_t P = virt(b, "P", F, s.scores, s.scores_str);
    pw1(b, "P = exp(S - Stats)", CUDNN_POINTWISE_EXP, masked, P);

    /* dV = P^T dO */
    cudnnBackendDescriptor_t PT = virt(b, "P^T", BF, s.scores, s.scores_t_str);
    op_reshape(b, "P^T", P, PT);
    op_matmul(b, "dV = P^T dO", PT, dO, dV);

    /* dS = P * (dO V^T - softmax_sum) * scale */
    cudnnBackendDescriptor_t dP = virt(b, "dP", F, s.scores, s.scores_str);
    op_matmul(b, "dP = dO V^T", dO, VT, dP);
    cudnnBackendDescriptor_t dP_centred = virt(b, "dP - softmax_sum", F, s.scores, s.scores_str);
    pw2(b, "dP - softmax_sum", CUDNN_POINTWISE_SUB, dP, softmax_sum, dP_centred);
    cudnnBackendDescriptor_t dS_unscaled = virt(b, "P * (dP - softmax_sum)", F, s.scores, s.scores_str);
    pw2(b, "P * (dP - softmax_sum)", CUDNN_POINTWISE_MUL, dP_centred, P, dS_unscaled);
    cudnnBackendDescriptor_t dS = virt(b, "dS", F, s.scores, s.scores_str);
    pw2(b, "dS = ... * scale", CUDNN_POINTWISE_MUL, dS_unscaled, scale, dS);

    /* dK = dS^T Q */
    cudnnBackendDescriptor_t dST = virt(b, "dS^T", BF, s.scores, s.scores_t_str);
    op_reshape(b, "dS^T", dS, dST);
    op_matmul(b, "dK = dS^T Q", dST, Q, dK);

    /* dQ = dS K, accumulated in fp32, then converted */
    cudnnBackendDescriptor_t K = virt(b, "K", F, s.head, s.qkv_str);
    op_reshape(b, "K from K^T", KT, K);
    op_matmul(b, "dQ accumulator = dS K", dS, K, dq_accum);
    pw1(b, "dQ = dQ accumulator (IDENTITY)", CUDNN_POINTWISE_IDENTITY, dq_accum, dQ);
}

/* ---- plan cache ---- */

/* Builds the plan for key; NULL with the reason in why (cuDNN's status and message included). */
static att_plan *build_plan(cudnnHandle_t handle, const plan_key *key, char *why, size_t why_len) {
    att_plan *p = (att_plan *)calloc(1, sizeof *p);
    if (!p) {
        snprintf(why, why_len, "out of host memory for a cuDNN attention plan");
        return NULL;
    }
    p->key = *key;
    p->scale = 1.0f / sqrtf((float)(key->C / key->NH));
    p->neg_inf = -INFINITY;
    p->one = 1.0f;
    builder b;
    builder_init(&b, &p->c, handle, key->backward ? "backward" : "forward", UID_FIRST_VIRTUAL);
    if (key->backward)
        build_backward(&b, key);
    else
        build_forward(&b, key);
    make_plan(&b);
    if (failed(&b)) {
        snprintf(why, why_len, "cuDNN attention (B=%d T=%d C=%d NH=%d): %s", key->B, key->T, key->C, key->NH, b.msg);
        plan_free(p);
        return NULL;
    }
    return p;
}

/* Appends p to the cache (0), or -1 when out of host memory. */
static int cache_add(att_state *s, att_plan *p) {
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        att_plan **items = (att_plan **)realloc(s->plans, cap * sizeof *items);
        if (!items) return -1;
        s->plans = items;
        s->cap = cap;
    }
    s->plans[s->count++] = p;
    return 0;
}

/* The plan for key, built on first use; NULL when cuDNN cannot run this shape, with the reason in
 * why and *first = 1 the first time. The refusal is remembered, so that the build is tried and the
 * refusal named once per shape. */
static att_plan *get_plan(att_state *s, const plan_key *key, const char *op, const char *shape_why, char *why,
                          size_t why_len, int *first) {
    for (int i = 0; i < s->count; i++)
        if (memcmp(&s->plans[i]->key, key, sizeof *key) == 0) {
            if (s->plans[i]->refused) snprintf(why, why_len, "refused before");
            return s->plans[i]->c.plan ? s->plans[i] : NULL;
        }
    if (s->count >= MAX_PLANS) {
        snprintf(why, why_len, "the cuDNN plan cache is full (MAX_PLANS shapes)");
        *first = !s->warned_full;
        s->warned_full = 1;
        return NULL;
    }
    att_plan *p = NULL;
    if (shape_why) {
        snprintf(why, why_len, "%s", shape_why);
    } else {
        p = build_plan(s->handle, key, why, why_len);
        if (p && cache_add(s, p) != 0) {
            plan_free(p);
            CUDA_UNSUPPORTED("%s: out of host memory for the cuDNN plan cache", op);
        }
        if (p) return p;
    }
    /* Remember the refusal (a plan record without a plan). */
    att_plan *r = (att_plan *)calloc(1, sizeof *r);
    if (!r) CUDA_UNSUPPORTED("%s: out of host memory for the cuDNN plan cache", op);
    r->key = *key;
    r->refused = 1;
    if (cache_add(s, r) != 0) CUDA_UNSUPPORTED("%s: out of host memory for the cuDNN plan cache", op);
    *first = 1;
    return NULL;
}

static plan_key make_key(int backward, int B, int T, int C, int NH) {
    plan_key k;
    memset(&k, 0, sizeof k); /* compared bytewise */
    k.backward = backward;
    k.B = B;
    k.T = T;
    k.C = C;
    k.NH = NH;
    return k;
}

/* ---- running ---- */

static size_t round256(size_t x) { return (x + 255) & ~(size_t)255; }

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Why cuDNN's fused attention cannot take this (valid) shape (a constant text), or NULL; fp32 mode
 * was refused when the backend was created. */
static const char *shape_refusal(int C, int NH) {
    int hs = C / NH;
    if (hs % 8 != 0 || hs > 256) return "head size C/NH is not a multiple of 8 at most 256";
    return NULL;
}

extern "C" void *cuda_attention_cudnn_plan(cuda_ctx *ctx, const char *op, int backward, int B, int T, int C, int NH,
                                          const void *const *ptrs, int nptrs, char *why, size_t why_len,
                                          int *first) {
    att_state *s = (att_state *)ctx->cudnn_att;
    if (!s) CUDA_UNSUPPORTED("%s: the cuDNN attention state is missing (backend created without EXITRL_ATTENTION=cudnn)", op);
    plan_key key = make_key(backward, B, T, C, NH);
    *first = 0;
    for (int i = 0; i < nptrs; i++)
        if (!aligned16(ptrs[i])) { /* named once per backend */
            snprintf(why, why_len, "a tensor pointer is not 16-byte aligned");
            *first = !s->warned_align;
            s->warned_align = 1;
            return NULL;
        }
    return get_plan(s, &key, op, shape_refusal(C, NH), why, why_len, first);
}

/* Binds the tensors to memory and runs the plan on the backend's stream. */
static void execute(cuda_ctx *ctx, att_plan *p, int n, const int64_t *uids, void **ptrs, void *workspace,
                    const char *op) {
    att_state *s = (att_state *)ctx->cudnn_att;
    cudnnBackendDescriptor_t pack = NULL;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace));
    CUDNN_CHECK(cudnnBackendFinalize(pack));
    CUDNN_CHECK(cudnnBackendExecute(s->handle, p->c.plan, pack));
    /* The variant pack is host-side state, read when the work is enqueued. */
    CUDNN_CHECK(cudnnBackendDestroyDescriptor(pack));
    CUDA_AFTER_LAUNCH(ctx, op);
}

extern "C" void cuda_attention_cudnn_forward(cuda_ctx *ctx, void *plan, void *out, float *lse, const void *qkv, int B,
                                             int T, int C, int NH) {
    const char *op = "attention_forward";
    att_plan *p = (att_plan *)plan;

    /* Stats go straight to lse when it is aligned, else (and when lse is NULL) through scratch. */
    size_t ws = round256((size_t)p->c.workspace), stats_bytes = (size_t)B * NH * T * sizeof(float);
    int direct = lse && aligned16(lse);
    char *scratch = (char *)cuda_scratch(ctx, SCRATCH_CUDNN, ws + (direct ? 0 : round256(stats_bytes)) + 256);
    float *stats = direct ? lse : (float *)(scratch + ws);

    const uint16_t *base = (const uint16_t *)qkv; /* bf16 storage, for element offsets */
    int64_t uids[] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_NEG_INF};
    void *ptrs[] = {(void *)base, (void *)(base + C), (void *)(base + 2 * (size_t)C), out, stats, &p->scale,
                    &p->neg_inf};
    execute(ctx, p, (int)(sizeof uids / sizeof uids[0]), uids, ptrs, scratch, op);
    if (lse && !direct)
        CUDA_CHECK(cudaMemcpyAsync(lse, stats, stats_bytes, cudaMemcpyDeviceToDevice, ctx->stream));
}

extern "C" void cuda_attention_cudnn_backward(cuda_ctx *ctx, void *plan, void *dqkv, const void *dout, const void *qkv,
                                              const void *out, const float *lse, int B, int T, int C, int NH) {
    const char *op = "attention_backward";
    att_plan *p = (att_plan *)plan;

    /* scratch: [cuDNN workspace | softmax_sum (fp32 B*NH*T) | dQ accumulator (fp32 B*NH*T*hs) |
     *           aligned copy of lse when lse is not 16-byte aligned] */
    size_t ws = round256((size_t)p->c.workspace), rows = (size_t)B * NH * T;
    size_t sum_bytes = round256(rows * sizeof(float)), acc_bytes = round256((size_t)B * T * C * sizeof(float));
    int direct = aligned16(lse);
    char *scratch = (char *)cuda_scratch(ctx, SCRATCH_CUDNN, ws + sum_bytes + acc_bytes + (direct ? 0 : sum_bytes));
    float *softmax_sum = (float *)(scratch + ws), *dq_accum = (float *)(scratch + ws + sum_bytes);
    const float *stats = lse;
    if (!direct) {
        float *copy = (float *)(scratch + ws + sum_bytes + acc_bytes);
        CUDA_CHECK(cudaMemcpyAsync(copy, lse, rows * sizeof(float), cudaMemcpyDeviceToDevice, ctx->stream));
        stats = copy;
    }
    /* cuDNN 9.6+ clears the accumulator itself (cudnn-frontend stopped doing it then); clearing it
     * here too costs microseconds and keeps dQ independent of that detail. */
    CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, (size_t)B * T * C * sizeof(float), ctx->stream));

    const uint16_t *q = (const uint16_t *)qkv; /* bf16 storage, for element offsets */
    uint16_t *dq = (uint16_t *)dqkv;
    int64_t uids[] = {UID_Q,  UID_K,  UID_V,     UID_O,       UID_DO,  UID_STATS,       UID_DQ,
                      UID_DK, UID_DV, UID_SCALE, UID_NEG_INF, UID_ONE, UID_SOFTMAX_SUM, UID_DQ_ACCUM};
    void *ptrs[] = {(void *)q,     (void *)(q + C),  (void *)(q + 2 * (size_t)C), (void *)out,  (void *)dout,
                    (void *)stats, dq,               dq + C,                      dq + 2 * (size_t)C, &p->scale,
                    &p->neg_inf,   &p->one,          softmax_sum,                 dq_accum};
    execute(ctx, p, (int)(sizeof uids / sizeof uids[0]), uids, ptrs, scratch, op);
}

/* ---- lifetime ---- */

extern "C" int cuda_attention_cudnn_available(char *why, size_t why_len) { return version_ok(why, why_len); }

extern "C" void cuda_attention_cudnn_release(cuda_ctx *ctx) {
    att_state *s = (att_state *)ctx->cudnn_att;
    if (!s) return;
    for (int i = 0; i < s->count; i++) plan_free(s->plans[i]);
    free(s->plans);
    if (s->handle) cudnnDestroy(s->handle);
    free(s);
    ctx->cudnn_att = NULL;
}

extern "C" int cuda_attention_cudnn_init(cuda_ctx *ctx, char *why, size_t why_len) {
    /* (The fp32 mode was refused before: cuda_attention_select.) */
    char reason[512];
    if (!version_ok(reason, sizeof reason)) {
        snprintf(why, why_len, "EXITRL_ATTENTION=cudnn is unavailable: %s; use EXITRL_ATTENTION=flash", reason);
        return -1;
    }
    att_state *s = (att_state *)calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, why_len, "EXITRL_ATTENTION=cudnn: out of host memory");
        return -1;
    }
    ctx->cudnn_att = s;
    cudnnStatus_t st = cudnnCreate(&s->handle);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(s->handle, ctx->stream);
    if (st != CUDNN_STATUS_SUCCESS) {
        char last[512] = "";
        cudnnGetLastErrorString(last, sizeof last);
        snprintf(why, why_len, "EXITRL_ATTENTION=cudnn: cudnnCreate/cudnnSetStream failed: %s%s%s",
                 cudnnGetErrorString(st), last[0] ? ": " : "", last);
        cuda_attention_cudnn_release(ctx);
        return -1;
    }
    /* Probe: a small forward and backward graph must find an engine on this GPU. Their plans stay
     * in the cache. */
    for (int backward = 0; backward <= 1; backward++) {
        plan_key key = make_key(backward, 1, 128, 64, 1);
        char reason[2048];
        att_plan *p = build_plan(s->handle, &key, reason, sizeof reason);
        if (!p) {
            snprintf(why, why_len, "EXITRL_ATTENTION=cudnn: %s", reason);
            cuda_attention_cudnn_release(ctx);
            return -1;
        }
        if (cache_add(s, p) != 0) {
            plan_free(p);
            snprintf(why, why_len, "EXITRL_ATTENTION=cudnn: out of host memory");
            cuda_attention_cudnn_release(ctx);
            return -1;
        }
    }
    return 0;
}

#endif
