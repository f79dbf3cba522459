/* RL ops of GRPO / ExIt (contracts in ops.h, "RL"): group advantages, diversity scales and group
 * scores with the choice of expansions. Groups are small (G rewards, typically 8..64), so one
 * thread walks one group in the CPU reference's order, accumulating in fp64 like it: the results
 * match it to the last fp32 bit in practice, and the whole batch is still one launch. */
#include <math.h>
#include <stdio.h>

#include "philox.h"
#include "cuda_common.cuh"

#define RL_THREADS 128

/* Mean and sum of squared deviations (two passes, fp64) of x[0..n). */
__device__ void group_mean_ssd(const float *x, int n, double *mean, double *ssd) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    double m = s / n, q = 0.0;
    for (int i = 0; i < n; i++) q += ((double)x[i] - m) * ((double)x[i] - m);
    *mean = m;
    *ssd = q;
}

/* One launch for every mode: with BATCH, each block first computes the std of all P*G rewards
 * (the same fixed-order sum in every block, cheap for RL batch sizes), then threads take groups. */
__global__ void group_advantage_kernel(float *adv, const float *rewards, const float *div_scale, int P, int G,
                                       int scale_mode, float eps) {
    __shared__ double batch_std;
    if (scale_mode == EXITRL_SCALE_BATCH) {
        if (threadIdx.x == 0) {
            double m, ssd;
            group_mean_ssd(rewards, P * G, &m, &ssd);
            batch_std = sqrt(ssd / (double)(P * G - 1));
        }
        __syncthreads();
    }
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= P) return;
    const float *r = rewards + (size_t)g * G;
    double m, ssd;
    group_mean_ssd(r, G, &m, &ssd);
    double denom = 1.0; /* NONE */
    if (scale_mode == EXITRL_SCALE_GROUP) denom = sqrt(ssd / (G - 1)) + (double)eps;
    if (scale_mode == EXITRL_SCALE_BATCH) denom = batch_std + (double)eps;
    for (int i = 0; i < G; i++) {
        size_t k = (size_t)g * G + i;
        double a = ((double)r[i] - m) / denom;
        if (div_scale) a *= div_scale[k];
        adv[k] = (float)a;
    }
}

extern "C" void cuda_group_advantage(exitrl_backend *be, float *adv, const float *rewards, const float *div_scale,
                                     int P, int G, int scale_mode, float eps) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (P < 1 || G < 1 || (size_t)P * G > 0x7fffffff)
        CUDA_UNSUPPORTED("group_advantage: P=%d G=%d (need positive sizes, P*G < 2^31)", P, G);
    size_t n = (size_t)P * G;
    if (scale_mode != EXITRL_SCALE_GROUP && scale_mode != EXITRL_SCALE_BATCH && scale_mode != EXITRL_SCALE_NONE) {
        /* the CPU reference's behaviour: say so, and give no signal */
        fprintf(stderr, "exitrl: cuda group_advantage: unknown scale_mode %d; advantages set to 0\n", scale_mode);
        CUDA_CHECK(cudaMemsetAsync(adv, 0, n * sizeof(float), ctx->stream));
        return;
    }
    if (G <= 1) { /* no group to compare against (and no Bessel std of one value) */
        CUDA_CHECK(cudaMemsetAsync(adv, 0, n * sizeof(float), ctx->stream));
        return;
    }
    group_advantage_kernel<<<(P + RL_THREADS - 1) / RL_THREADS, RL_THREADS, 0, ctx->stream>>>(adv, rewards, div_scale,
                                                                                            P, G, scale_mode, eps);
    CUDA_AFTER_LAUNCH(ctx, "group_advantage");
}

/* One block per group: centroid (fp64, into scratch), each member's distance to it, then the
 * scale. dist[] holds the G distances in shared memory (dynamic, G doubles). */
__global__ void __launch_bounds__(RL_THREADS) diversity_scale_kernel(float *d, const float *emb, double *centroids,
                                                                     int G, int C) {
    extern __shared__ double dist[];
    __shared__ double red[RL_THREADS / 32];
    int g = blockIdx.x;
    const float *e = emb + (size_t)g * G * C;
    double *centroid = centroids + (size_t)g * C;
    for (int c = threadIdx.x; c < C; c += RL_THREADS) {
        double s = 0.0;
        for (int i = 0; i < G; i++) s += e[(size_t)i * C + c];
        centroid[c] = s / G;
    }
    /* each thread reads back only the centroid entries it wrote */
    for (int i = 0; i < G; i++) {
        double q = 0.0;
        for (int c = threadIdx.x; c < C; c += RL_THREADS) {
            double diff = e[(size_t)i * C + c] - centroid[c];
            q += diff * diff;
        }
        q = block_sum<RL_THREADS>(q, red);
        if (threadIdx.x == 0) dist[i] = sqrt(q);
    }
    __syncthreads();
    double dmax = -INFINITY, dmin = INFINITY;
    for (int i = 0; i < G; i++) {
        dmax = fmax(dmax, dist[i]);
        dmin = fmin(dmin, dist[i]);
    }
    double range = dmax - dmin;
    /* The relative guard of ops.h: near-equal distances (every group of 2) give 1, not noise. */
    for (int i = threadIdx.x; i < G; i += RL_THREADS)
        d[(size_t)g * G + i] = range <= 1e-4 * dmax ? 1.0f : (float)(dist[i] / range);
}

extern "C" void cuda_diversity_scale(exitrl_backend *be, float *d, const float *emb, int P, int G, int C) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (P < 1 || G < 1 || C < 1) CUDA_UNSUPPORTED("diversity_scale: P=%d G=%d C=%d must be positive", P, G, C);
    size_t smem = (size_t)G * sizeof(double);
    if (smem > 48 * 1024) CUDA_UNSUPPORTED("diversity_scale: group size G=%d exceeds %d", G, 48 * 1024 / 8);
    double *centroids = (double *)cuda_scratch(ctx, SCRATCH_CENTROIDS, (size_t)P * C * sizeof(double));
    diversity_scale_kernel<<<P, RL_THREADS, smem, ctx->stream>>>(d, emb, centroids, G, C);
    CUDA_AFTER_LAUNCH(ctx, "diversity_scale");
}

/* The selection key of member j (higher is kept first): the reward, or for RANDOM the negated
 * 24-bit Philox draw for counter (j, g, 1, 0), so the smallest draws win. */
__device__ double selection_key(const float *r, int mode, int g, int j, uint64_t seed) {
    if (mode != EXITRL_SELECT_RANDOM) return r[j];
    uint32_t ctr[4] = {(uint32_t)j, (uint32_t)g, 1u, 0u}, key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, out[4];
    philox4x32_10(ctr, key, out);
    return -(double)(out[0] >> 8);
}

/* One thread per group: its score, then chosen[j] = 1 when fewer than k members rank before j
 * (a higher key, or an equal key and a lower index). */
__global__ void score_groups_kernel(float *scores, int *chosen, const float *rewards, int P, int G, int mode, int k,
                                    uint64_t seed) {
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= P) return;
    const float *r = rewards + (size_t)g * G;
    int *ch = chosen + (size_t)g * G;
    double m, ssd;
    group_mean_ssd(r, G, &m, &ssd);
    scores[g] = (float)(4.0 * ssd / G);
    if (mode == EXITRL_SELECT_ALL) {
        for (int j = 0; j < G; j++) ch[j] = 1;
        return;
    }
    if (mode != EXITRL_SELECT_BEST && mode != EXITRL_SELECT_TOPK && mode != EXITRL_SELECT_RANDOM) {
        for (int j = 0; j < G; j++) ch[j] = 0;
        return;
    }
    int keep = mode == EXITRL_SELECT_BEST ? 1 : k;
    for (int j = 0; j < G; j++) {
        double kj = selection_key(r, mode, g, j, seed);
        int before = 0;
        for (int i = 0; i < G; i++) {
            double ki = selection_key(r, mode, g, i, seed);
            if (ki > kj || (ki == kj && i < j)) before++;
        }
        ch[j] = before < keep;
    }
}

extern "C" void cuda_score_groups(exitrl_backend *be, float *scores, int *chosen, const float *rewards, int P, int G,
                                  int mode, int k, uint64_t seed) {
    cuda_ctx *ctx = CUDA_CTX(be);
    if (P < 1 || G < 1) CUDA_UNSUPPORTED("score_groups: P=%d G=%d must be positive", P, G);
    if (mode != EXITRL_SELECT_ALL && mode != EXITRL_SELECT_BEST && mode != EXITRL_SELECT_TOPK &&
        mode != EXITRL_SELECT_RANDOM)
        fprintf(stderr, "exitrl: cuda score_groups: unknown selection mode %d; nothing chosen\n", mode);
    score_groups_kernel<<<(P + RL_THREADS - 1) / RL_THREADS, RL_THREADS, 0, ctx->stream>>>(scores, chosen, rewards, P,
                                                                                         G, mode, k, seed);
    CUDA_AFTER_LAUNCH(ctx, "score_groups");
}
