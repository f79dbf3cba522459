/* Internal to the CUDA backend: its context, error macros, scratch memory and the entry point of
 * each op family (one .cu file each). Valid C and C++.
 *
 * Error policy: a failing CUDA/cuBLAS call is fatal (the ops in ops.h return void): the
 * macros print file:line, the call and the library's message, then exit(1). Bad inputs that only
 * a kernel can see (a token id < 0, a target >= V, a cache position outside [0, S), a negative
 * gather index) are recorded in a device-side flag and reported as fatal errors at the next
 * sync/download, naming the op, the index and the value. Shapes an op does not support are fatal
 * at the call, with the op's name and the constraint. */
#ifndef EXITRL_CUDA_BACKEND_H
#define EXITRL_CUDA_BACKEND_H

#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <stddef.h>

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Grow-only scratch buffers; each op family uses its own slots so no two live uses collide. */
typedef enum {
    SCRATCH_NORM_PARTIALS,   /* grad_norm.cu: per-block partial sums */
    SCRATCH_LN_PARTIALS,     /* layernorm.cu: per-chunk dw/db partials */
    SCRATCH_BIAS_PARTIALS,   /* matmul.cu: per-chunk dbias partials */
    SCRATCH_ENC_SORT,        /* encoder.cu: sorted tokens / positions + CUB temp storage */
    SCRATCH_ENC_PARTIALS,    /* encoder.cu: per-chunk boundary partial sums */
    SCRATCH_ATT_D,           /* attention.cu: D = rowsum(dO * O) for our backwards */
    SCRATCH_CENTROIDS,       /* rl.cu: per-group mean embeddings (fp64) */
    SCRATCH_CUDNN,           /* attention_cudnn.cu: cuDNN workspace + the backward's fp32 buffers */
    CUDA_NUM_SCRATCH
} cuda_scratch_slot;

/* The attention implementation EXITRL_ATTENTION asks for (attention.cu decides per call). */
typedef enum {
    CUDA_ATTENTION_FLASH = 0, /* default: our flash kernels, tensor cores in bf16 (attention_mma.cu) */
    CUDA_ATTENTION_SIMT,      /* our CUDA-core flash kernels in bf16 too (attention_simt.cu) */
    CUDA_ATTENTION_CUDNN      /* cuDNN's fused attention (attention_cudnn.cu), bf16 only */
} cuda_attention_impl;

/* Codes of the device-side bad-input flag (dev_err[0]); dev_err[1..3] hold details. */
enum {
    CUDA_BAD_NONE = 0,
    CUDA_BAD_TOKEN = 1,    /* [1] = position, [2] = token id (negative) */
    CUDA_BAD_TARGET = 2,   /* [1] = row, [2] = target, [3] = V */
    CUDA_BAD_POSITION = 3, /* [1] = sequence, [2] = position, [3] = S (the cache length) */
    CUDA_BAD_INDEX = 4     /* [1] = row of dst, [2] = the negative source row */
};

typedef struct cuda_ctx {
    int fp32;                  /* activations in fp32 (parity mode) instead of bf16 */
    char device_name[256];
    size_t max_smem_optin;     /* bytes of dynamic shared memory a block may opt in to */
    cudaStream_t stream;       /* every op runs on this one stream, in order */
    cublasLtHandle_t lt;
    void *lt_workspace;
    size_t lt_workspace_bytes;
    void *matmul_plans;        /* owned by matmul.cu: cached cuBLASLt plans per shape */
    void *cudnn_att;           /* owned by attention_cudnn.cu: cuDNN handle and plans (EXITRL_ATTENTION=cudnn) */
    cuda_attention_impl attention; /* EXITRL_ATTENTION */
    int attention_strict;      /* EXITRL_ATTENTION_STRICT=1: a call cuDNN refuses stops the program */
    int attention_fallbacks;   /* calls cuDNN refused that our kernels ran (cuda_attention_cudnn_fallbacks) */
    int stochastic_rounding;   /* EXITRL_STOCHASTIC_ROUNDING=1: bf16 param copies rounded stochastically */
    int sync_each_op;          /* EXITRL_CUDA_SYNC_EACH_OP=1: sync after each launch to name a failing op */
    int capturing;             /* a CUDA graph capture is under way on `stream` */
    int adamw_call;            /* adamw_update calls since the last grad_norm_clip (stochastic rounding seed) */
    int *dev_err;              /* device int[4]: first bad input a kernel saw (codes above) */
    void *scratch[CUDA_NUM_SCRATCH];
    size_t scratch_bytes[CUDA_NUM_SCRATCH];
    void *nccl_comm;           /* owned by collectives.cu: the NCCL communicator (comm_init) */
} cuda_ctx;

#define CUDA_CTX(be) ((cuda_ctx *)(be)->ctx)

/* Prints "exitrl: cuda: file:line: <message>" and exits with status 1. */
void cuda_fatal(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((noreturn, format(printf, 3, 4)))
#endif
    ;
const char *cuda_cublas_status_text(cublasStatus_t s);

#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        cudaError_t err_ = (call);                                                             \
        if (err_ != cudaSuccess)                                                               \
            cuda_fatal(__FILE__, __LINE__, "%s failed: %s: %s", #call, cudaGetErrorName(err_), \
                       cudaGetErrorString(err_));                                              \
    } while (0)

#define CUBLAS_CHECK(call)                                                                   \
    do {                                                                                     \
        cublasStatus_t st_ = (call);                                                         \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                    \
            cuda_fatal(__FILE__, __LINE__, "%s failed: %s", #call, cuda_cublas_status_text(st_)); \
    } while (0)

/* Fatal error for a shape or argument an op does not support, naming the op. */
#define CUDA_UNSUPPORTED(...) cuda_fatal(__FILE__, __LINE__, __VA_ARGS__)

/* After a kernel launch: reports launch errors with the op's name; with sync_each_op it also
 * waits for the kernel so an asynchronous fault is attributed to this op. */
void cuda_after_launch(cuda_ctx *ctx, const char *op, const char *file, int line);
#define CUDA_AFTER_LAUNCH(ctx, op) cuda_after_launch((ctx), (op), __FILE__, __LINE__)

/* Returns scratch slot `slot` with at least `bytes` bytes (contents undefined). Growing it frees
 * the old buffer after a stream sync; never call it during CUDA graph capture. */
void *cuda_scratch(cuda_ctx *ctx, cuda_scratch_slot slot, size_t bytes);

/* Blocks for a 1-D grid-stride launch over n elements. */
unsigned cuda_blocks_for(size_t n, unsigned threads);

/* ---- op families (contracts in ops.h) ---- */
void cuda_encoder_forward(exitrl_backend *be, void *out, const int *tok, const void *wte,
                          const void *wpe, int B, int T, int C);
void cuda_encoder_backward(exitrl_backend *be, float *dwte, float *dwpe, const void *dout,
                           const int *tok, int B, int T, int C);
void cuda_layernorm_forward(exitrl_backend *be, void *out, float *mean, float *rstd,
                            const void *inp, const void *w, const void *b, int N, int C);
void cuda_residual_layernorm_forward(exitrl_backend *be, void *res, void *out, float *mean,
                                     float *rstd, const void *a, const void *b_in, const void *w,
                                     const void *bias, int N, int C);
void cuda_layernorm_backward(exitrl_backend *be, void *dinp, float *dw, float *db, const void *dout,
                             const void *inp, const void *w, const float *mean, const float *rstd,
                             int N, int C);
void cuda_matmul_forward(exitrl_backend *be, void *out, void *pre_gelu, const void *inp,
                         const void *w, const void *bias, int N, int C, int OC);
void cuda_matmul_backward(exitrl_backend *be, void *dinp, float *dweight, float *dbias, void *dout,
                          const void *inp, const void *w, const void *pre_gelu, int N, int C,
                          int OC);
void cuda_matmul_plans_destroy(cuda_ctx *ctx);
/* Attention (attention.cu): the ops, which choose the implementation of each call among the three
 * below. select reads EXITRL_ATTENTION and EXITRL_ATTENTION_STRICT into ctx when the backend is
 * created: 0, or -1 with the reason in why (an unknown value; cudnn in the fp32 mode). */
int cuda_attention_select(cuda_ctx *ctx, char *why, size_t why_len);
void cuda_attention_forward(exitrl_backend *be, void *out, float *lse, const void *qkv, int B,
                            int T, int C, int NH);
void cuda_attention_backward(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                             const void *out, const float *lse, int B, int T, int C, int NH);
/* D[b, h, t] = rowsum(dO * O) into scratch memory (SCRATCH_ATT_D), for the attention backwards. */
const float *cuda_attention_rowdot(cuda_ctx *ctx, const void *dout, const void *out, int B, int T, int C, int NH);
/* Packed rows (attention_packed.cu; contract in ops.h attention_forward_packed). */
void cuda_attention_forward_packed(exitrl_backend *be, void *out, float *lse, const void *qkv, const int *prefix_len,
                                   const int *seg_start, int B, int T, int C, int NH);
void cuda_attention_backward_packed(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                                    const float *lse, const int *prefix_len, const int *seg_start, int B, int T,
                                    int C, int NH);
/* Calls since the backend was created that ran the flash kernels because cuDNN could not take them
 * (no engine or plan for the shape, unsupported head size, misaligned pointer, plan cache full);
 * each such shape is also named once on stderr. T == 1 runs the flash kernels by design and is not
 * counted. With EXITRL_ATTENTION_STRICT=1 such a call stops the program instead. */
int cuda_attention_cudnn_fallbacks(const cuda_ctx *ctx);
/* Our flash attention, called by the ops above: hs is C / NH (16, 32, 64 or 128, checked by the
 * caller); D = rowsum(dO * O) per (b, h, t), computed by the caller. On tensor cores, bf16
 * (attention_mma.cu): */
void cuda_attention_mma_forward(cuda_ctx *ctx, void *out, float *lse, const void *qkv, int B, int T, int C, int NH,
                                int hs);
void cuda_attention_mma_backward(cuda_ctx *ctx, void *dqkv, const void *dout, const void *qkv, const float *lse,
                                 const float *D, int B, int T, int C, int NH, int hs);
/* On CUDA cores, in the act dtype (attention_simt.cu): */
void cuda_attention_simt_forward(cuda_ctx *ctx, void *out, float *lse, const void *qkv, int B, int T, int C, int NH,
                                 int hs);
void cuda_attention_simt_backward(cuda_ctx *ctx, void *dqkv, const void *dout, const void *qkv, const float *lse,
                                  const float *D, int B, int T, int C, int NH, int hs);
/* cuDNN fused attention (attention_cudnn.cu; attention_cudnn_stub.cu in a build without it), for
 * EXITRL_ATTENTION=cudnn. init creates the handle on ctx->stream and checks that cuDNN can run the
 * graphs on this GPU: 0, or -1 with the reason in why (not built with cuDNN, cuDNN too old, no
 * engine: cuDNN's message). available: 1 when this build and the loaded cuDNN library could run it
 * (no GPU needed), else 0 with the reason.
 * plan: the cached plan (built on first use) that runs this call, or NULL with the reason in why
 * when cuDNN cannot take it, and *first = 1 when the reason is to be named on stderr (a new
 * shape; the first misaligned pointer or full plan cache of this backend). ptrs are the call's
 * act tensors (they must be 16-byte aligned). forward / backward run a plan that plan returned,
 * with the arguments of the ops in ops.h. */
/* collectives.cu (ops.h "collectives"; built with NCCL only, EXITRL_HAVE_NCCL): the three members,
 * and the release of the communicator (a no-op without NCCL), called when the backend goes. */
#ifdef EXITRL_HAVE_NCCL
int cuda_comm_unique_id(exitrl_backend *be, void *id, char *why, size_t why_len);
int cuda_comm_init(exitrl_backend *be, const void *id, int rank, int size, char *why, size_t why_len);
int cuda_allreduce_sum_f32(exitrl_backend *be, float *buf, size_t n, char *why, size_t why_len);
#endif
void cuda_comm_release(cuda_ctx *ctx);

int cuda_attention_cudnn_init(cuda_ctx *ctx, char *why, size_t why_len);
void cuda_attention_cudnn_release(cuda_ctx *ctx);
int cuda_attention_cudnn_available(char *why, size_t why_len);
void *cuda_attention_cudnn_plan(cuda_ctx *ctx, const char *op, int backward, int B, int T, int C, int NH,
                                const void *const *ptrs, int nptrs, char *why, size_t why_len, int *first);
void cuda_attention_cudnn_forward(cuda_ctx *ctx, void *plan, void *out, float *lse, const void *qkv, int B, int T,
                                  int C, int NH);
void cuda_attention_cudnn_backward(cuda_ctx *ctx, void *plan, void *dqkv, const void *dout, const void *qkv,
                                   const void *out, const float *lse, int B, int T, int C, int NH);
void cuda_classifier_forward_backward(exitrl_backend *be, void *logits, float *losses,
                                      const float *dloss_weights, const int *targets, int N, int V,
                                      int Vp);
void cuda_grad_norm_clip(exitrl_backend *be, float *vals, const float *x, size_t n, float max_norm);
void cuda_adamw_update(exitrl_backend *be, float *master, void *params_act, const float *grads,
                       float *m, float *v, size_t n, const float *vals, float beta1, float beta2,
                       float eps, float weight_decay);
void cuda_f32_to_act(exitrl_backend *be, void *dst, const float *src, size_t n);
void cuda_act_to_f32(exitrl_backend *be, float *dst, const void *src, size_t n);
void cuda_encoder_forward_at(exitrl_backend *be, void *out, const int *tok_buf, const int *pos, int S,
                             const void *wte, const void *wpe, int B, int C);
void cuda_kv_cache_store(exitrl_backend *be, void *kcache, void *vcache, const void *qkv,
                         const int *start_pos, int B, int T, int S, int C);
void cuda_attention_decode(exitrl_backend *be, void *out, const void *qkv, const void *kcache,
                           const void *vcache, const int *pos, int B, int S, int C, int NH);
void cuda_gather_rows(exitrl_backend *be, void *dst, const void *src, const int *idx, int B, int C);
void cuda_hidden_accumulate(exitrl_backend *be, float *emb, const void *hidden, const int *done, int B,
                            int C);
void cuda_sample_step(exitrl_backend *be, const void *logits, const struct exitrl_sampling *sp,
                      int *tok_buf, float *logprob_buf, int *pos, int *done, const int *limit, int B,
                      int S, int V, int Vp, int seq_offset);
void cuda_group_advantage(exitrl_backend *be, float *adv, const float *rewards, const float *div_scale,
                          int P, int G, int scale_mode, float eps);
void cuda_diversity_scale(exitrl_backend *be, float *d, const float *emb, int P, int G, int C);
void cuda_score_groups(exitrl_backend *be, float *scores, int *chosen, const float *rewards, int P,
                       int G, int mode, int k, uint64_t seed);
void cuda_grpo_classifier(exitrl_backend *be, void *logits, const int *targets, const float *lp_old,
                          const float *lp_ref, const float *adv, const float *weight, float inv_temp,
                          float eps_low, float eps_high, float beta, float *lp_new, float *loss_out,
                          float *clipped, int N, int V, int Vp);

#ifdef __cplusplus
}
#endif
#endif
