/* Fused classifiers (contracts in ops.h): the supervised one (logits -> per-token loss and, in
 * place, dlogits) and the GRPO one (clipped policy-gradient loss + k3 KL, and its dlogits).
 * One block per row: one pass for the row's max and sum of exponentials (fp32, combined across
 * threads in a fixed order; the GRPO sum in fp64 like its CPU reference), a second pass writing
 * dlogits. The probabilities are never stored. */
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

template <typename act_t>
__global__ void __launch_bounds__(CLS_THREADS)
grpo_classifier_kernel(act_t *logits, const int *targets, const float *lp_old, const float *lp_ref, const float *adv,
                       const float *weight, float inv_temp, float eps_low, float eps_high, float beta, float *lp_new,
                       float *loss_out, float *clipped, int V, int Vp, int *dev_err) {
    __shared__ float red_f[CLS_THREADS / 32];
    __shared__ double red_d[CLS_THREADS / 32];
    __shared__ float sh_z_target, sh_coef, sh_inv_sum;
    int n = blockIdx.x, tid = threadIdx.x;
    act_t *row = logits + (size_t)n * Vp;
    int tgt = targets[n];
    if (tgt >= V) {
        if (tid == 0) report_bad_input(dev_err, CUDA_BAD_TARGET, n, tgt, V);
        tgt = -1;
    }
    if (tgt < 0) { /* not a target: no loss, no gradient */
        if (tid == 0) {
            if (lp_new) lp_new[n] = 0.0f;
            if (loss_out) loss_out[n] = 0.0f;
            if (clipped) clipped[n] = 0.0f;
        }
        for (int v = tid; v < Vp; v += blockDim.x) row[v] = from_f32<act_t>(0.0f);
        return;
    }
    if (tid == 0) sh_z_target = to_f32(row[tgt]) * inv_temp; /* read before the row is overwritten */
    float zmax = -INFINITY;
    for (int v = tid; v < V; v += blockDim.x) zmax = fmaxf(zmax, to_f32(row[v]) * inv_temp);
    zmax = block_max<CLS_THREADS>(zmax, red_f);
    double s = 0.0;
    for (int v = tid; v < V; v += blockDim.x) s += (double)__expf(to_f32(row[v]) * inv_temp - zmax);
    double sum = block_sum<CLS_THREADS>(s, red_d);
    if (tid == 0) {
        const double lp = (double)sh_z_target - zmax - log(sum);
        const double lo = 1.0 - (double)eps_low, hi = 1.0 + (double)eps_high;
        const double A = adv[n], rho = exp(lp - lp_old[n]);
        const double rho_c = rho < lo ? lo : (rho > hi ? hi : rho);
        /* Equal products (rho inside the range, or A == 0) count as the unclipped branch. */
        const int unclipped = rho * A <= rho_c * A;
        double loss = -fmin(rho * A, rho_c * A);
        double g = unclipped ? -rho * A : 0.0;
        if (lp_ref && beta != 0.0f) { /* k3 = e^x - x - 1 with x = lp_ref - lp; dk3/dlp = 1 - e^x */
            const double x = lp_ref[n] - lp;
            loss += beta * (exp(x) - x - 1.0);
            g += beta * (1.0 - exp(x));
        }
        if (lp_new) lp_new[n] = (float)lp;
        if (loss_out) loss_out[n] = (float)loss;
        if (clipped) clipped[n] = unclipped ? 0.0f : 1.0f;
        const double w = weight[n];
        sh_coef = w == 0.0 ? 0.0f : (float)(w * g * inv_temp); /* weight 0: no gradient, even if g is not finite */
        sh_inv_sum = (float)(1.0 / sum);
    }
    __syncthreads();
    float coef = sh_coef, inv_sum = sh_inv_sum;
    for (int v = tid; v < Vp; v += blockDim.x) {
        float d = 0.0f;
        if (v < V && coef != 0.0f) {
            float p = __expf(to_f32(row[v]) * inv_temp - zmax) * inv_sum;
            d = coef * ((v == tgt ? 1.0f : 0.0f) - p);
        }
        row[v] = from_f32<act_t>(d);
    }
}

extern "C" void cuda_grpo_classifier(exitrl_backend *be, void *logits, const int *targets, const float *lp_old,
                                     const float *lp_ref, const float *adv, const float *weight, float inv_temp,
                                     float eps_low, float eps_high, float beta, float *lp_new, float *loss_out,
                                     float *clipped, int N, int V, int Vp) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (N < 1 || V < 1 || Vp < V)
        CUDA_UNSUPPORTED("grpo_classifier: N=%d V=%d Vp=%d (need N, V >= 1 and Vp >= V)", N, V, Vp);
    if (ctx->fp32)
        grpo_classifier_kernel<float><<<N, CLS_THREADS, 0, ctx->stream>>>(
            (float *)logits, targets, lp_old, lp_ref, adv, weight, inv_temp, eps_low, eps_high, beta, lp_new, loss_out,
            clipped, V, Vp, ctx->dev_err);
    else
        grpo_classifier_kernel<bf16><<<N, CLS_THREADS, 0, ctx->stream>>>(
            (bf16 *)logits, targets, lp_old, lp_ref, adv, weight, inv_temp, eps_low, eps_high, beta, lp_new, loss_out,
            clipped, V, Vp, ctx->dev_err);
    CUDA_AFTER_LAUNCH(ctx, "grpo_classifier");
}
