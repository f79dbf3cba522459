#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, execv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_ops.h"
#ifdef EXITRL_HAVE_CBLAS
#include <cblas.h>
#endif

#define CHOSEN_ENV "EXITRL_OPENBLAS_FALLBACK" /* set across the re-exec of exitrl_cpu_blas_choose_core */

#ifndef EXITRL_BLAS_DESC /* CMake defines it; a build without CMake (tools/cudasim) says only this */
#ifdef EXITRL_HAVE_CBLAS
#define EXITRL_BLAS_DESC "CBLAS (library not recorded: built without CMake)"
#else
#define EXITRL_BLAS_DESC "none"
#endif
#endif

#ifdef EXITRL_HAVE_OPENBLAS_INFO
/* The OpenBLAS core whose kernels suit this CPU when OpenBLAS itself fell back to its generic
 * SSE3 ones (it does on CPU models it does not know, as in VMs), else NULL. */
static const char *better_openblas_core(void) {
    const char *core = openblas_get_corename();
    if (!core || !strstr(core, "Prescott")) return NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}
#endif

void exitrl_cpu_blas_choose_core(char **argv) {
#ifdef EXITRL_HAVE_OPENBLAS_INFO
    if (getenv("OPENBLAS_CORETYPE") || getenv(CHOSEN_ENV)) return; /* the user's choice, or done */
    const char *core = better_openblas_core();
    if (!core) return;
    /* OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded: only a new process image sees it.
     * CHOSEN_ENV records what OpenBLAS had picked (for exitrl_cpu_blas_info) and stops a loop. */
    if (setenv("OPENBLAS_CORETYPE", core, 1) || setenv(CHOSEN_ENV, openblas_get_corename(), 1)) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: go on with the generic kernels, and say so */
    unsetenv(CHOSEN_ENV);
#else
    (void)argv;
#endif
}

void exitrl_cpu_blas_info(char *buf, size_t len) {
#ifdef EXITRL_HAVE_OPENBLAS_INFO
    const char *core = openblas_get_corename(), *better = better_openblas_core(), *was = getenv(CHOSEN_ENV);
    char note[160] = "";
    if (was && getenv("OPENBLAS_CORETYPE"))
        snprintf(note, sizeof note, "; OPENBLAS_CORETYPE=%s set by exitrl (OpenBLAS had picked the generic %s)",
                 getenv("OPENBLAS_CORETYPE"), was);
    else if (better)
        snprintf(note, sizeof note, "; generic kernels on a CPU with %s: OPENBLAS_CORETYPE=%s would be faster",
                 strcmp(better, "SkylakeX") ? "AVX2" : "AVX-512", better);
    snprintf(buf, len, "%s (%s; core %s)%s", EXITRL_BLAS_DESC, openblas_get_config(), core ? core : "?", note);
#else
    snprintf(buf, len, "%s", EXITRL_BLAS_DESC);
#endif
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* tanh(u) = 1 - 2 / (exp(2u) + 1): written with expf so that `omp simd` loops vectorise it
 * through libmvec (tanhf has no vector variant); exact at both saturations, and within a few ulp
 * of tanhf in absolute terms near 0, where GELU multiplies it by x anyway. */
static inline float tanh_via_exp(float u) { return 1.0f - 2.0f / (expf(2.0f * u) + 1.0f); }

float cpu_gelu(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanh_via_exp(u));
}

float cpu_gelu_grad(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    float th = tanh_via_exp(u);
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

/* out[N,OC] = inp[N,C] @ w[OC,C]^T (no bias). */
static void gemm_nt(float *out, const float *inp, const float *w, int N, int C, int OC) {
#ifdef EXITRL_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
#else
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            const float *x = inp + (size_t)n * C, *wr = w + (size_t)o * C;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int c = 0; c < C; c++) s += x[c] * wr[c];
            out[(size_t)n * OC + o] = s;
        }
#endif
}

void cpu_matmul_epilogue(exitrl_backend *be, void *out_, void *pre_gelu_, const void *bias_, int N, int OC) {
    (void)be;
    float *out = out_, *pre = pre_gelu_;
    const float *bias = bias_;
    float *acc = pre ? pre : out;
    if (!bias && !pre) return;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *a = acc + (size_t)n * OC, *o = out + (size_t)n * OC;
        if (bias)
            for (int j = 0; j < OC; j++) a[j] += bias[j];
        if (pre) {
#pragma omp simd
            for (int j = 0; j < OC; j++) o[j] = cpu_gelu(a[j]);
        }
    }
}

void cpu_matmul_forward(exitrl_backend *be, void *out, void *pre_gelu, const void *inp,
                        const void *w, const void *bias, int N, int C, int OC) {
    gemm_nt(pre_gelu ? pre_gelu : out, inp, w, N, C, OC);
    cpu_matmul_epilogue(be, out, pre_gelu, bias, N, OC);
}

void cpu_matmul_backward(exitrl_backend *be, void *dinp_, float *dweight, float *dbias, void *dout_,
                         const void *inp_, const void *w_, const void *pre_gelu_, int N, int C,
                         int OC) {
    float *dinp = dinp_, *dout = dout_;
    const float *inp = inp_, *w = w_, *pre = pre_gelu_;
    if (pre) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) {
            float *d = dout + (size_t)n * OC;
            const float *x = pre + (size_t)n * OC;
#pragma omp simd
            for (int j = 0; j < OC; j++) d[j] *= cpu_gelu_grad(x[j]);
        }
    }
#ifdef EXITRL_HAVE_CBLAS
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f,
                    dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                dweight, C);
#else
    if (dinp) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) {
            float *dx = dinp + (size_t)n * C;
            memset(dx, 0, (size_t)C * sizeof(float));
            for (int o = 0; o < OC; o++) {
                float d = dout[(size_t)n * OC + o];
                const float *wr = w + (size_t)o * C;
#pragma omp simd
                for (int c = 0; c < C; c++) dx[c] += d * wr[c];
            }
        }
    }
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
        float *dw = dweight + (size_t)o * C;
        for (int n = 0; n < N; n++) {
            float d = dout[(size_t)n * OC + o];
            const float *x = inp + (size_t)n * C;
#pragma omp simd
            for (int c = 0; c < C; c++) dw[c] += d * x[c];
        }
    }
#endif
    if (dbias) {
#pragma omp parallel for
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            dbias[o] += s;
        }
    }
}
