/* CPU reference of the fused classifiers (ops.h): the supervised one (classifier_forward_backward)
 * and the GRPO one (grpo_classifier). */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

void cpu_classifier_forward_backward(exitrl_backend *be, void *logits_, float *losses,
                                     const float *dloss_weights, const int *targets, int N, int V,
                                     int Vp) {
    float *logits = logits_;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * Vp;
        int tgt = targets[n];
        if (tgt < 0) {
            if (losses) losses[n] = 0.0f;
            if (dloss_weights) memset(l, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        float mx = -INFINITY;
        for (int v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) sum += expf(l[v] - mx);
        float lse = mx + logf(sum);
        if (losses) losses[n] = lse - l[tgt];
        if (dloss_weights) {
            float w = dloss_weights[n];
            for (int v = 0; v < V; v++) {
                float p = expf(l[v] - lse);
                l[v] = w * (p - (v == tgt ? 1.0f : 0.0f));
            }
            for (int v = V; v < Vp; v++) l[v] = 0.0f;
        }
    }
}

void cpu_grpo_classifier(exitrl_backend *be, void *logits_, const int *targets, const float *lp_old,
                         const float *lp_ref, const float *adv, const float *weight, float inv_temp,
                         float eps_low, float eps_high, float beta, float *lp_new, float *loss_out,
                         float *clipped, int N, int V, int Vp) {
    (void)be;
    float *logits = logits_;
    const double lo = 1.0 - (double)eps_low, hi = 1.0 + (double)eps_high;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * Vp;
        const int tgt = targets[n];
        if (tgt < 0) {
            memset(l, 0, (size_t)Vp * sizeof(float));
            if (lp_new) lp_new[n] = 0.0f;
            if (loss_out) loss_out[n] = 0.0f;
            if (clipped) clipped[n] = 0.0f;
            continue;
        }
        /* Softmax of the scaled logits; the row holds exp(z - max) until it becomes dlogits. */
        float zmax = -INFINITY;
        for (int v = 0; v < V; v++) zmax = fmaxf(zmax, l[v] * inv_temp);
        const float z_tgt = l[tgt] * inv_temp;
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += (l[v] = expf(l[v] * inv_temp - zmax));
        const double lp = (double)z_tgt - zmax - log(sum);

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
        if (w == 0.0) { /* no gradient, even where g is not finite */
            memset(l, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        const float coef = (float)(w * g * inv_temp), inv_sum = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) {
            float p = l[v] * inv_sum;
            l[v] = coef * ((v == tgt ? 1.0f : 0.0f) - p);
        }
        for (int v = V; v < Vp; v++) l[v] = 0.0f;
    }
}
