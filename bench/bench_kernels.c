/* Per-kernel benchmark of the CUDA backend at the training shapes of a model preset (default
 * gpt2-124m, B=16, T=1024: N = 16384 rows, C = 768, 12 heads of 64): each op of kernels/ops.h that
 * a training step spends its time in, called through the backend struct and timed with CUDA events
 * on the backend's stream (warmup, then the median of --reps calls, the L2 cache flushed before
 * each call so no call reads what the previous one left there).
 *
 * Peers, measured in the same run:
 *   cublas            matmuls: plain cublasGemmEx on the same shapes, bf16 in, fp32 compute, no
 *                     epilogue (no bias, no GELU); the backward is the dinp and dweight GEMMs
 *                     (dweight accumulated in fp32, like ours) without dbias
 *   cudnn             attention: the backend's cuDNN fused attention (EXITRL_ATTENTION=cudnn, a
 *                     second backend), recorded as unavailable with the reason when it cannot open
 *   simt              attention: our CUDA-core flash kernels in bf16 (EXITRL_ATTENTION=simt), what
 *                     the default tensor-core kernels replace
 *   torch.eager,      the other ops and attention: the equivalent PyTorch ops on the GPU in bf16
 *   torch.sdpa.*      (bench/peers/kernels_torch.py, run by the Python interpreter afterwards)
 *   roofline          every line records the op's minimum bytes over the peak DRAM bandwidth
 *                     (memory clock x bus width) and, for matmuls and attention, its FLOPs over the
 *                     dense bf16 tensor peak: roofline_ms is the larger, roofline_fraction =
 *                     roofline_ms / our ms (1 = at the roofline)
 * Causal attention FLOPs: forward 2 * 2 * B * NH * T * T * hs / 2 (QK^T and PV over the lower
 * triangle), backward 2.5 x the forward. The measured ceilings of the card (a device-to-device copy
 * and an 8192^3 bf16 GEMM) are recorded too, as kernel.ceiling_copy and kernel.ceiling_gemm.
 *
 * Appends one JSONL object per (op, peer) to bench/results/kernels_gpu.jsonl: value = our ms,
 * peer_value = the peer's ms, ratio = peer ms / our ms (higher is better). Without a GPU it says
 * so and exits 0: it is a benchmark, not a test. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "model/model.h"
#include "ops.h"

typedef struct {
    const char *config, *out, *python;
    int batch, seq, vocab, reps, warmup, peer, quick;
} bench_opts;

static const char ABOUT[] =
    "Times each training op of the CUDA backend at a model's training shapes against cuBLAS,\n"
    "cuDNN and PyTorch, with DRAM / tensor-core rooflines; appends JSONL results.\n"
    "Without a GPU it prints that nothing was measured and exits 0.\n";

static void parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){"gpt2-124m", NULL, NULL, 16, 1024, 0, 30, 3, 1, 0};
    const bench_option opts[] = {
        BENCH_OPT_STRING("--config", "NAME", &o->config, "model preset (default gpt2-124m)"),
        BENCH_OPT_INT("--batch", "B", &o->batch, 1, "sequences (default 16)"),
        BENCH_OPT_INT("--seq", "T", &o->seq, 1, "sequence length (default 1024)"),
        BENCH_OPT_INT("--vocab", "V", &o->vocab, 1,
                      "real vocabulary instead of the preset's, e.g. 50257 (padded: V\nrounded up to 128)"),
        BENCH_OPT_INT("--reps", "N", &o->reps, 1, "timed calls per op (default 30; the median is recorded)"),
        BENCH_OPT_INT("--warmup", "N", &o->warmup, 0, "untimed calls first (default 3)"),
        BENCH_OPT_OUT(&o->out, "(default bench/results/kernels_gpu.jsonl)"),
        BENCH_OPT_PYTHON(&o->python, "the PyTorch peers"),
        BENCH_OPT_NO_PEER(&o->peer, "skip the PyTorch peers (cuBLAS and cuDNN still run)"),
        BENCH_OPT_QUICK(&o->quick, "smoke test of the program: tiny, B=2, T=32, 2 calls after 1 warmup,\n"
                                   "small ceilings; appends only when --out is given"),
        {0},
    };
    bench_parse_options(argc, argv, opts, ABOUT);
    if (o->quick) {
        o->config = "tiny";
        o->batch = 2;
        o->seq = 32;
        o->reps = 2;
        o->warmup = 1;
    }
}

#ifndef EXITRL_HAVE_CUDA
int main(int argc, char **argv) {
    bench_program = "bench_kernels";
    bench_opts o;
    parse_args(argc, argv, &o); /* --help and option errors as in a CUDA build */
    printf("bench_kernels: this build has no CUDA backend: nothing measured\n");
    return 0;
}
#else
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda/cuda_backend.h" /* the backend's stream, so events time exactly its work */

#define PEER_SCRIPT bench_peer_script("kernels_torch.py")
#define FLUSH_BYTES ((size_t)256 << 20) /* several times any L2 so far (H100 50 MB, H200 60 MB) */
#define QUICK_FLUSH_BYTES ((size_t)16 << 20)
#define POOL 4194304                    /* random values uploaded per chunk */
#define MAX_PEERS 6
#define ATT_TARGET "ratio >= 1: our attention at least as fast as cuDNN fused attention (T=1024, hs=64)"

#define CHECK_CUDA(call)                                                                         \
    do {                                                                                         \
        cudaError_t e_ = (call);                                                                 \
        if (e_ != cudaSuccess) {                                                                 \
            fprintf(stderr, "bench_kernels: %s failed: %s\n", #call, cudaGetErrorString(e_));   \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)
#define CHECK_CUBLAS(call)                                                                       \
    do {                                                                                         \
        cublasStatus_t s_ = (call);                                                              \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                       \
            fprintf(stderr, "bench_kernels: %s failed: %s\n", #call, cuda_cublas_status_text(s_)); \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

/* ---- device buffers, filled with random values (never zeros: they can run faster) ---- */

typedef struct {
    int B, T, C, NH, V, Vp, N;
    size_t P;           /* parameters of the model, for the optimizer ops */
    size_t flush_bytes; /* the L2 flush before each timed call */
    /* matmuls: x [N, 4C] in, y [N, max(4C, Vp)] out, pre [N, 4C] pre-GELU, dy like y, dy0 the
     * pristine dy (the GELU backward overwrites dy), dx [N, 4C]; w / dw up to [max(4C, Vp), C] */
    void *x, *y, *pre, *dy, *dy0, *dx, *w, *bias;
    float *dw, *dbias;
    /* attention */
    void *qkv, *att, *datt, *dqkv;
    float *lse;
    /* LayerNorm */
    void *ln_in, *ln_a, *ln_res, *ln_out, *ln_w, *ln_b, *ln_dout, *ln_dinp;
    float *mean, *rstd, *ln_dw, *ln_db;
    /* classifier */
    void *logits, *logits0;
    int *targets, *tokens;
    float *losses, *loss_w;
    /* encoder */
    void *wte, *wpe, *enc_out, *enc_dout;
    float *dwte, *dwpe;
    /* optimizer */
    float *master, *grads, *adam_m, *adam_v;
    float *step_vals; /* the optimizer's step values (ops.h EXITRL_STEP_*) */
    void *params_act;
    /* scratch */
    float *staging;
    void *flush, *flush2;
} bufs;

static float *host_pool;

static void make_pool(void) {
    host_pool = malloc(sizeof(float) * POOL);
    if (!host_pool) {
        fprintf(stderr, "bench_kernels: out of host memory\n");
        exit(1);
    }
    uint64_t s = 0x2545F4914F6CDD1DULL;
    for (int i = 0; i < POOL; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        host_pool[i] = (float)((s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; /* [-1, 1) */
    }
}

static void *dev_alloc(exitrl_backend *be, size_t bytes) {
    void *p = be->alloc(be, bytes);
    if (!p) exit(1); /* the backend printed the size */
    return p;
}

/* Fills n fp32 (act = 0) or act-dtype (act = 1) values with offset + scale * u, u uniform in
 * [-1, 1), from the pool at an offset that moves with `seed`. */
static void fill(exitrl_backend *be, bufs *k, void *dst, size_t n, float scale, float offset, int act, int seed) {
    float *tmp = malloc(sizeof(float) * POOL);
    if (!tmp) {
        fprintf(stderr, "bench_kernels: out of host memory\n");
        exit(1);
    }
    const size_t esz = act ? exitrl_dtype_size(be->act_dtype) : sizeof(float);
    for (size_t done = 0, chunk = 0; done < n; chunk++) {
        size_t len = n - done < POOL ? n - done : POOL;
        size_t shift = ((size_t)seed * 7919 + chunk * 104729) % POOL;
        for (size_t i = 0; i < len; i++) tmp[i] = offset + scale * host_pool[(i + shift) % POOL];
        if (act) {
            be->upload(be, k->staging, tmp, len * sizeof(float));
            be->f32_to_act(be, (char *)dst + done * esz, k->staging, len);
        } else {
            be->upload(be, (char *)dst + done * esz, tmp, len * sizeof(float));
        }
        done += len;
    }
    free(tmp);
}

static void fill_ints(exitrl_backend *be, int *dst, int n, int bound, uint64_t seed) {
    int *h = malloc(sizeof(int) * (size_t)n);
    if (!h) {
        fprintf(stderr, "bench_kernels: out of host memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        h[i] = (int)((seed >> 33) % (uint64_t)bound);
    }
    be->upload(be, dst, h, sizeof(int) * (size_t)n);
    free(h);
}

static void alloc_bufs(exitrl_backend *be, bufs *k) {
    const size_t a = exitrl_dtype_size(be->act_dtype), N = k->N, C = k->C, Vp = k->Vp;
    const size_t wide = 4 * C > Vp ? 4 * C : Vp, f = sizeof(float);
    k->staging = dev_alloc(be, f * POOL);
    k->flush = dev_alloc(be, k->flush_bytes);
    k->flush2 = dev_alloc(be, k->flush_bytes);

    k->x = dev_alloc(be, a * N * 4 * C);
    k->y = dev_alloc(be, a * N * wide);
    k->pre = dev_alloc(be, a * N * 4 * C);
    k->dy = dev_alloc(be, a * N * wide);
    k->dy0 = dev_alloc(be, a * N * wide);
    k->dx = dev_alloc(be, a * N * 4 * C);
    k->w = dev_alloc(be, a * wide * C);
    k->bias = dev_alloc(be, a * 4 * C);
    k->dw = dev_alloc(be, f * wide * C);
    k->dbias = dev_alloc(be, f * 4 * C);
    fill(be, k, k->x, N * 4 * C, 1.0f, 0.0f, 1, 1);
    fill(be, k, k->pre, N * 4 * C, 1.0f, 0.0f, 1, 2);
    fill(be, k, k->dy0, N * wide, 0.01f, 0.0f, 1, 3);
    fill(be, k, k->w, wide * C, 0.02f, 0.0f, 1, 4);
    fill(be, k, k->bias, 4 * C, 0.02f, 0.0f, 1, 5);
    be->copy(be, k->dy, k->dy0, a * N * wide);

    k->qkv = dev_alloc(be, a * N * 3 * C);
    k->att = dev_alloc(be, a * N * C);
    k->datt = dev_alloc(be, a * N * C);
    k->dqkv = dev_alloc(be, a * N * 3 * C);
    k->lse = dev_alloc(be, f * (size_t)k->B * k->NH * k->T);
    fill(be, k, k->qkv, N * 3 * C, 1.0f, 0.0f, 1, 6);
    fill(be, k, k->datt, N * C, 0.01f, 0.0f, 1, 7);

    k->ln_in = dev_alloc(be, a * N * C);
    k->ln_a = dev_alloc(be, a * N * C);
    k->ln_res = dev_alloc(be, a * N * C);
    k->ln_out = dev_alloc(be, a * N * C);
    k->ln_w = dev_alloc(be, a * C);
    k->ln_b = dev_alloc(be, a * C);
    k->ln_dout = dev_alloc(be, a * N * C);
    k->ln_dinp = dev_alloc(be, a * N * C);
    k->mean = dev_alloc(be, f * N);
    k->rstd = dev_alloc(be, f * N);
    k->ln_dw = dev_alloc(be, f * C);
    k->ln_db = dev_alloc(be, f * C);
    fill(be, k, k->ln_in, N * C, 1.0f, 0.0f, 1, 8);
    fill(be, k, k->ln_a, N * C, 1.0f, 0.0f, 1, 9);
    fill(be, k, k->ln_w, C, 0.1f, 1.0f, 1, 10);
    fill(be, k, k->ln_b, C, 0.1f, 0.0f, 1, 11);
    fill(be, k, k->ln_dout, N * C, 0.01f, 0.0f, 1, 12);

    k->logits = dev_alloc(be, a * N * Vp);
    k->logits0 = dev_alloc(be, a * N * Vp);
    k->targets = dev_alloc(be, sizeof(int) * N);
    k->tokens = dev_alloc(be, sizeof(int) * N);
    k->losses = dev_alloc(be, f * N);
    k->loss_w = dev_alloc(be, f * N);
    fill(be, k, k->logits0, N * Vp, 4.0f, 0.0f, 1, 13);
    fill(be, k, k->loss_w, N, 0.0f, 1.0f / (float)N, 0, 14);
    fill_ints(be, k->targets, k->N, k->V, 15);
    fill_ints(be, k->tokens, k->N, k->V, 16);

    k->wte = dev_alloc(be, a * Vp * C);
    k->wpe = dev_alloc(be, a * (size_t)k->T * C);
    k->enc_out = dev_alloc(be, a * N * C);
    k->enc_dout = dev_alloc(be, a * N * C);
    k->dwte = dev_alloc(be, f * Vp * C);
    k->dwpe = dev_alloc(be, f * (size_t)k->T * C);
    fill(be, k, k->wte, Vp * C, 0.02f, 0.0f, 1, 17);
    fill(be, k, k->wpe, (size_t)k->T * C, 0.02f, 0.0f, 1, 18);
    fill(be, k, k->enc_dout, N * C, 0.01f, 0.0f, 1, 19);

    k->master = dev_alloc(be, f * k->P);
    k->grads = dev_alloc(be, f * k->P);
    k->adam_m = dev_alloc(be, f * k->P);
    k->adam_v = dev_alloc(be, f * k->P);
    k->params_act = dev_alloc(be, a * k->P);
    k->step_vals = dev_alloc(be, sizeof(float) * EXITRL_STEP_NVALS);
    float vals[EXITRL_STEP_NVALS];
    exitrl_step_vals_set(vals, 3e-4f, 10, 0.9f, 0.95f);
    be->upload(be, k->step_vals, vals, sizeof vals);
    fill(be, k, k->master, k->P, 0.02f, 0.0f, 0, 20);
    fill(be, k, k->grads, k->P, 0.001f, 0.0f, 0, 21);
    fill(be, k, k->adam_m, k->P, 0.0001f, 0.0f, 0, 22);
    fill(be, k, k->adam_v, k->P, 1e-7f, 1e-7f, 0, 23); /* second moments are >= 0 */
    be->sync(be);
}

/* ---- the ops ---- */

enum { IMPL_OURS, IMPL_CUBLAS, IMPL_OTHER_BACKEND };

typedef enum {
    OP_ENCODER_FWD, OP_ENCODER_BWD, OP_LN_FWD, OP_RESLN_FWD, OP_LN_BWD,
    OP_MM_FWD_QKV, OP_MM_FWD_ATTPROJ, OP_MM_FWD_FC, OP_MM_FWD_FCPROJ, OP_MM_FWD_LMHEAD,
    OP_MM_BWD_QKV, OP_MM_BWD_ATTPROJ, OP_MM_BWD_FC, OP_MM_BWD_FCPROJ, OP_MM_BWD_LMHEAD,
    OP_ATT_FWD, OP_ATT_BWD, OP_CLASSIFIER, OP_ADAMW, OP_GRADNORM, N_OPS
} op_id;

static const char *const OP_NAMES[N_OPS] = {
    "encoder_forward", "encoder_backward", "layernorm_forward", "residual_layernorm_forward",
    "layernorm_backward", "matmul_forward.qkv", "matmul_forward.attproj", "matmul_forward.fc_gelu",
    "matmul_forward.fcproj", "matmul_forward.lm_head", "matmul_backward.qkv", "matmul_backward.attproj",
    "matmul_backward.fc_gelu", "matmul_backward.fcproj", "matmul_backward.lm_head", "attention_forward",
    "attention_backward", "classifier_forward_backward", "adamw_update", "grad_norm_clip"};

/* A matmul of the model: inputs C_in, outputs OC, with a bias and / or GELU. */
typedef struct {
    int C, OC, bias, gelu;
} mm_shape;

static mm_shape mm_of(const bufs *k, op_id op) {
    const int C = k->C;
    switch (op) {
    case OP_MM_FWD_QKV: case OP_MM_BWD_QKV: return (mm_shape){C, 3 * C, 1, 0};
    case OP_MM_FWD_ATTPROJ: case OP_MM_BWD_ATTPROJ: return (mm_shape){C, C, 1, 0};
    case OP_MM_FWD_FC: case OP_MM_BWD_FC: return (mm_shape){C, 4 * C, 1, 1};
    case OP_MM_FWD_FCPROJ: case OP_MM_BWD_FCPROJ: return (mm_shape){4 * C, C, 1, 0};
    default: return (mm_shape){C, k->Vp, 0, 0}; /* the tied lm head: no bias */
    }
}

static int is_mm_fwd(op_id op) { return op >= OP_MM_FWD_QKV && op <= OP_MM_FWD_LMHEAD; }
static int is_mm_bwd(op_id op) { return op >= OP_MM_BWD_QKV && op <= OP_MM_BWD_LMHEAD; }

typedef struct {
    exitrl_backend *be;
    bufs *k;
    cublasHandle_t blas;
    op_id op;
    int impl;
} op_call;

static void gemm_bf16(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int kk,
                      const void *A, int lda, const void *B, int ldb, float beta, void *Cm, int ldc, int c_f32) {
    const float one = 1.0f;
    CHECK_CUBLAS(cublasGemmEx(h, ta, tb, m, n, kk, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, Cm,
                              c_f32 ? CUDA_R_32F : CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* Undoes what a call changed in place that would change the next call's work (outside timing). */
static void prepare(const op_call *c, cudaStream_t s) {
    bufs *k = c->k;
    const size_t a = exitrl_dtype_size(c->be->act_dtype);
    if (c->op == OP_CLASSIFIER)
        CHECK_CUDA(cudaMemcpyAsync(k->logits, k->logits0, a * k->N * k->Vp, cudaMemcpyDeviceToDevice, s));
    if (is_mm_bwd(c->op) && mm_of(k, c->op).gelu)
        CHECK_CUDA(cudaMemcpyAsync(k->dy, k->dy0, a * k->N * 4 * k->C, cudaMemcpyDeviceToDevice, s));
}

static void run(op_call *c) {
    exitrl_backend *be = c->be;
    bufs *k = c->k;
    const int N = k->N, C = k->C;
    if (is_mm_fwd(c->op) || is_mm_bwd(c->op)) {
        mm_shape m = mm_of(k, c->op);
        const void *w = c->op == OP_MM_FWD_LMHEAD || c->op == OP_MM_BWD_LMHEAD ? k->wte : k->w;
        if (c->impl == IMPL_CUBLAS && is_mm_fwd(c->op)) {
            gemm_bf16(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, m.OC, N, m.C, w, m.C, k->x, m.C, 0.0f, k->y, m.OC, 0);
        } else if (c->impl == IMPL_CUBLAS) {
            gemm_bf16(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, m.C, N, m.OC, w, m.C, k->dy, m.OC, 0.0f, k->dx, m.C, 0);
            gemm_bf16(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, m.C, m.OC, N, k->x, m.C, k->dy, m.OC, 1.0f, k->dw, m.C, 1);
        } else if (is_mm_fwd(c->op)) {
            be->matmul_forward(be, k->y, m.gelu ? k->pre : NULL, k->x, w, m.bias ? k->bias : NULL, N, m.C, m.OC);
        } else {
            be->matmul_backward(be, k->dx, k->dw, m.bias ? k->dbias : NULL, k->dy, k->x, w, m.gelu ? k->pre : NULL, N,
                                m.C, m.OC);
        }
        return;
    }
    switch (c->op) {
    case OP_ENCODER_FWD: be->encoder_forward(be, k->enc_out, k->tokens, k->wte, k->wpe, k->B, k->T, C); break;
    case OP_ENCODER_BWD: be->encoder_backward(be, k->dwte, k->dwpe, k->enc_dout, k->tokens, k->B, k->T, C); break;
    case OP_LN_FWD: be->layernorm_forward(be, k->ln_out, k->mean, k->rstd, k->ln_in, k->ln_w, k->ln_b, N, C); break;
    case OP_RESLN_FWD:
        be->residual_layernorm_forward(be, k->ln_res, k->ln_out, k->mean, k->rstd, k->ln_in, k->ln_a, k->ln_w,
                                       k->ln_b, N, C);
        break;
    case OP_LN_BWD:
        be->layernorm_backward(be, k->ln_dinp, k->ln_dw, k->ln_db, k->ln_dout, k->ln_in, k->ln_w, k->mean, k->rstd,
                               N, C);
        break;
    case OP_ATT_FWD: be->attention_forward(be, k->att, k->lse, k->qkv, k->B, k->T, C, k->NH); break;
    case OP_ATT_BWD:
        be->attention_backward(be, k->dqkv, k->datt, k->qkv, k->att, k->lse, k->B, k->T, C, k->NH);
        break;
    case OP_CLASSIFIER:
        be->classifier_forward_backward(be, k->logits, k->losses, k->loss_w, k->targets, N, k->V, k->Vp);
        break;
    case OP_ADAMW:
        be->adamw_update(be, k->master, k->params_act, k->grads, k->adam_m, k->adam_v, k->P, k->step_vals, 0.9f,
                         0.95f, 1e-8f, 0.1f);
        break;
    case OP_GRADNORM: be->grad_norm_clip(be, k->step_vals, k->grads, k->P, 0.0f); break;
    default: break;
    }
}

/* Median milliseconds of reps calls after warmup calls, each timed with events on stream s and
 * preceded (outside the events) by prepare() and an L2 flush. */
static double time_op(op_call *c, cudaStream_t s, int reps, int warmup) {
    for (int i = 0; i < warmup; i++) {
        prepare(c, s);
        run(c);
    }
    cudaEvent_t *ev = malloc(sizeof(cudaEvent_t) * 2 * reps);
    double *ms = malloc(sizeof(double) * reps);
    if (!ev || !ms) {
        fprintf(stderr, "bench_kernels: out of host memory\n");
        exit(1);
    }
    for (int i = 0; i < 2 * reps; i++) CHECK_CUDA(cudaEventCreate(&ev[i]));
    for (int r = 0; r < reps; r++) {
        prepare(c, s);
        CHECK_CUDA(cudaMemsetAsync(c->k->flush, r & 0xff, c->k->flush_bytes, s));
        CHECK_CUDA(cudaEventRecord(ev[2 * r], s));
        run(c);
        CHECK_CUDA(cudaEventRecord(ev[2 * r + 1], s));
    }
    c->be->sync(c->be); /* also reports a bad input a kernel flagged */
    CHECK_CUDA(cudaStreamSynchronize(s));
    for (int r = 0; r < reps; r++) {
        float t = 0;
        CHECK_CUDA(cudaEventElapsedTime(&t, ev[2 * r], ev[2 * r + 1]));
        ms[r] = t;
    }
    double med = bench_median(ms, reps);
    for (int i = 0; i < 2 * reps; i++) cudaEventDestroy(ev[i]);
    free(ev);
    free(ms);
    return med;
}

/* Minimum bytes each op must move through DRAM (each input read once, each output written once)
 * and its FLOPs (only matmuls and attention count against the tensor peak). */
static void op_cost(const bufs *k, op_id op, double act, double *bytes, double *flops) {
    const double N = k->N, C = k->C, Vp = k->Vp, V = k->V, T = k->T, f = 4;
    const double lse = (double)k->B * k->NH * T * f, hs = C / k->NH;
    const double att_fwd = 2.0 * 2.0 * k->B * k->NH * T * T * hs / 2.0;
    *flops = 0;
    if (is_mm_fwd(op) || is_mm_bwd(op)) {
        mm_shape m = mm_of(k, op);
        if (is_mm_fwd(op)) {
            *bytes = act * (N * m.C + (double)m.OC * m.C + (m.bias ? m.OC : 0) + N * m.OC * (m.gelu ? 2 : 1));
            *flops = 2.0 * N * m.C * m.OC;
        } else {
            *bytes = act * (N * m.OC + N * m.C + (double)m.OC * m.C + N * m.C) + 2 * f * (double)m.OC * m.C +
                     (m.bias ? 2 * f * m.OC : 0) + (m.gelu ? act * 2 * N * m.OC : 0);
            *flops = 4.0 * N * m.C * m.OC;
        }
        return;
    }
    const double rows = N < Vp ? N : Vp;
    switch (op) {
    case OP_ENCODER_FWD: *bytes = N * 4 + act * (N * C + T * C + N * C); break;
    case OP_ENCODER_BWD: *bytes = act * N * C + N * 4 + 2 * f * rows * C + 2 * f * T * C; break;
    case OP_LN_FWD: *bytes = act * (2 * N * C + 2 * C) + 2 * N * f; break;
    case OP_RESLN_FWD: *bytes = act * (4 * N * C + 2 * C) + 2 * N * f; break;
    case OP_LN_BWD: *bytes = act * (4 * N * C + C) + 2 * N * f + 4 * C * f; break;
    case OP_ATT_FWD: *bytes = act * 4 * N * C + lse; *flops = att_fwd; break;
    case OP_ATT_BWD: *bytes = act * 8 * N * C + lse; *flops = 2.5 * att_fwd; break;
    case OP_CLASSIFIER: *bytes = act * (N * V + N * Vp) + 3 * N * 4; break;
    case OP_ADAMW: *bytes = (double)k->P * (7 * f + act); break;
    case OP_GRADNORM: *bytes = (double)k->P * f; break;
    default: *bytes = 0; break;
    }
}

/* ---- results ---- */

typedef struct {
    char name[32], impl[160], unavailable[256];
    double ms, check_diff; /* check_diff: max |ours - peer| of the output, or -1 */
} peer_entry;

typedef struct {
    double ms, bytes, flops;
    peer_entry peers[MAX_PEERS];
    int n_peers;
} op_result;

static peer_entry *add_peer(op_result *r, const char *name) {
    if (r->n_peers == MAX_PEERS) return NULL;
    peer_entry *p = &r->peers[r->n_peers++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ms = -1;
    p->check_diff = -1;
    return p;
}

static float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The attention output as floats on the host (to compare the two implementations). */
static float *download_att(exitrl_backend *be, const bufs *k) {
    const size_t n = (size_t)k->N * k->C;
    uint16_t *raw = malloc(n * sizeof(uint16_t));
    float *out = malloc(n * sizeof(float));
    if (!raw || !out) {
        fprintf(stderr, "bench_kernels: out of host memory\n");
        exit(1);
    }
    be->download(be, raw, k->att, n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) out[i] = bf16_to_float(raw[i]);
    free(raw);
    return out;
}

/* Times attention forward and backward on a second backend created with EXITRL_ATTENTION=env, as the
 * peers pf, pb of ours (whose forward output is `ours`), or records why that backend cannot open. */
static void time_attention_peer(exitrl_backend *be, bufs *k, cublasHandle_t blas, const float *ours, const char *env,
                                peer_entry *pf, peer_entry *pb, const bench_opts *o) {
    snprintf(pf->impl, sizeof pf->impl, "exitrl CUDA backend with EXITRL_ATTENTION=%s", env);
    snprintf(pb->impl, sizeof pb->impl, "%s", pf->impl);
    char why[256] = "";
    setenv("EXITRL_ATTENTION", env, 1);
    exitrl_backend *be2 = exitrl_backend_cuda_create(0, 0, why, sizeof why);
    unsetenv("EXITRL_ATTENTION");
    if (!be2) {
        snprintf(pf->unavailable, sizeof pf->unavailable, "%s", why[0] ? why : "backend creation failed");
        snprintf(pb->unavailable, sizeof pb->unavailable, "%s", pf->unavailable);
        return;
    }
    be->sync(be);
    cudaStream_t s2 = CUDA_CTX(be2)->stream;
    op_call c2 = {be2, k, blas, OP_ATT_FWD, IMPL_OTHER_BACKEND};
    pf->ms = time_op(&c2, s2, o->reps, o->warmup);
    const int fell_fwd = cuda_attention_cudnn_fallbacks(CUDA_CTX(be2));
    float *theirs = download_att(be2, k);
    double diff = 0;
    for (size_t i = 0; i < (size_t)k->N * k->C; i++) diff = fmax(diff, fabs((double)ours[i] - theirs[i]));
    pf->check_diff = diff;
    free(theirs);
    c2.op = OP_ATT_BWD; /* from that backend's own forward outputs, just computed */
    pb->ms = time_op(&c2, s2, o->reps, o->warmup);
    /* A shape cuDNN refused ran the flash kernels (named on stderr): not a cuDNN timing. */
    const int fell_bwd = cuda_attention_cudnn_fallbacks(CUDA_CTX(be2)) - fell_fwd;
    if (fell_fwd)
        snprintf(pf->unavailable, sizeof pf->unavailable,
                 "cuDNN refused this shape (reason on stderr); the flash kernels ran instead");
    if (fell_bwd)
        snprintf(pb->unavailable, sizeof pb->unavailable,
                 "cuDNN refused this shape (reason on stderr); the flash kernels ran instead");
    be2->destroy(be2);
}

/* Runs the PyTorch peer script and attaches its figures to the ops by name. Returns 0 or -1. */
static int run_torch_peers(const char *python, const bufs *k, const bench_opts *o, op_result *res) {
    char cmd[2048], line[1024];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' --B %d --T %d --C %d --NH %d --V %d --Vp %d --params %zu --reps %d --warmup %d",
             python, PEER_SCRIPT, k->B, k->T, k->C, k->NH, k->V, k->Vp, k->P, o->reps, o->warmup);
    FILE *p = bench_peer_open(cmd, "PyTorch peer");
    if (!p) return -1;
    int found = 0;
    while (fgets(line, sizeof line, p)) {
        char op[64], peer[32], text[160], skip[256];
        if (!bench_json_text(line, "op", op, sizeof op) || !bench_json_text(line, "peer", peer, sizeof peer)) continue;
        bench_json_text(line, "peer_op", text, sizeof text);
        bench_json_text(line, "skipped", skip, sizeof skip);
        for (int i = 0; i < N_OPS; i++) {
            if (strcmp(op, OP_NAMES[i])) continue;
            peer_entry *e = add_peer(&res[i], peer);
            if (!e) break;
            snprintf(e->impl, sizeof e->impl, "%s", text);
            if (skip[0]) snprintf(e->unavailable, sizeof e->unavailable, "%s", skip);
            else e->ms = bench_json_number(line, "ms");
            found++;
        }
    }
    int status = pclose(p);
    if (status != 0 || !found) {
        fprintf(stderr, "bench_kernels: the PyTorch peer failed (status %d): %s\n", status, cmd);
        return -1;
    }
    return 0;
}

typedef struct {
    FILE *out;
    const bench_run *run;
    const char *config;
    const bufs *k;
    const bench_opts *o;
    double bandwidth, peak, load;
} record;

static void write_head(const record *r, const char *bench) {
    FILE *f = r->out;
    const bufs *k = r->k;
    bench_json_head(f, bench, r->run, "cuda", "bf16", r->config);
    fprintf(f, ",\"B\":%d,\"T\":%d,\"N\":%d,\"C\":%d,\"NH\":%d,\"hs\":%d,\"V\":%d,\"Vp\":%d,\"params\":%zu,"
            "\"reps\":%d,\"loadavg_1m\":%.2f,\"bandwidth_gbs\":%.1f",
            k->B, k->T, k->N, k->C, k->NH, k->C / k->NH, k->V, k->Vp, k->P, r->o->reps, r->load,
            r->bandwidth * 1e-9);
    if (r->peak > 0) fprintf(f, ",\"peak_tflops\":%.1f", r->peak * 1e-12);
}

/* The op's roofline time, or -1 when the driver did not give the memory bandwidth. */
static double roofline_ms(const record *r, const op_result *x) {
    if (r->bandwidth <= 0) return -1;
    double t = x->bytes / r->bandwidth;
    if (x->flops > 0 && r->peak > 0 && x->flops / r->peak > t) t = x->flops / r->peak;
    return t * 1e3;
}

static void shape_text(const bufs *k, op_id op, char *buf, size_t n) {
    if (is_mm_fwd(op) || is_mm_bwd(op)) {
        mm_shape m = mm_of(k, op);
        snprintf(buf, n, "N=%d C=%d OC=%d%s%s", k->N, m.C, m.OC, m.bias ? " bias" : "", m.gelu ? " gelu" : "");
    } else if (op == OP_ATT_FWD || op == OP_ATT_BWD) {
        snprintf(buf, n, "B=%d T=%d NH=%d hs=%d causal", k->B, k->T, k->NH, k->C / k->NH);
    } else if (op == OP_CLASSIFIER) {
        snprintf(buf, n, "N=%d V=%d Vp=%d", k->N, k->V, k->Vp);
    } else if (op == OP_ADAMW || op == OP_GRADNORM) {
        snprintf(buf, n, "n=%zu", k->P);
    } else {
        snprintf(buf, n, "N=%d C=%d", k->N, k->C);
    }
}

/* One JSONL object for (op, peer); peer may be NULL (no peer ran). */
static void write_op(const record *r, op_id op, const op_result *x, const peer_entry *p) {
    FILE *f = r->out;
    char bench[64], shape[96];
    snprintf(bench, sizeof bench, "kernel.%s", OP_NAMES[op]);
    shape_text(r->k, op, shape, sizeof shape);
    write_head(r, bench);
    const double roof = roofline_ms(r, x);
    fprintf(f, ",\"shape\":\"%s\",\"bytes\":%.6g,\"flops\":%.6g,\"value\":%.4f,\"unit\":\"ms\"", shape, x->bytes,
            x->flops, x->ms);
    if (roof > 0) fprintf(f, ",\"roofline_ms\":%.4f,\"roofline_fraction\":%.4f", roof, roof / x->ms);
    if (x->bytes > 0) fprintf(f, ",\"achieved_gbs\":%.1f", x->bytes / x->ms * 1e-6);
    if (x->flops > 0) fprintf(f, ",\"achieved_tflops\":%.1f", x->flops / x->ms * 1e-9);
    const int attention = op == OP_ATT_FWD || op == OP_ATT_BWD;
    const int cudnn = p && (!strcmp(p->name, "cudnn") || !strcmp(p->name, "torch.sdpa.cudnn"));
    if (p) {
        fprintf(f, ",\"peer\":\"%s\"", p->name);
        if (p->impl[0]) {
            fprintf(f, ",\"peer_op\":");
            bench_json_string(f, p->impl);
        }
        if (p->unavailable[0]) {
            fprintf(f, ",\"peer_unavailable\":");
            bench_json_string(f, p->unavailable);
        } else {
            fprintf(f, ",\"peer_value\":%.4f,\"ratio\":%.4f", p->ms, p->ms / x->ms);
            if (roof > 0) fprintf(f, ",\"peer_roofline_fraction\":%.4f", roof / p->ms);
        }
        if (p->check_diff >= 0) fprintf(f, ",\"max_abs_diff_vs_peer\":%.4g", p->check_diff);
    }
    if (attention && cudnn) {
        fprintf(f, ",\"target\":\"%s\",\"met\":", ATT_TARGET);
        if (p->unavailable[0]) fprintf(f, "null");
        else fprintf(f, "%s", p->ms / x->ms >= 1.0 ? "true" : "false");
    }
    fprintf(f, "}\n");
}

/* The card's measured ceilings: a device-to-device copy and a large bf16 GEMM (G^3). */
static void measure_ceilings(exitrl_backend *be, bufs *k, cublasHandle_t blas, cudaStream_t s, const record *r,
                             int G) {
    cudaEvent_t e0, e1;
    CHECK_CUDA(cudaEventCreate(&e0));
    CHECK_CUDA(cudaEventCreate(&e1));
    double t[10];
    for (int i = 0; i < 12; i++) {
        CHECK_CUDA(cudaEventRecord(e0, s));
        CHECK_CUDA(cudaMemcpyAsync(k->flush2, k->flush, k->flush_bytes, cudaMemcpyDeviceToDevice, s));
        CHECK_CUDA(cudaEventRecord(e1, s));
        CHECK_CUDA(cudaEventSynchronize(e1));
        float ms;
        CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 2) t[i - 2] = ms;
    }
    const double copy_gbs = 2.0 * k->flush_bytes / bench_median(t, 10) * 1e-6;

    const size_t gb = (size_t)G * G * exitrl_dtype_size(be->act_dtype);
    void *A = dev_alloc(be, gb), *Bm = dev_alloc(be, gb), *Cm = dev_alloc(be, gb);
    fill(be, k, A, (size_t)G * G, 1.0f, 0.0f, 1, 30);
    fill(be, k, Bm, (size_t)G * G, 1.0f, 0.0f, 1, 31);
    for (int i = 0; i < 12; i++) {
        CHECK_CUDA(cudaEventRecord(e0, s));
        gemm_bf16(blas, CUBLAS_OP_T, CUBLAS_OP_N, G, G, G, A, G, Bm, G, 0.0f, Cm, G, 0);
        CHECK_CUDA(cudaEventRecord(e1, s));
        CHECK_CUDA(cudaEventSynchronize(e1));
        float ms;
        CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 2) t[i - 2] = ms;
    }
    const double gemm_tflops = 2.0 * G * (double)G * G / bench_median(t, 10) * 1e-9;
    be->free(be, A);
    be->free(be, Bm);
    be->free(be, Cm);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);

    write_head(r, "kernel.ceiling_copy");
    fprintf(r->out, ",\"shape\":\"cudaMemcpy device to device, %zu MiB, bytes read + written\",\"value\":%.1f,"
            "\"unit\":\"GB/s\"", k->flush_bytes >> 20, copy_gbs);
    if (r->bandwidth > 0) fprintf(r->out, ",\"fraction_of_datasheet\":%.4f", copy_gbs / (r->bandwidth * 1e-9));
    fprintf(r->out, "}\n");
    write_head(r, "kernel.ceiling_gemm");
    fprintf(r->out, ",\"shape\":\"cublasGemmEx %dx%dx%d bf16, fp32 compute\",\"value\":%.1f,\"unit\":\"TFLOP/s\"",
            G, G, G, gemm_tflops);
    if (r->peak > 0) fprintf(r->out, ",\"fraction_of_datasheet\":%.4f", gemm_tflops / (r->peak * 1e-12));
    fprintf(r->out, "}\n");
    printf("measured ceilings: copy %.0f GB/s (datasheet %.0f), bf16 GEMM %.0f TFLOP/s", copy_gbs,
           r->bandwidth * 1e-9, gemm_tflops);
    if (r->peak > 0) printf(" (datasheet %.1f)", r->peak * 1e-12);
    printf("\n");
}

int main(int argc, char **argv) {
    bench_program = "bench_kernels";
    bench_opts o;
    parse_args(argc, argv, &o);
    gpt_config cfg;
    if (gpt_config_preset(o.config, &cfg)) return 2;
    if (o.vocab) {
        cfg.vocab = o.vocab;
        cfg.vocab_padded = (o.vocab + 127) / 128 * 128;
    }
    if (o.seq > cfg.max_seq) {
        fprintf(stderr, "bench_kernels: --seq %d exceeds %s's max_seq %d\n", o.seq, o.config, cfg.max_seq);
        return 2;
    }
    if ((size_t)o.batch * o.seq > 1u << 26) {
        fprintf(stderr, "bench_kernels: --batch x --seq = %zu rows is more than this benchmark allocates for\n",
                (size_t)o.batch * o.seq);
        return 2;
    }
    char why[256] = "";
    exitrl_backend *be = exitrl_backend_cuda_create(0, 0, why, sizeof why);
    if (!be) {
        printf("bench_kernels: no GPU: nothing measured (%s)\n", why);
        return 0;
    }
    cudaStream_t stream = CUDA_CTX(be)->stream;
    make_pool();

    bufs k = {.B = o.batch, .T = o.seq, .C = cfg.d_model, .NH = cfg.n_head, .V = cfg.vocab,
              .Vp = cfg.vocab_padded, .N = o.batch * o.seq, .P = gpt_num_params(&cfg),
              .flush_bytes = o.quick ? QUICK_FLUSH_BYTES : FLUSH_BYTES};
    bench_run facts;
    bench_run_facts(be, &facts);
    char out_path[4096];
    FILE *out = bench_open_results(o.out, o.quick, "kernels", 1, out_path, sizeof out_path);
    if (!out) {
        be->destroy(be);
        return 1;
    }
    record rec = {.out = out, .run = &facts, .config = o.config, .k = &k, .o = &o,
                  .bandwidth = bench_peak_bandwidth(be), .peak = bench_bf16_peak_flops(facts.device),
                  .load = bench_load_average()};
    printf("kernels on %s, %s: B=%d T=%d C=%d NH=%d V=%d Vp=%d, %zu parameters; median of %d calls after %d "
           "warmup, L2 flushed before each\n",
           facts.device, o.config, k.B, k.T, k.C, k.NH, k.V, k.Vp, k.P, o.reps, o.warmup);
    if (rec.bandwidth > 0) printf("rooflines: DRAM %.0f GB/s (memory clock x bus width)", rec.bandwidth * 1e-9);
    else printf("rooflines: the driver gives no memory bandwidth: none recorded");
    if (rec.peak > 0) printf(", dense bf16 %.1f TFLOP/s\n", rec.peak * 1e-12);
    else printf("; no dense bf16 peak known for this device: bandwidth rooflines only\n");
    alloc_bufs(be, &k);

    cublasHandle_t blas;
    CHECK_CUBLAS(cublasCreate(&blas));
    CHECK_CUBLAS(cublasSetStream(blas, stream));
    measure_ceilings(be, &k, blas, stream, &rec, o.quick ? 256 : 8192);

    op_result res[N_OPS];
    memset(res, 0, sizeof res);
    for (int i = 0; i < N_OPS; i++) op_cost(&k, (op_id)i, (double)exitrl_dtype_size(be->act_dtype), &res[i].bytes,
                                            &res[i].flops);
    for (int i = 0; i < N_OPS; i++) {
        op_call c = {be, &k, blas, (op_id)i, IMPL_OURS};
        if (i == OP_ATT_BWD || i == OP_LN_BWD) { /* their inputs: the forward's outputs */
            op_call fwd = {be, &k, blas, i == OP_ATT_BWD ? OP_ATT_FWD : OP_LN_FWD, IMPL_OURS};
            run(&fwd);
        }
        res[i].ms = time_op(&c, stream, o.reps, o.warmup);
        if (is_mm_fwd((op_id)i) || is_mm_bwd((op_id)i)) {
            op_call p = {be, &k, blas, (op_id)i, IMPL_CUBLAS};
            peer_entry *e = add_peer(&res[i], "cublas");
            e->ms = time_op(&p, stream, o.reps, o.warmup);
            snprintf(e->impl, sizeof e->impl, "cublasGemmEx bf16, fp32 compute, no epilogue%s",
                     is_mm_bwd((op_id)i) ? ": dinp and dweight GEMMs, no dbias" : "");
        }
    }

    /* The backend's other attention implementations, each in a backend of its own: cuDNN's fused
     * attention and our CUDA-core kernels (what the tensor-core kernels replace in bf16). */
    op_result *af = &res[OP_ATT_FWD], *ab = &res[OP_ATT_BWD];
    peer_entry *cf = add_peer(af, "cudnn"), *cb = add_peer(ab, "cudnn");
    peer_entry *sf = add_peer(af, "simt"), *sb = add_peer(ab, "simt");
    {
        op_call fwd = {be, &k, blas, OP_ATT_FWD, IMPL_OURS};
        run(&fwd);
        float *ours = download_att(be, &k);
        time_attention_peer(be, &k, blas, ours, "cudnn", cf, cb, &o);
        time_attention_peer(be, &k, blas, ours, "simt", sf, sb, &o);
        free(ours);
    }

    const char *python = o.peer ? bench_find_python(o.python) : NULL;
    if (python) bench_peer_blas(python, &facts);
    int rc = 0;
    if (python) {
        be->sync(be);
        if (run_torch_peers(python, &k, &o, res)) rc = 1;
    }

    printf("%-30s %-34s %9s %7s   peers: ms (peer ms / ours)\n", "op", "shape", "ours ms", "roof");
    for (int i = 0; i < N_OPS; i++) {
        char shape[96];
        shape_text(&k, (op_id)i, shape, sizeof shape);
        const double roof = roofline_ms(&rec, &res[i]);
        printf("%-30s %-34s %9.4f", OP_NAMES[i], shape, res[i].ms);
        if (roof > 0) printf(" %6.1f%%", 100 * roof / res[i].ms);
        else printf(" %7s", "-");
        for (int j = 0; j < res[i].n_peers; j++) {
            const peer_entry *p = &res[i].peers[j];
            if (p->unavailable[0]) printf("   %s: unavailable", p->name);
            else printf("   %s %.4f (x%.2f)", p->name, p->ms, p->ms / res[i].ms);
        }
        printf("\n");
        if (!res[i].n_peers) write_op(&rec, (op_id)i, &res[i], NULL);
        for (int j = 0; j < res[i].n_peers; j++) write_op(&rec, (op_id)i, &res[i], &res[i].peers[j]);
    }
    for (const peer_entry *p = cf; p; p = p == cf ? sf : NULL) {
        if (p->unavailable[0]) printf("%s attention peer unavailable: %s\n", p->name, p->unavailable);
        else printf("%s attention output vs ours: max abs difference %.3g\n", p->name, p->check_diff);
    }
    rc |= fclose(out) != 0;
    if (out_path[0]) printf("appended to %s\n", out_path);
    else printf("quick run: nothing appended (give --out to keep the results)\n");
    cublasDestroy(blas);
    be->destroy(be);
    free(host_pool);
    return rc;
}
#endif
