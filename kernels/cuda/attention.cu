/* attention_forward / attention_backward (contracts in ops.h): the ops the backend table holds, and
 * the one place that decides which implementation runs each call (attention_choose):
 *   mma    our flash attention on tensor cores (attention_mma.cu): bf16, the default;
 *   simt   our flash attention on CUDA cores (attention_simt.cu): the fp32 parity mode, and bf16
 *          with EXITRL_ATTENTION=simt;
 *   cudnn  cuDNN's fused attention (attention_cudnn.cu): bf16 with EXITRL_ATTENTION=cudnn, with
 *          a fall-back to mma for the calls cuDNN cannot take (or a stop, with
 *          EXITRL_ATTENTION_STRICT=1).
 * EXITRL_ATTENTION and EXITRL_ATTENTION_STRICT are read once, when the backend is created
 * (cuda_attention_select). Also here: the shape check of our kernels and D = rowsum(dO * O), the
 * first step of both of our backwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

extern "C" int cuda_attention_select(cuda_ctx *ctx, char *why, size_t why_len) {
    const char *att = getenv("EXITRL_ATTENTION");
    if (!att || !*att || strcmp(att, "flash") == 0) {
        ctx->attention = CUDA_ATTENTION_FLASH;
    } else if (strcmp(att, "simt") == 0) {
        ctx->attention = CUDA_ATTENTION_SIMT;
    } else if (strcmp(att, "cudnn") == 0) {
        ctx->attention = CUDA_ATTENTION_CUDNN;
    } else {
        snprintf(why, why_len, "EXITRL_ATTENTION='%s' (expected flash, simt or cudnn)", att);
        return -1;
    }
    /* No fp32 fallback: a parity run must test the implementation it names. */
    if (ctx->attention == CUDA_ATTENTION_CUDNN && ctx->fp32) {
        snprintf(why, why_len, "EXITRL_ATTENTION=cudnn: cuDNN's fused attention has no fp32 kernels, so it cannot "
                               "run in the fp32 parity mode; use bf16 or EXITRL_ATTENTION=flash");
        return -1;
    }
    const char *strict = getenv("EXITRL_ATTENTION_STRICT");
    ctx->attention_strict = strict && strcmp(strict, "1") == 0;
    return 0;
}

extern "C" int cuda_attention_cudnn_fallbacks(const cuda_ctx *ctx) { return ctx->attention_fallbacks; }

/* Checks the shape for our kernels (mma and simt); returns the head size. */
static int check_attention_shape(const char *op, int B, int T, int C, int NH) {
    if (B < 1 || T < 1 || C < 1 || NH < 1 || C % NH)
        CUDA_UNSUPPORTED("%s: B=%d T=%d C=%d NH=%d (need positive sizes and C %% NH == 0)", op, B, T, C, NH);
    if ((size_t)B * NH > 65535)
        CUDA_UNSUPPORTED("%s: B*NH = %zu exceeds the grid limit 65535", op, (size_t)B * NH);
    int hs = C / NH;
    if (hs != 16 && hs != 32 && hs != 64 && hs != 128)
        CUDA_UNSUPPORTED("%s: head size C/NH = %d/%d = %d is not supported (the flash kernels are built for 16, 32, 64 "
                         "and 128)",
                         op, C, NH, hs);
    return hs;
}

typedef enum { RUN_CUDNN, RUN_MMA, RUN_SIMT } attention_run;

/* Which implementation runs this call (backward 0: attention_forward, 1: attention_backward; ptrs:
 * the call's act tensors, which cuDNN needs 16-byte aligned). For RUN_CUDNN, *cudnn_plan is the
 * plan to run; for our kernels, *hs is the head size (a shape they cannot run is fatal here).
 *   1. EXITRL_ATTENTION=cudnn (bf16 only; the fp32 mode refused it at create time): cuDNN runs
 *      every call it can take. It is not asked for T == 1 (its fused attention has no key length
 *      1; our kernels run those by design, not counted) nor for invalid sizes (reported in 2).
 *      A call it refuses (head size, alignment, no engine or plan for the shape, plan cache full)
 *      stops the program with the reason under EXITRL_ATTENTION_STRICT=1 (the tests); otherwise
 *      it is counted (cuda_attention_cudnn_fallbacks), named on stderr once per shape (once per
 *      backend for alignment and a full cache) and runs on our kernels below.
 *   2. Our flash kernels: on CUDA cores (simt) in the fp32 parity mode and with
 *      EXITRL_ATTENTION=simt, on tensor cores (mma) otherwise. */
static attention_run attention_choose(cuda_ctx *ctx, const char *op, int backward, int B, int T, int C, int NH,
                                      const void *const *ptrs, int nptrs, void **cudnn_plan, int *hs) {
    if (ctx->attention == CUDA_ATTENTION_CUDNN && B >= 1 && T > 1 && C >= 1 && NH >= 1 && C % NH == 0) {
        char why[2048];
        int first = 0;
        *cudnn_plan = cuda_attention_cudnn_plan(ctx, op, backward, B, T, C, NH, ptrs, nptrs, why, sizeof why, &first);
        if (*cudnn_plan) return RUN_CUDNN;
        if (ctx->attention_strict)
            CUDA_UNSUPPORTED("%s (cudnn, B=%d T=%d C=%d NH=%d): %s", op, B, T, C, NH, why);
        ctx->attention_fallbacks++;
        if (first)
            fprintf(stderr, "exitrl: cuda: %s: cuDNN attention cannot run B=%d T=%d C=%d NH=%d (%s); running the flash "
                    "kernels for it\n", op, B, T, C, NH, why);
    }
    *hs = check_attention_shape(op, B, T, C, NH);
    return ctx->fp32 || ctx->attention == CUDA_ATTENTION_SIMT ? RUN_SIMT : RUN_MMA;
}

/* D[b, h, t] = sum_d dO[b, t, h, d] * O[b, t, h, d]; one warp per (b, t, h), grid-stride. */
template <typename act_t>
__global__ void attention_rowdot_kernel(float *D, const act_t *dout, const act_t *out, int B, int T, int C, int NH) {
    size_t rows = (size_t)B * T * NH, warps = (size_t)gridDim.x * blockDim.x / 32;
    int lane = threadIdx.x % 32, hs = C / NH;
    for (size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; row < rows; row += warps) {
        int h = (int)(row % NH);
        size_t bt = row / NH;
        int t = (int)(bt % T), b = (int)(bt / T);
        const act_t *dO = dout + bt * C + (size_t)h * hs, *O = out + bt * C + (size_t)h * hs;
        float s = 0.0f;
        for (int d = lane; d < hs; d += 32) s += to_f32(dO[d]) * to_f32(O[d]);
        s = warp_sum(s);
        if (lane == 0) D[((size_t)b * NH + h) * T + t] = s;
    }
}

/* D = rowsum(dO * O) per (b, h, t), into scratch memory; the first step of our backwards (these and
 * the packed ones, attention_packed.cu). */
extern "C" const float *cuda_attention_rowdot(cuda_ctx *ctx, const void *dout, const void *out, int B, int T, int C,
                                              int NH) {
    float *D = (float *)cuda_scratch(ctx, SCRATCH_ATT_D, (size_t)B * NH * T * sizeof(float));
    size_t rows = (size_t)B * T * NH;
    unsigned blocks = cuda_blocks_for(rows * 32, 256);
    if (ctx->fp32)
        attention_rowdot_kernel<float><<<blocks, 256, 0, ctx->stream>>>(D, (const float *)dout, (const float *)out, B,
                                                                         T, C, NH);
    else
        attention_rowdot_kernel<bf16><<<blocks, 256, 0, ctx->stream>>>(D, (const bf16 *)dout, (const bf16 *)out, B, T,
                                                                        C, NH);
    CUDA_AFTER_LAUNCH(ctx, "attention_backward (rowdot)");
    return D;
}

extern "C" void cuda_attention_forward(exitrl_backend *be, void *out, float *lse, const void *qkv, int B, int T, int C,
                                       int NH) {
    cuda_ctx *ctx = CUDA_CTX(be);
    const void *ptrs[] = {qkv, out};
    void *plan = NULL;
    int hs = 0;
    switch (attention_choose(ctx, "attention_forward", 0, B, T, C, NH, ptrs, 2, &plan, &hs)) {
    case RUN_CUDNN: cuda_attention_cudnn_forward(ctx, plan, out, lse, qkv, B, T, C, NH); break;
    case RUN_MMA: cuda_attention_mma_forward(ctx, out, lse, qkv, B, T, C, NH, hs); break;
    case RUN_SIMT: cuda_attention_simt_forward(ctx, out, lse, qkv, B, T, C, NH, hs); break;
    }
}

extern "C" void cuda_attention_backward(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                                        const void *out, const float *lse, int B, int T, int C, int NH) {
    cuda_ctx *ctx = CUDA_CTX(be);
    const void *ptrs[] = {dqkv, dout, qkv, out};
    void *plan = NULL;
    int hs = 0;
    switch (attention_choose(ctx, "attention_backward", 1, B, T, C, NH, ptrs, 4, &plan, &hs)) {
    case RUN_CUDNN: cuda_attention_cudnn_backward(ctx, plan, dqkv, dout, qkv, out, lse, B, T, C, NH); break;
    case RUN_MMA:
        cuda_attention_mma_backward(ctx, dqkv, dout, qkv, lse, cuda_attention_rowdot(ctx, dout, out, B, T, C, NH), B, T, C,
                                    NH, hs);
        break;
    case RUN_SIMT:
        cuda_attention_simt_backward(ctx, dqkv, dout, qkv, lse, cuda_attention_rowdot(ctx, dout, out, B, T, C, NH), B, T,
                                     C, NH, hs);
        break;
    }
}
