/* CPU reference of the RL ops (ops.h, "RL (GRPO / ExIt)"): group advantages, diversity scales and
 * group scores with expansion selection (the fused GRPO classifier is in classifier.c, as on the
 * CUDA side).
 *
 * Means, variances and distances accumulate in double: rewards of one group are often nearly
 * equal, and a float sum of squared deviations would lose the very differences the advantages and
 * scores are made of. Each result is rounded to fp32 once, on writing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "philox.h"

/* Mean and sum of squared deviations (two passes) of x[0..n). */
static void mean_and_ssd(const float *x, int n, double *mean, double *ssd) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    double m = s / n, q = 0.0;
    for (int i = 0; i < n; i++) q += ((double)x[i] - m) * ((double)x[i] - m);
    *mean = m;
    *ssd = q;
}

void cpu_group_advantage(exitrl_backend *be, float *adv, const float *rewards,
                         const float *div_scale, int P, int G, int scale_mode, float eps) {
    (void)be;
    const size_t n = (size_t)P * G;
    if (scale_mode != EXITRL_SCALE_GROUP && scale_mode != EXITRL_SCALE_BATCH &&
        scale_mode != EXITRL_SCALE_NONE) {
        fprintf(stderr, "exitrl: cpu group_advantage: unknown scale_mode %d; advantages set to 0\n",
                scale_mode);
        memset(adv, 0, n * sizeof(float));
        return;
    }
    if (G <= 1) { /* no group to compare against: no signal (and no Bessel std of one value) */
        memset(adv, 0, n * sizeof(float));
        return;
    }
    double batch_std = 0.0;
    if (scale_mode == EXITRL_SCALE_BATCH) {
        double m, ssd;
        mean_and_ssd(rewards, (int)n, &m, &ssd);
        batch_std = sqrt(ssd / (double)(n - 1));
    }
    for (int g = 0; g < P; g++) {
        const float *r = rewards + (size_t)g * G;
        double m, ssd;
        mean_and_ssd(r, G, &m, &ssd);
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
}

static double distance_to(const float *e, const double *centroid, int C) {
    double q = 0.0;
    for (int c = 0; c < C; c++) q += (e[c] - centroid[c]) * (e[c] - centroid[c]);
    return sqrt(q);
}

void cpu_diversity_scale(exitrl_backend *be, float *d, const float *emb, int P, int G, int C) {
    (void)be;
    double *centroid = malloc((size_t)(C > 0 ? C : 1) * sizeof(double));
    if (!centroid) {
        fprintf(stderr, "exitrl: cpu diversity_scale: out of memory for a %d-channel centroid\n", C);
        exit(1);
    }
    for (int g = 0; g < P; g++) {
        const float *e = emb + (size_t)g * G * C;
        for (int c = 0; c < C; c++) centroid[c] = 0.0;
        for (int i = 0; i < G; i++)
            for (int c = 0; c < C; c++) centroid[c] += e[(size_t)i * C + c];
        for (int c = 0; c < C; c++) centroid[c] /= G;
        /* Distances are recomputed in the second pass rather than stored: no scratch of G. */
        double dmax = -INFINITY, dmin = INFINITY;
        for (int i = 0; i < G; i++) {
            double dist = distance_to(e + (size_t)i * C, centroid, C);
            dmax = fmax(dmax, dist);
            dmin = fmin(dmin, dist);
        }
        const double range = dmax - dmin;
        for (int i = 0; i < G; i++)
            d[(size_t)g * G + i] =
                range <= 1e-4 * dmax ? 1.0f : (float)(distance_to(e + (size_t)i * C, centroid, C) / range);
    }
    free(centroid);
}

/* chosen[j] = 1 for the k members with the largest key (ties: lowest j), 0 for the others: member
 * j is kept when fewer than k members rank before it. k >= G keeps all, k <= 0 none. */
static void keep_top_k(const double *key, int G, int k, int *chosen) {
    for (int j = 0; j < G; j++) {
        int before = 0;
        for (int i = 0; i < G; i++)
            if (key[i] > key[j] || (key[i] == key[j] && i < j)) before++;
        chosen[j] = before < k;
    }
}

void cpu_score_groups(exitrl_backend *be, float *scores, int *chosen, const float *rewards, int P,
                      int G, int mode, int k, uint64_t seed) {
    (void)be;
    if (mode != EXITRL_SELECT_ALL && mode != EXITRL_SELECT_BEST && mode != EXITRL_SELECT_TOPK &&
        mode != EXITRL_SELECT_RANDOM) {
        fprintf(stderr, "exitrl: cpu score_groups: unknown selection mode %d; nothing chosen\n", mode);
        mode = -1;
    }
    double *key = malloc((size_t)(G > 0 ? G : 1) * sizeof(double));
    if (!key) {
        fprintf(stderr, "exitrl: cpu score_groups: out of memory for a group of %d\n", G);
        exit(1);
    }
    const uint32_t philox_key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int g = 0; g < P; g++) {
        const float *r = rewards + (size_t)g * G;
        int *ch = chosen + (size_t)g * G;
        double m, ssd;
        mean_and_ssd(r, G, &m, &ssd);
        scores[g] = (float)(4.0 * ssd / G);
        switch (mode) {
        case EXITRL_SELECT_ALL:
            for (int j = 0; j < G; j++) ch[j] = 1;
            break;
        case EXITRL_SELECT_BEST:
        case EXITRL_SELECT_TOPK:
            for (int j = 0; j < G; j++) key[j] = r[j];
            keep_top_k(key, G, mode == EXITRL_SELECT_BEST ? 1 : k, ch);
            break;
        case EXITRL_SELECT_RANDOM:
            /* The 24 bits philox_uniform would use; the smallest draws win, so the key is the
             * negated draw (exact in double). */
            for (int j = 0; j < G; j++) {
                uint32_t ctr[4] = {(uint32_t)j, (uint32_t)g, 1u, 0u}, out[4];
                philox4x32_10(ctr, philox_key, out);
                key[j] = -(double)(out[0] >> 8);
            }
            keep_top_k(key, G, k, ch);
            break;
        default:
            for (int j = 0; j < G; j++) ch[j] = 0;
        }
    }
    free(key);
}
