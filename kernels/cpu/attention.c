/* Causal multi-head attention, computed row by row with the scores kept in a per-thread scratch
 * row of length T (never a T x T matrix). The backward recomputes the probabilities from q, k and
 * the saved log-sum-exp, as a flash-attention kernel does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

void cpu_attention_forward(exitrl_backend *be, void *out_, float *lse, const void *qkv_, int B,
                           int T, int C, int NH) {
    float *out = out_;
    const float *qkv = qkv_;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t row = 3 * (size_t)C;
#pragma omp parallel
    {
        float *p = malloc((size_t)T * sizeof(float));
#pragma omp for collapse(3)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    const float *q = qkv + ((size_t)b * T + t) * row + h * hs;
                    float mx = -INFINITY;
                    for (int s = 0; s <= t; s++) {
                        const float *k = qkv + ((size_t)b * T + s) * row + C + h * hs;
                        float d = 0.0f;
#pragma omp simd reduction(+ : d)
                        for (int i = 0; i < hs; i++) d += q[i] * k[i];
                        p[s] = d * scale;
                        if (p[s] > mx) mx = p[s];
                    }
                    float sum = 0.0f;
                    for (int s = 0; s <= t; s++) {
                        p[s] = expf(p[s] - mx);
                        sum += p[s];
                    }
                    float inv = 1.0f / sum;
                    float *o = out + ((size_t)b * T + t) * C + h * hs;
                    memset(o, 0, (size_t)hs * sizeof(float));
                    for (int s = 0; s <= t; s++) {
                        const float *v = qkv + ((size_t)b * T + s) * row + 2 * C + h * hs;
                        float w = p[s] * inv;
#pragma omp simd
                        for (int i = 0; i < hs; i++) o[i] += w * v[i];
                    }
                    if (lse) lse[((size_t)b * NH + h) * T + t] = mx + logf(sum);
                }
        free(p);
    }
}

/* With P = softmax(S), S = scale * q k^T (causal), O = P v:
 *   dv_s += P_ts dO_t;  dP_ts = dO_t . v_s;  dS_ts = P_ts (dP_ts - dO_t . O_t);
 *   dq_t += scale * dS_ts k_s;  dk_s += scale * dS_ts q_t. */
void cpu_attention_backward(exitrl_backend *be, void *dqkv_, const void *dout_, const void *qkv_,
                            const void *out_, const float *lse, int B, int T, int C, int NH) {
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t row = 3 * (size_t)C;
    /* Each (b, h) owns disjoint slices of dqkv, so the pairs run in parallel without races. */
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3; part++)
                    memset(dqkv + ((size_t)b * T + t) * row + part * C + h * hs, 0,
                           (size_t)hs * sizeof(float));
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * row + h * hs;
                const float *dO = dout + ((size_t)b * T + t) * C + h * hs;
                const float *O = out + ((size_t)b * T + t) * C + h * hs;
                float *dq = dqkv + ((size_t)b * T + t) * row + h * hs;
                float L = lse[((size_t)b * NH + h) * T + t];
                float Dt = 0.0f;
#pragma omp simd reduction(+ : Dt)
                for (int i = 0; i < hs; i++) Dt += dO[i] * O[i];
                for (int s = 0; s <= t; s++) {
                    const float *k = qkv + ((size_t)b * T + s) * row + C + h * hs;
                    const float *v = k + C;
                    float *dk = dqkv + ((size_t)b * T + s) * row + C + h * hs;
                    float *dv = dk + C;
                    float sc = 0.0f, dp = 0.0f;
#pragma omp simd reduction(+ : sc, dp)
                    for (int i = 0; i < hs; i++) {
                        sc += q[i] * k[i];
                        dp += dO[i] * v[i];
                    }
                    float P = expf(sc * scale - L);
                    float dS = P * (dp - Dt) * scale;
#pragma omp simd
                    for (int i = 0; i < hs; i++) {
                        dv[i] += P * dO[i];
                        dq[i] += dS * k[i];
                        dk[i] += dS * q[i];
                    }
                }
            }
        }
}
