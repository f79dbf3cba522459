/* Causal multi-head attention, computed row by row with the scores kept in a per-thread scratch
 * row of length T (never a T x T matrix). The backward recomputes the probabilities from q, k and
 * the saved log-sum-exp, as a flash-attention kernel does. One implementation serves the causal
 * ops and the packed ones (ops.h attention_forward_packed): query t sees keys [0, e1) and [s2, t],
 * which for causal rows is [0, t]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

/* The keys query t of sequence b sees: [0, *e1) and [*s2, t]. */
static inline void visible(const int *prefix_len, const int *seg_start, int b, int T, int t, int *e1, int *s2) {
    if (!prefix_len) {
        *e1 = *s2 = t + 1;
        return;
    }
    const int plen = prefix_len[b], seg = seg_start[(size_t)b * T + t];
    *e1 = plen < t + 1 ? plen : t + 1;
    *s2 = seg > *e1 ? seg : *e1;
}
/* The first visible key, and the next one after s (s2 when s + 1 reaches e1). */
#define FIRST_KEY(e1, s2) ((e1) > 0 ? 0 : (s2))
#define NEXT_KEY(s, e1, s2) ((s) + 1 == (e1) ? (s2) : (s) + 1)

static void attention_forward(float *out, float *lse, const float *qkv, const int *prefix_len,
                              const int *seg_start, int B, int T, int C, int NH) {
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
                    int e1, s2;
                    visible(prefix_len, seg_start, b, T, t, &e1, &s2);
                    float mx = -INFINITY;
                    for (int s = FIRST_KEY(e1, s2); s <= t; s = NEXT_KEY(s, e1, s2)) {
                        const float *k = qkv + ((size_t)b * T + s) * row + C + h * hs;
                        float d = 0.0f;
#pragma omp simd reduction(+ : d)
                        for (int i = 0; i < hs; i++) d += q[i] * k[i];
                        p[s] = d * scale;
                        if (p[s] > mx) mx = p[s];
                    }
                    float sum = 0.0f;
                    for (int s = FIRST_KEY(e1, s2); s <= t; s = NEXT_KEY(s, e1, s2)) {
                        p[s] = expf(p[s] - mx);
                        sum += p[s];
                    }
                    float inv = 1.0f / sum;
                    float *o = out + ((size_t)b * T + t) * C + h * hs;
                    memset(o, 0, (size_t)hs * sizeof(float));
                    for (int s = FIRST_KEY(e1, s2); s <= t; s = NEXT_KEY(s, e1, s2)) {
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

void cpu_attention_forward(exitrl_backend *be, void *out, float *lse, const void *qkv, int B, int T, int C,
                           int NH) {
    attention_forward(out, lse, qkv, NULL, NULL, B, T, C, NH);
}

void cpu_attention_forward_packed(exitrl_backend *be, void *out, float *lse, const void *qkv, const int *prefix_len,
                                  const int *seg_start, int B, int T, int C, int NH) {
    attention_forward(out, lse, qkv, prefix_len, seg_start, B, T, C, NH);
}

/* With P = softmax(S), S = scale * q k^T (causal), O = P v:
 *   dv_s += P_ts dO_t;  dP_ts = dO_t . v_s;  dS_ts = P_ts (dP_ts - dO_t . O_t);
 *   dq_t += scale * dS_ts k_s;  dk_s += scale * dS_ts q_t. */
static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                               const float *lse, const int *prefix_len, const int *seg_start, int B, int T, int C,
                               int NH) {
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
                int e1, s2;
                visible(prefix_len, seg_start, b, T, t, &e1, &s2);
                for (int s = FIRST_KEY(e1, s2); s <= t; s = NEXT_KEY(s, e1, s2)) {
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

void cpu_attention_backward(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                            const float *lse, int B, int T, int C, int NH) {
    attention_backward(dqkv, dout, qkv, out, lse, NULL, NULL, B, T, C, NH);
}

void cpu_attention_backward_packed(exitrl_backend *be, void *dqkv, const void *dout, const void *qkv,
                                   const void *out, const float *lse, const int *prefix_len, const int *seg_start,
                                   int B, int T, int C, int NH) {
    attention_backward(dqkv, dout, qkv, out, lse, prefix_len, seg_start, B, T, C, NH);
}
