#include "cpu_ops.h"

void cpu_encoder_forward(exitrl_backend *be, void *out_, const int *tok, const void *wte_,
                         const void *wpe_, int B, int T, int C) {
    float *out = out_;
    const float *wte = wte_, *wpe = wpe_;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *we = wte + (size_t)tok[b * T + t] * C;
            const float *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
        }
}

void cpu_encoder_backward(exitrl_backend *be, float *dwte, float *dwpe, const void *dout_,
                          const int *tok, int B, int T, int C) {
    const float *dout = dout_;
    /* Serial over tokens: rows of dwte may repeat, and a fixed order keeps the sum deterministic. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *we = dwte + (size_t)tok[b * T + t] * C;
            float *pe = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                we[c] += d[c];
                pe[c] += d[c];
            }
        }
}
