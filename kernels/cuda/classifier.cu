/* Fused classifier: logits -> per-token loss and, in place, dlogits (contract in ops.h).
 * One block per row: one pass for the row's max and sum of exponentials (an online softmax in
 * fp32, combined across threads in a fixed order), a second pass writing dlogits. The
 * probabilities are never stored. */
#include <math.h>

#include "cuda_common.cuh"

#define CLS_THREADS 256

/* Merges two (max, sum of exp(x - max)) pairs. */
__device__ __forceinline__ void softmax_merge(float &m, float &s, float m2, float s2) {
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY) return; /* both empty */
    s = s * __expf(m - mx) + s2 * __expf(m2 - mx);
    m = mx;
}

template <typename act_t>
__global__ void __launch_bounds__(CLS_THREADS)
classifier_kernel(act_t *logits, float *losses, const float *dloss_weights, const int *targets, int V,
                  int Vp, int *dev_err) {
    __shared__ float sh_m[CLS_THREADS / 32], sh_s[CLS_THREADS / 32];
    __shared__ float sh_target_logit;
    int n = blockIdx.x, tid = threadIdx.x;
    act_t *row = logits + (size_t)n * Vp;
    int tgt = targets[n];
    if (tgt >= V) {
        if (tid == 0) report_bad_input(dev_err, CUDA_BAD_TARGET, n, tgt, V);
        tgt = -1; /* reported as fatal at the next sync; never read out of bounds */
    }
    if (tgt < 0) { /* not a target: loss 0, no gradient */
        if (losses && tid == 0) losses[n] = 0.0f;
        if (dloss_weights)
            for (int v = tid; v < Vp; v += blockDim.x) row[v] = from_f32<act_t>(0.0f);
        return;
    }
    /* Read before any thread starts overwriting the row (the reductions below synchronise). */
    if (tid == 0) sh_target_logit = to_f32(row[tgt]);

    float m = -INFINITY, s = 0.0f;
    for (int v = tid; v < V; v += blockDim.x) {
        float x = to_f32(row[v]);
        if (x > m) {
            s = s * __expf(m - x) + 1.0f;
            m = x;
        } else {
            s += __expf(x - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        softmax_merge(m, s, m2, s2);
    }
    if (tid % 32 == 0) {
        sh_m[tid / 32] = m;
        sh_s[tid / 32] = s;
    }
    __syncthreads();
    m = sh_m[0];
    s = sh_s[0];
    for (int w = 1; w < CLS_THREADS / 32; w++) softmax_merge(m, s, sh_m[w], sh_s[w]);
    float lse = m + logf(s);

    if (losses && tid == 0) losses[n] = lse - sh_target_logit;
    if (dloss_weights) {
        float wn = dloss_weights[n];
        for (int v = tid; v < Vp; v += blockDim.x) {
            float d = 0.0f;
            if (v < V) d = wn * (__expf(to_f32(row[v]) - lse) - (v == tgt ? 1.0f : 0.0f));
            row[v] = from_f32<act_t>(d);
        }
    }
}

extern "C" void cuda_classifier_forward_backward(exitrl_backend *be, void *logits, float *losses,
                                                 const float *dloss_weights, const int *targets, int N,
                                                 int V, int Vp) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (N < 1 || V < 1 || Vp < V)
        CUDA_UNSUPPORTED("classifier: N=%d V=%d Vp=%d (need N, V >= 1 and Vp >= V)", N, V, Vp);
    if (ctx->fp32)
        classifier_kernel<float><<<N, CLS_THREADS, 0, ctx->stream>>>((float *)logits, losses, dloss_weights,
                                                                     targets, V, Vp, ctx->dev_err);
    else
        classifier_kernel<bf16><<<N, CLS_THREADS, 0, ctx->stream>>>((bf16 *)logits, losses, dloss_weights,
                                                                    targets, V, Vp, ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "classifier_forward_backward");
}
