/* Minimal test harness: CHECK records a failure and goes on; test_finish prints a summary and
 * returns the exit code (0 pass, 1 fail). GPU tests return TEST_SKIP (77) when no GPU is present.
 * Also the helpers the tests share: deterministic inputs, error ratios, host and backend buffers
 * (a failed allocation ends the test with exit 1), reference formulas and tensor names. */
#ifndef EXITRL_TEST_UTIL_H
#define EXITRL_TEST_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/model.h" /* exitrl_backend (ops.h), GPT_NUM_PARAM_TENSORS */

#define TEST_SKIP 77
static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        test_checks++;                                                            \
        if (!(cond)) {                                                            \
            test_failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

static inline int test_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

/* Deterministic uniform floats in [-scale, scale) for test inputs (xorshift64*). */
static inline float test_randf(unsigned long long *s, float scale) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    unsigned long long r = *s * 2685821657736338717ULL;
    return scale * (2.0f * (float)((r >> 40) * (1.0 / 16777216.0)) - 1.0f);
}
static inline void test_fill(float *x, size_t n, unsigned long long seed, float scale) {
    unsigned long long s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) x[i] = test_randf(&s, scale);
}
/* LayerNorm inputs x [N, C], w [C], b [C]: rows with a per-row offset and spread, so mean and
 * rstd differ from 0 and 1; w around 1. */
static inline void test_fill_layernorm(float *x, float *w, float *b, int N, int C, unsigned long long seed) {
    test_fill(x, (size_t)N * C, seed, 1.0f);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) x[n * C + c] = x[n * C + c] * (0.5f + 0.2f * n) + 0.3f * n - 1.0f;
    test_fill(w, C, seed + 1, 0.5f);
    for (int c = 0; c < C; c++) w[c] += 1.0f;
    test_fill(b, C, seed + 2, 0.5f);
}
/* Max over i of |a-b| / (atol + rtol*|b|); <= 1 means within tolerance. */
static inline double test_max_err_ratio(const float *a, const float *b, size_t n, double atol,
                                        double rtol, size_t *worst) {
    double m = 0; size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= m)) { m = e; w = i; }  /* NaN also lands here */
        if (isnan(e)) { m = INFINITY; w = i; break; }
    }
    if (worst) *worst = w;
    return m;
}

/* |a - b| < 1e-6: a float score equal to a decimal value. */
static inline int test_near(float a, double b) { return fabs((double)a - b) < 1e-6; }

/* ---- host memory: zeroed ---- */
static inline void *test_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "test: out of host memory for %zu values of %zu bytes\n", n, size);
        exit(1);
    }
    return p;
}
static inline float *test_floats(size_t n) { return test_calloc(n, sizeof(float)); }
static inline double *test_doubles(size_t n) { return test_calloc(n, sizeof(double)); }

/* ---- backends and their buffers ---- */
/* The CPU reference backend; a failure to create it, or activations other than fp32 (which the
 * tests' tolerances assume), ends the test with exit 1. */
static inline exitrl_backend *test_cpu_backend(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    if (!be) {
        fprintf(stderr, "FAIL: cannot create the CPU backend\n");
        exit(1);
    }
    if (be->act_dtype != EXITRL_F32) {
        fprintf(stderr, "FAIL: the CPU backend is expected to compute in fp32\n");
        exit(1);
    }
    return be;
}
/* bytes of zeroed backend memory (be->alloc zeroes). */
static inline void *dev_zeros(exitrl_backend *be, size_t bytes) {
    void *d = be->alloc(be, bytes);
    if (!d) {
        fprintf(stderr, "test: backend alloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    return d;
}
/* A backend copy of bytes of host memory. */
static inline void *dev_upload(exitrl_backend *be, const void *host, size_t bytes) {
    void *d = dev_zeros(be, bytes);
    be->upload(be, d, host, bytes);
    return d;
}
/* bytes of d into host, after the work queued on the backend. */
static inline void dev_download(exitrl_backend *be, void *host, const void *d, size_t bytes) {
    be->download(be, host, d, bytes);
    be->sync(be);
}
/* bytes of d in new host memory (free it). */
static inline void *dev_read(exitrl_backend *be, const void *d, size_t bytes) {
    void *h = test_calloc(bytes, 1);
    dev_download(be, h, d, bytes);
    return h;
}

/* ---- reference formulas ---- */
/* GELU, tanh approximation (Hendrycks & Gimpel, 2016), in double. */
static inline double test_gelu_tanh(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/* The model's parameter tensors by index (host/model/model.h's P_WTE ... P_LNFB), for messages. */
static const char *const test_tensor_names[GPT_NUM_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
#endif
