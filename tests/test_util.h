/* Minimal test harness: CHECK records a failure and goes on; test_finish prints a summary and
 * returns the exit code (0 pass, 1 fail). GPU tests return TEST_SKIP (77) when no GPU is present. */
#ifndef EXITRL_TEST_UTIL_H
#define EXITRL_TEST_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
#endif
