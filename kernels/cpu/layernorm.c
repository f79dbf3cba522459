#include <math.h>

#include "cpu_ops.h"

#define LN_EPS 1e-5f

static void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int C) {
    float m = 0.0f;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    float var = 0.0f;
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= C;
    float s = 1.0f / sqrtf(var + LN_EPS);
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    if (mean) *mean = m;
    if (rstd) *rstd = s;
}

void cpu_layernorm_forward(exitrl_backend *be, void *out, float *mean, float *rstd, const void *inp,
                           const void *w, const void *b, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        layernorm_row((float *)out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL,
                      (const float *)inp + (size_t)n * C, w, b, C);
}

void cpu_residual_layernorm_forward(exitrl_backend *be, void *res, void *out, float *mean,
                                    float *rstd, const void *a, const void *b_in, const void *w,
                                    const void *bias, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *r = (float *)res + (size_t)n * C;
        const float *x = (const float *)a + (size_t)n * C, *y = (const float *)b_in + (size_t)n * C;
        for (int c = 0; c < C; c++) r[c] = x[c] + y[c];
        layernorm_row((float *)out + (size_t)n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL,
                      r, w, bias, C);
    }
}

/* With xhat = (x - mean) * rstd and g = dout * w:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += dout * xhat,  db += dout. */
void cpu_layernorm_backward(exitrl_backend *be, void *dinp_, float *dw, float *db,
                            const void *dout_, const void *inp_, const void *w_, const float *mean,
                            const float *rstd, int N, int C) {
    float *dinp = dinp_;
    const float *dout = dout_, *inp = inp_, *w = w_;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C, *x = inp + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float gmean = 0.0f, gxmean = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s, g = d[c] * w[c];
            gmean += g;
            gxmean += g * xhat;
        }
        gmean /= C;
        gxmean /= C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s, g = d[c] * w[c];
            dx[c] += s * (g - gmean - xhat * gxmean);
        }
    }
    /* Parameter gradients: parallel over channels so no two threads touch one element. */
#pragma omp parallel for
    for (int c = 0; c < C; c++) {
        float sw = 0.0f, sb = 0.0f;
        for (int n = 0; n < N; n++) {
            float d = dout[(size_t)n * C + c];
            sw += d * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
            sb += d;
        }
        dw[c] += sw;
        db[c] += sb;
    }
}
