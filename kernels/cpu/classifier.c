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
