/* Gradient checks for every backward op of the CPU reference backend (fp32).
 *
 * Each backward op is compared with central finite differences of a scalar objective, usually
 * L = sum(out * R) with a fixed random R (so every output contributes a different weight and the
 * gradients are not trivially symmetric). L is summed in double on the host. Every element of
 * every input is checked (the shapes are small and odd: B=2, T=5, C=12, NH=3, OC=7, V=11, Vp=16).
 * The accumulate / overwrite rules of ops.h are checked by pre-filling outputs and calling twice.
 * AdamW, grad_norm_clip and the classifier's losses are checked against double-precision formulas.
 *
 * Finite-difference tolerance, |g - fd| <= FD_ATOL + FD_RTOL * |fd|, with step FD_H = 3e-3 on
 * inputs of magnitude ~1. The divisor is the step actually taken, (float)(x+h) - (float)(x-h), so
 * rounding the perturbed input adds no error. The two error sources pull h in opposite ways:
 * - truncation, h^2/6 * |d3L/dx3| ~ 1.5e-6 * |d3L/dx3|: negligible here (it shows near h = 3e-2);
 * - rounding: each fp32 output is off by ~6e-8 relative, one input moves up to a few dozen
 *   outputs of magnitude <= ~3, so L carries noise ~1e-6 and fd ~1e-6 / (2h) ~ 2e-4.
 * Measured with this backend: max |g - fd| = 3e-4 (layernorm dinp), <= 1.6e-4 elsewhere; with
 * h = 1e-3 it is 6e-4, with h = 1e-2 it is 2e-4 but truncation starts to show.
 * FD_ATOL = 1e-3 is ~3x the worst measured noise yet ~100x below typical gradients (0.1..1), and
 * FD_RTOL = 1e-3 covers the few gradients above 1. A dropped term, wrong sign or wrong index
 * moves some element by far more.
 */
#include <string.h>

#include "ops.h"
#include "test_util.h"

enum { B = 2, T = 5, C = 12, NH = 3, N = B * T, OC = 7, V = 11, VP = 16 };

#define FD_H 3e-3f
#define FD_ATOL 1e-3
#define FD_RTOL 1e-3

static double dot_d(const float *a, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)r[i];
    return s;
}

/* ---- the finite-difference check ---- */

/* Returns the objective for the current host inputs (it uploads them and runs the forward). */
typedef double (*objective_fn)(exitrl_backend *be, void *ctx);

/* Compares analytic[i] with the central difference dL/dx[i] for every i < n, where x is a host
 * array the objective reads on each call. x is restored afterwards. One CHECK per tensor, naming
 * the worst element. */
static void fd_check(const char *what, exitrl_backend *be, objective_fn obj, void *ctx, float *x,
                     size_t n, const float *analytic) {
    double worst = 0, worst_g = 0, worst_fd = 0, max_abs = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        float xp = x0 + FD_H, xm = x0 - FD_H;
        x[i] = xp;
        double lp = obj(be, ctx);
        x[i] = xm;
        double lm = obj(be, ctx);
        x[i] = x0;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double err = fabs((double)analytic[i] - fd);
        double ratio = err / (FD_ATOL + FD_RTOL * fabs(fd));
        if (isnan(ratio)) ratio = INFINITY;
        if (err > max_abs) max_abs = err;
        if (!(ratio <= worst)) { worst = ratio; worst_i = i; worst_g = analytic[i]; worst_fd = fd; }
    }
    printf("  %-34s n=%4zu  max|g-fd| = %.2e  worst ratio %.3f\n", what, n, max_abs, worst);
    CHECK(worst <= 1.0, "%s: element %zu analytic %.6g vs finite difference %.6g", what, worst_i,
          worst_g, worst_fd);
}

/* a == k * b within fp32 rounding of a short sum (used for "called twice accumulates twice"). */
static void check_scaled(const char *what, const float *a, const float *b, float k, size_t n) {
    float *kb = malloc(n * sizeof(float));
    if (!kb) { fprintf(stderr, "test: out of host memory for %zu floats\n", n); exit(1); }
    for (size_t i = 0; i < n; i++) kb[i] = k * b[i];
    size_t w;
    double r = test_max_err_ratio(a, kb, n, 1e-6, 1e-5, &w);
    CHECK(r <= 1.0, "%s: element %zu is %.8g, expected %.8g", what, w, a[w], kb[w]);
    free(kb);
}

/* ---- encoder ---- */

typedef struct {
    int tok[N];
    float wte[VP * C], wpe[T * C], r[N * C];
} encoder_case;

static double encoder_objective(exitrl_backend *be, void *p) {
    encoder_case *k = p;
    int *tok = dev_upload(be, k->tok, sizeof k->tok);
    void *wte = dev_upload(be, k->wte, sizeof k->wte), *wpe = dev_upload(be, k->wpe, sizeof k->wpe);
    void *out = dev_zeros(be, N * C * sizeof(float));
    be->encoder_forward(be, out, tok, wte, wpe, B, T, C);
    float h[N * C];
    dev_download(be, h, out, sizeof h);
    be->free(be, tok); be->free(be, wte); be->free(be, wpe); be->free(be, out);
    return dot_d(h, k->r, N * C);
}

static void test_encoder(exitrl_backend *be) {
    printf("encoder_backward\n");
    /* Token 3 appears three times and 0 three times across both rows; 15 (a padded id) twice;
     * most ids never appear, so their dwte rows must stay zero. */
    encoder_case k = {.tok = {3, 3, 0, 15, 3, 7, 0, 0, 1, 15}};
    test_fill(k.wte, VP * C, 11, 1.0f);
    test_fill(k.wpe, T * C, 12, 1.0f);
    test_fill(k.r, N * C, 13, 1.0f);

    int *tok = dev_upload(be, k.tok, sizeof k.tok);
    void *dout = dev_upload(be, k.r, sizeof k.r);
    float *dwte = dev_zeros(be, sizeof k.wte), *dwpe = dev_zeros(be, sizeof k.wpe);
    float g_wte[VP * C], g_wpe[T * C], g2_wte[VP * C], g2_wpe[T * C];
    be->encoder_backward(be, dwte, dwpe, dout, tok, B, T, C);
    dev_download(be, g_wte, dwte, sizeof g_wte);
    dev_download(be, g_wpe, dwpe, sizeof g_wpe);
    be->encoder_backward(be, dwte, dwpe, dout, tok, B, T, C);
    dev_download(be, g2_wte, dwte, sizeof g2_wte);
    dev_download(be, g2_wpe, dwpe, sizeof g2_wpe);

    fd_check("dwte", be, encoder_objective, &k, k.wte, VP * C, g_wte);
    fd_check("dwpe", be, encoder_objective, &k, k.wpe, T * C, g_wpe);
    int unused_zero = 1;
    for (int c = 0; c < C; c++) unused_zero &= g_wte[9 * C + c] == 0.0f;
    CHECK(unused_zero, "dwte row of a token that never occurs is not exactly zero");
    check_scaled("dwte accumulates", g2_wte, g_wte, 2.0f, VP * C);
    check_scaled("dwpe accumulates", g2_wpe, g_wpe, 2.0f, T * C);
    be->free(be, tok); be->free(be, dout); be->free(be, dwte); be->free(be, dwpe);
}

/* ---- layernorm ---- */

typedef struct {
    float inp[N * C], w[C], b[C], r[N * C];
} layernorm_case;

static double layernorm_objective(exitrl_backend *be, void *p) {
    layernorm_case *k = p;
    void *inp = dev_upload(be, k->inp, sizeof k->inp);
    void *w = dev_upload(be, k->w, sizeof k->w), *b = dev_upload(be, k->b, sizeof k->b);
    void *out = dev_zeros(be, sizeof k->inp);
    float *mean = dev_zeros(be, N * sizeof(float)), *rstd = dev_zeros(be, N * sizeof(float));
    be->layernorm_forward(be, out, mean, rstd, inp, w, b, N, C);
    float h[N * C];
    dev_download(be, h, out, sizeof h);
    be->free(be, inp); be->free(be, w); be->free(be, b); be->free(be, out);
    be->free(be, mean); be->free(be, rstd);
    return dot_d(h, k->r, N * C);
}

static void test_layernorm(exitrl_backend *be) {
    printf("layernorm_backward\n");
    layernorm_case k;
    test_fill_layernorm(k.inp, k.w, k.b, N, C, 21);
    test_fill(k.r, N * C, 24, 1.0f);

    void *inp = dev_upload(be, k.inp, sizeof k.inp);
    void *w = dev_upload(be, k.w, sizeof k.w), *b = dev_upload(be, k.b, sizeof k.b);
    void *out = dev_zeros(be, sizeof k.inp);
    float *mean = dev_zeros(be, N * sizeof(float)), *rstd = dev_zeros(be, N * sizeof(float));
    be->layernorm_forward(be, out, mean, rstd, inp, w, b, N, C);

    /* dinp starts non-zero: the op must add to it. */
    float d0[N * C];
    test_fill(d0, N * C, 25, 1.0f);
    void *dinp = dev_upload(be, d0, sizeof d0);
    void *dout = dev_upload(be, k.r, sizeof k.r);
    float *dw = dev_zeros(be, sizeof k.w), *db = dev_zeros(be, sizeof k.b);
    be->layernorm_backward(be, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    float d1[N * C], g_inp[N * C], g_w[C], g_b[C];
    dev_download(be, d1, dinp, sizeof d1);
    dev_download(be, g_w, dw, sizeof g_w);
    dev_download(be, g_b, db, sizeof g_b);
    for (int i = 0; i < N * C; i++) g_inp[i] = d1[i] - d0[i];

    be->layernorm_backward(be, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    float d2[N * C], g2_w[C], g2_b[C], twice[N * C];
    dev_download(be, d2, dinp, sizeof d2);
    dev_download(be, g2_w, dw, sizeof g2_w);
    dev_download(be, g2_b, db, sizeof g2_b);
    for (int i = 0; i < N * C; i++) twice[i] = d2[i] - d0[i];

    fd_check("dinp (after subtracting prefill)", be, layernorm_objective, &k, k.inp, N * C, g_inp);
    fd_check("dw", be, layernorm_objective, &k, k.w, C, g_w);
    fd_check("db", be, layernorm_objective, &k, k.b, C, g_b);
    check_scaled("layernorm dinp accumulates", twice, g_inp, 2.0f, N * C);
    check_scaled("layernorm dw accumulates", g2_w, g_w, 2.0f, C);
    check_scaled("layernorm db accumulates", g2_b, g_b, 2.0f, C);
    be->free(be, inp); be->free(be, w); be->free(be, b); be->free(be, out); be->free(be, mean);
    be->free(be, rstd); be->free(be, dinp); be->free(be, dout); be->free(be, dw); be->free(be, db);
}

/* ---- fused residual + layernorm, and its backward chain ---- */

/* L = sum(out * r) + sum(res * r_res): the residual stream is also read downstream, as in the
 * model, so its gradient arriving from later layers (r_res) must survive the layernorm backward. */
typedef struct {
    float a[N * C], b_in[N * C], w[C], bias[C], r[N * C], r_res[N * C];
} residual_case;

static double residual_objective(exitrl_backend *be, void *p) {
    residual_case *k = p;
    void *a = dev_upload(be, k->a, sizeof k->a), *b_in = dev_upload(be, k->b_in, sizeof k->b_in);
    void *w = dev_upload(be, k->w, sizeof k->w), *bias = dev_upload(be, k->bias, sizeof k->bias);
    void *res = dev_zeros(be, sizeof k->a), *out = dev_zeros(be, sizeof k->a);
    float *mean = dev_zeros(be, N * sizeof(float)), *rstd = dev_zeros(be, N * sizeof(float));
    be->residual_layernorm_forward(be, res, out, mean, rstd, a, b_in, w, bias, N, C);
    float h_out[N * C], h_res[N * C];
    dev_download(be, h_out, out, sizeof h_out);
    dev_download(be, h_res, res, sizeof h_res);
    be->free(be, a); be->free(be, b_in); be->free(be, w); be->free(be, bias); be->free(be, res);
    be->free(be, out); be->free(be, mean); be->free(be, rstd);
    return dot_d(h_out, k->r, N * C) + dot_d(h_res, k->r_res, N * C);
}

static void test_residual_layernorm(exitrl_backend *be) {
    printf("residual_layernorm_forward + layernorm_backward\n");
    residual_case k;
    float full[N * C];
    test_fill_layernorm(full, k.w, k.bias, N, C, 31);
    test_fill(k.b_in, N * C, 34, 0.5f);
    for (int i = 0; i < N * C; i++) k.a[i] = full[i] - k.b_in[i];
    test_fill(k.r, N * C, 35, 1.0f);
    test_fill(k.r_res, N * C, 36, 1.0f);

    void *a = dev_upload(be, k.a, sizeof k.a), *b_in = dev_upload(be, k.b_in, sizeof k.b_in);
    void *w = dev_upload(be, k.w, sizeof k.w), *bias = dev_upload(be, k.bias, sizeof k.bias);
    void *res = dev_zeros(be, sizeof k.a), *out = dev_zeros(be, sizeof k.a);
    float *mean = dev_zeros(be, N * sizeof(float)), *rstd = dev_zeros(be, N * sizeof(float));
    be->residual_layernorm_forward(be, res, out, mean, rstd, a, b_in, w, bias, N, C);

    /* The residual gradient holds what came from downstream; the LN backward adds to it, and
     * the sum is the gradient of both summands a and b_in. */
    void *dres = dev_upload(be, k.r_res, sizeof k.r_res);
    void *dout = dev_upload(be, k.r, sizeof k.r);
    float *dw = dev_zeros(be, sizeof k.w), *db = dev_zeros(be, sizeof k.bias);
    be->layernorm_backward(be, dres, dw, db, dout, res, w, mean, rstd, N, C);
    float g_res[N * C];
    dev_download(be, g_res, dres, sizeof g_res);

    fd_check("d a", be, residual_objective, &k, k.a, N * C, g_res);
    fd_check("d b_in", be, residual_objective, &k, k.b_in, N * C, g_res);
    be->free(be, a); be->free(be, b_in); be->free(be, w); be->free(be, bias); be->free(be, res);
    be->free(be, out); be->free(be, mean); be->free(be, rstd); be->free(be, dres);
    be->free(be, dout); be->free(be, dw); be->free(be, db);
}

/* ---- matmul (plain, bias, GELU epilogue) ---- */

typedef struct {
    int use_bias, use_gelu;
    float inp[N * C], w[OC * C], bias[OC], r[N * OC];
} matmul_case;

static double matmul_objective(exitrl_backend *be, void *p) {
    matmul_case *k = p;
    void *inp = dev_upload(be, k->inp, sizeof k->inp), *w = dev_upload(be, k->w, sizeof k->w);
    void *bias = k->use_bias ? dev_upload(be, k->bias, sizeof k->bias) : NULL;
    void *out = dev_zeros(be, N * OC * sizeof(float));
    void *pre = k->use_gelu ? dev_zeros(be, N * OC * sizeof(float)) : NULL;
    be->matmul_forward(be, out, pre, inp, w, bias, N, C, OC);
    float h[N * OC];
    dev_download(be, h, out, sizeof h);
    be->free(be, inp); be->free(be, w); be->free(be, out);
    if (bias) be->free(be, bias);
    if (pre) be->free(be, pre);
    return dot_d(h, k->r, N * OC);
}

static void test_matmul(exitrl_backend *be, int use_bias, int use_gelu) {
    printf("matmul_backward (%s, %s)\n", use_bias ? "bias" : "no bias",
           use_gelu ? "GELU epilogue" : "no GELU");
    matmul_case k = {.use_bias = use_bias, .use_gelu = use_gelu};
    test_fill(k.inp, N * C, 41, 1.0f);
    test_fill(k.w, OC * C, 42, 0.5f);
    test_fill(k.bias, OC, 43, 1.0f);
    test_fill(k.r, N * OC, 44, 1.0f);

    void *inp = dev_upload(be, k.inp, sizeof k.inp), *w = dev_upload(be, k.w, sizeof k.w);
    void *bias = use_bias ? dev_upload(be, k.bias, sizeof k.bias) : NULL;
    void *out = dev_zeros(be, N * OC * sizeof(float));
    void *pre = use_gelu ? dev_zeros(be, N * OC * sizeof(float)) : NULL;
    be->matmul_forward(be, out, pre, inp, w, bias, N, C, OC);

    /* dinp starts as garbage: it must be overwritten, not accumulated into. */
    float garbage[N * C];
    test_fill(garbage, N * C, 45, 100.0f);
    void *dinp = dev_upload(be, garbage, sizeof garbage);
    void *dout = dev_upload(be, k.r, sizeof k.r);
    float *dw = dev_zeros(be, sizeof k.w);
    float *db = use_bias ? dev_zeros(be, sizeof k.bias) : NULL;
    be->matmul_backward(be, dinp, dw, db, dout, inp, w, pre, N, C, OC);
    float g_inp[N * C], g_w[OC * C], g_b[OC], dpre[N * OC];
    dev_download(be, g_inp, dinp, sizeof g_inp);
    dev_download(be, g_w, dw, sizeof g_w);
    if (db) dev_download(be, g_b, db, sizeof g_b);

    if (use_gelu) {
        /* dout must now hold dL/dpre = r * GELU'(pre); GELU' by a double central difference. */
        float h_pre[N * OC];
        dev_download(be, dpre, dout, sizeof dpre);
        dev_download(be, h_pre, pre, sizeof h_pre);
        float want[N * OC];
        for (int i = 0; i < N * OC; i++) {
            double x = h_pre[i], e = 1e-5;
            want[i] = (float)(k.r[i] * (test_gelu_tanh(x + e) - test_gelu_tanh(x - e)) / (2 * e));
        }
        size_t wi;
        double r = test_max_err_ratio(dpre, want, N * OC, 1e-5, 1e-4, &wi);
        CHECK(r <= 1.0, "dout after GELU backward [%zu] = %.7g, want r*GELU'(pre) = %.7g", wi,
              dpre[wi], want[wi]);
    }

    fd_check("dinp (prefilled with garbage)", be, matmul_objective, &k, k.inp, N * C, g_inp);
    fd_check("dweight", be, matmul_objective, &k, k.w, OC * C, g_w);
    if (use_bias) fd_check("dbias", be, matmul_objective, &k, k.bias, OC, g_b);

    /* Second call (dout restored, since the GELU path overwrites it): parameter grads double,
     * dinp is the same as after one call. With no bias, also skip dinp (NULL). */
    be->upload(be, dout, k.r, sizeof k.r);
    be->matmul_backward(be, use_bias ? dinp : NULL, dw, db, dout, inp, w, pre, N, C, OC);
    float g2_inp[N * C], g2_w[OC * C], g2_b[OC];
    dev_download(be, g2_inp, dinp, sizeof g2_inp);
    dev_download(be, g2_w, dw, sizeof g2_w);
    check_scaled("matmul dweight accumulates", g2_w, g_w, 2.0f, OC * C);
    check_scaled("matmul dinp is overwritten (or left alone when NULL)", g2_inp, g_inp, 1.0f, N * C);
    if (db) {
        dev_download(be, g2_b, db, sizeof g2_b);
        check_scaled("matmul dbias accumulates", g2_b, g_b, 2.0f, OC);
    }
    be->free(be, inp); be->free(be, w); be->free(be, out); be->free(be, dinp);
    be->free(be, dout); be->free(be, dw);
    if (bias) be->free(be, bias);
    if (pre) be->free(be, pre);
    if (db) be->free(be, db);
}

/* ---- attention ---- */

typedef struct {
    float qkv[B * T * 3 * C], r[B * T * C];
} attention_case;

static void attention_run(exitrl_backend *be, const float *h_qkv, float *h_out, float *h_lse) {
    void *qkv = dev_upload(be, h_qkv, B * T * 3 * C * sizeof(float));
    void *out = dev_zeros(be, B * T * C * sizeof(float));
    float *lse = dev_zeros(be, B * NH * T * sizeof(float));
    be->attention_forward(be, out, lse, qkv, B, T, C, NH);
    dev_download(be, h_out, out, B * T * C * sizeof(float));
    if (h_lse) dev_download(be, h_lse, lse, B * NH * T * sizeof(float));
    be->free(be, qkv); be->free(be, out); be->free(be, lse);
}

static double attention_objective(exitrl_backend *be, void *p) {
    attention_case *k = p;
    float h[B * T * C];
    attention_run(be, k->qkv, h, NULL);
    return dot_d(h, k->r, B * T * C);
}

/* Perturbing q, k, v at positions > t (in both rows of the batch) must leave out and lse at
 * positions <= t bit-identical: they are never read, so not even rounding may change. The
 * perturbation is large so any leak would show, and must change some later output. */
static void check_causality(exitrl_backend *be, const float *qkv) {
    float base_out[B * T * C], base_lse[B * NH * T];
    attention_run(be, qkv, base_out, base_lse);
    float moved[B * T * 3 * C], noise[T * 3 * C], out[B * T * C], lse[B * NH * T];
    test_fill(noise, T * 3 * C, 55, 3.0f);
    for (int t = 0; t < T - 1; t++) {
        memcpy(moved, qkv, sizeof moved);
        for (int b = 0; b < B; b++)
            for (int j = t + 1; j < T; j++)
                for (int i = 0; i < 3 * C; i++) moved[(b * T + j) * 3 * C + i] += noise[j * 3 * C + i];
        attention_run(be, moved, out, lse);
        int past_same = 1, future_moved = 0;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < T; j++)
                for (int c = 0; c < C; c++) {
                    int same = out[(b * T + j) * C + c] == base_out[(b * T + j) * C + c];
                    if (j <= t) past_same &= same;
                    else future_moved |= !same;
                }
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int j = 0; j <= t; j++)
                    past_same &= lse[(b * NH + h) * T + j] == base_lse[(b * NH + h) * T + j];
        CHECK(past_same, "attention: out/lse at positions <= %d changed when q/k/v after it did", t);
        CHECK(future_moved, "attention: out after position %d did not react to its own q/k/v", t);
    }
    /* Rows of the batch are independent: moving row 1 leaves row 0 untouched. */
    memcpy(moved, qkv, sizeof moved);
    for (int i = 0; i < T * 3 * C; i++) moved[T * 3 * C + i] += noise[i];
    attention_run(be, moved, out, lse);
    CHECK(memcmp(out, base_out, T * C * sizeof(float)) == 0,
          "attention: batch row 0 changed when only row 1's qkv did");
}

static void test_attention(exitrl_backend *be) {
    printf("attention_backward\n");
    attention_case k;
    /* Scale 1.5 gives scores of O(1..3) (head size 4, scale 1/2): a peaked but not one-hot softmax. */
    test_fill(k.qkv, B * T * 3 * C, 51, 1.5f);
    test_fill(k.r, B * T * C, 52, 1.0f);

    void *qkv = dev_upload(be, k.qkv, sizeof k.qkv);
    void *out = dev_zeros(be, sizeof k.r);
    float *lse = dev_zeros(be, B * NH * T * sizeof(float));
    be->attention_forward(be, out, lse, qkv, B, T, C, NH);
    float garbage[B * T * 3 * C];
    test_fill(garbage, B * T * 3 * C, 53, 100.0f);
    void *dqkv = dev_upload(be, garbage, sizeof garbage);
    void *dout = dev_upload(be, k.r, sizeof k.r);
    be->attention_backward(be, dqkv, dout, qkv, out, lse, B, T, C, NH);
    float g[B * T * 3 * C];
    dev_download(be, g, dqkv, sizeof g);

    fd_check("dqkv (prefilled with garbage)", be, attention_objective, &k, k.qkv, B * T * 3 * C, g);
    check_causality(be, k.qkv);
    be->free(be, qkv); be->free(be, out); be->free(be, lse); be->free(be, dqkv); be->free(be, dout);
}

/* ---- classifier ---- */

typedef struct {
    float logits[N * VP], weights[N];
    int targets[N];
} classifier_case;

/* sum over rows with a target of weight * loss, the losses from the op itself (weights NULL). */
static double classifier_objective(exitrl_backend *be, void *p) {
    classifier_case *k = p;
    void *logits = dev_upload(be, k->logits, sizeof k->logits);
    int *targets = dev_upload(be, k->targets, sizeof k->targets);
    float *losses = dev_zeros(be, N * sizeof(float));
    be->classifier_forward_backward(be, logits, losses, NULL, targets, N, V, VP);
    float h[N];
    dev_download(be, h, losses, sizeof h);
    be->free(be, logits); be->free(be, targets); be->free(be, losses);
    double s = 0;
    for (int n = 0; n < N; n++)
        if (k->targets[n] >= 0) s += (double)k->weights[n] * h[n];
    return s;
}

static void test_classifier(exitrl_backend *be) {
    printf("classifier_forward_backward\n");
    /* Weights include 0 and negatives (GRPO); rows 2 and 6 have no target (one with a non-zero
     * weight); targets cover the first and last real ids. */
    classifier_case k = {
        .weights = {1.0f, -0.5f, 0.7f, 0.0f, 2.0f, -1.3f, 0.0f, 0.25f, 1.0f, -2.0f},
        .targets = {0, 10, -1, 5, 5, 3, -1, 7, 1, 2},
    };
    test_fill(k.logits, N * VP, 61, 3.0f);
    /* Padded columns hold large values: if they entered the softmax, losses would be far off. */
    for (int n = 0; n < N; n++)
        for (int v = V; v < VP; v++) k.logits[n * VP + v] = 40.0f + v;

    void *logits = dev_upload(be, k.logits, sizeof k.logits);
    int *targets = dev_upload(be, k.targets, sizeof k.targets);
    float *weights = dev_upload(be, k.weights, sizeof k.weights);
    float *losses = dev_zeros(be, N * sizeof(float));
    be->classifier_forward_backward(be, logits, losses, weights, targets, N, V, VP);
    float dlogits[N * VP], h_losses[N];
    dev_download(be, dlogits, logits, sizeof dlogits);
    dev_download(be, h_losses, losses, sizeof h_losses);

    /* Losses against a double log-softmax over the V real columns; fp32 logsumexp of O(3)
     * logits is good to a few ulp, so 1e-6 + 1e-5 relative. */
    for (int n = 0; n < N; n++) {
        if (k.targets[n] < 0) continue;
        const float *l = k.logits + n * VP;
        double m = l[0], s = 0;
        for (int v = 1; v < V; v++) m = l[v] > m ? l[v] : m;
        for (int v = 0; v < V; v++) s += exp((double)l[v] - m);
        double want = m + log(s) - l[k.targets[n]];
        CHECK(fabs(h_losses[n] - want) <= 1e-6 + 1e-5 * fabs(want),
              "loss[%d] = %.8g, double log-softmax gives %.8g", n, h_losses[n], want);
    }

    fd_check("dlogits (all Vp columns)", be, classifier_objective, &k, k.logits, N * VP, dlogits);
    int pad_zero = 1, skipped_rows_zero = 1;
    for (int n = 0; n < N; n++)
        for (int v = 0; v < VP; v++) {
            float d = dlogits[n * VP + v];
            if (v >= V) pad_zero &= d == 0.0f;
            if (k.targets[n] < 0 || k.weights[n] == 0.0f) skipped_rows_zero &= d == 0.0f;
        }
    CHECK(pad_zero, "dlogits in padded columns v >= V are not exactly 0");
    CHECK(skipped_rows_zero, "dlogits of rows with target < 0 or weight 0 are not exactly 0");

    /* losses may be NULL: same dlogits. */
    be->upload(be, logits, k.logits, sizeof k.logits);
    be->classifier_forward_backward(be, logits, NULL, weights, targets, N, V, VP);
    float again[N * VP];
    dev_download(be, again, logits, sizeof again);
    CHECK(memcmp(again, dlogits, sizeof again) == 0, "dlogits differ when losses is NULL");
    be->free(be, logits); be->free(be, targets); be->free(be, weights); be->free(be, losses);
}

/* ---- AdamW ---- */

enum { ADAM_N = 37 };

static void test_adamw(exitrl_backend *be) {
    printf("adamw_update\n");
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    const int t = 3; /* bias correction differs visibly from 1 at t = 3 */
    float master[ADAM_N], grads[ADAM_N], m[ADAM_N], v[ADAM_N];
    test_fill(master, ADAM_N, 71, 1.5f);
    test_fill(grads, ADAM_N, 72, 2.0f);
    test_fill(m, ADAM_N, 73, 0.1f);
    test_fill(v, ADAM_N, 74, 0.1f);
    for (int i = 0; i < ADAM_N; i++) v[i] *= v[i];
    /* An all-zero element: the update is weight decay alone (mhat / (0 + eps) = 0). */
    grads[5] = m[5] = v[5] = 0.0f;

    /* Reference in double from the same fp32 inputs. */
    double want_m[ADAM_N], want_v[ADAM_N], want_master[ADAM_N];
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    for (int i = 0; i < ADAM_N; i++) {
        double g = (double)grads[i] * scale;
        want_m[i] = b1 * (double)m[i] + (1.0 - b1) * g;
        want_v[i] = b2 * (double)v[i] + (1.0 - b2) * g * g;
        double upd = (want_m[i] / bc1) / (sqrt(want_v[i] / bc2) + eps) + wd * (double)master[i];
        want_master[i] = master[i] - lr * upd;
    }

    float *d_master = dev_upload(be, master, sizeof master), *d_grads = dev_upload(be, grads, sizeof grads);
    float *d_m = dev_upload(be, m, sizeof m), *d_v = dev_upload(be, v, sizeof v);
    void *d_act = dev_zeros(be, sizeof master);
    float vals[EXITRL_STEP_NVALS];
    exitrl_step_vals_set(vals, lr, t, b1, b2);
    vals[EXITRL_STEP_SCALE] = scale;
    float *d_vals = dev_upload(be, vals, sizeof vals);
    be->adamw_update(be, d_master, d_act, d_grads, d_m, d_v, ADAM_N, d_vals, b1, b2, eps, wd);
    float got_master[ADAM_N], got_m[ADAM_N], got_v[ADAM_N], got_act[ADAM_N];
    dev_download(be, got_master, d_master, sizeof got_master);
    dev_download(be, got_m, d_m, sizeof got_m);
    dev_download(be, got_v, d_v, sizeof got_v);
    dev_download(be, got_act, d_act, sizeof got_act);

    /* m, v: a couple of fp32 roundings, so 1e-6 relative (+1e-9 for values near 0). master: a
     * few ulp of |master| <= 1.5 (~1e-7 each) while the update itself is ~1e-2, so a missing
     * bias correction, weight decay or grad_scale moves it by orders of magnitude more. */
    for (int i = 0; i < ADAM_N; i++) {
        CHECK(fabs(got_m[i] - want_m[i]) <= 1e-9 + 1e-6 * fabs(want_m[i]),
              "adamw m[%d] = %.9g, want %.9g", i, got_m[i], want_m[i]);
        CHECK(fabs(got_v[i] - want_v[i]) <= 1e-11 + 1e-6 * fabs(want_v[i]),
              "adamw v[%d] = %.9g, want %.9g", i, got_v[i], want_v[i]);
        CHECK(fabs(got_master[i] - want_master[i]) <= 4e-7,
              "adamw master[%d] = %.9g, want %.9g (was %.9g)", i, got_master[i], want_master[i],
              master[i]);
    }
    CHECK(memcmp(got_act, got_master, sizeof got_act) == 0, "adamw fp32 params_act != master");

    /* params_act aliasing master (the fp32 model) gives the same master. */
    be->upload(be, d_master, master, sizeof master);
    be->upload(be, d_m, m, sizeof m);
    be->upload(be, d_v, v, sizeof v);
    be->adamw_update(be, d_master, d_master, d_grads, d_m, d_v, ADAM_N, d_vals, b1, b2, eps, wd);
    float aliased[ADAM_N];
    dev_download(be, aliased, d_master, sizeof aliased);
    CHECK(memcmp(aliased, got_master, sizeof aliased) == 0,
          "adamw with params_act == master differs from a separate params_act");
    be->free(be, d_master); be->free(be, d_grads); be->free(be, d_m); be->free(be, d_v);
    be->free(be, d_act); be->free(be, d_vals);
}

/* ---- grad_norm_clip ---- */

static void test_grad_norm_clip(exitrl_backend *be) {
    printf("grad_norm_clip\n");
    /* Odd sizes; the large one exercises any blocked / parallel reduction. fp32 accumulation of
     * n positive terms errs by ~sqrt(n) ulp typically (n = 65537: ~3e-5 relative worst-case-ish),
     * a pairwise or double accumulation by far less; 1e-4 relative leaves room for either. */
    const size_t sizes[] = {1, 1001, 65537};
    float *d_vals = dev_zeros(be, EXITRL_STEP_NVALS * sizeof(float)), vals[EXITRL_STEP_NVALS];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *x = malloc(n * sizeof(float));
        if (!x) { fprintf(stderr, "test: out of host memory for %zu floats\n", n); exit(1); }
        test_fill(x, n, 81 + s, 2.0f);
        double want = 0;
        for (size_t i = 0; i < n; i++) want += (double)x[i] * x[i];
        want = sqrt(want);
        float *d = dev_upload(be, x, n * sizeof(float));
        /* max_norm: off, above the norm (no clip), below it (clip to max_norm / norm) */
        const float clips[3] = {0.0f, (float)(2 * want), (float)(0.25 * want)};
        const double want_scale[3] = {1.0, 1.0, 0.25};
        for (int c = 0; c < 3; c++) {
            be->grad_norm_clip(be, d_vals, d, n, clips[c]);
            dev_download(be, vals, d_vals, sizeof vals);
            CHECK(fabs(vals[EXITRL_STEP_NORM] - want) <= 1e-4 * want, "grad_norm_clip(n=%zu) norm %.9g, double %.9g",
                  n, vals[EXITRL_STEP_NORM], want);
            CHECK(fabs(vals[EXITRL_STEP_SCALE] - want_scale[c]) <= 1e-5, "grad_norm_clip(n=%zu, max %g) scale %.9g, want %g",
                  n, clips[c], vals[EXITRL_STEP_SCALE], want_scale[c]);
        }
        if (n == 1) {
            be->grad_norm_clip(be, d_vals, d, 0, 1.0f);
            dev_download(be, vals, d_vals, sizeof vals);
            CHECK(vals[EXITRL_STEP_NORM] == 0.0f && vals[EXITRL_STEP_SCALE] == 1.0f,
                  "grad_norm_clip of 0 elements: norm %g scale %g, want 0 and 1", vals[EXITRL_STEP_NORM],
                  vals[EXITRL_STEP_SCALE]);
            x[0] = INFINITY;
            be->upload(be, d, x, sizeof(float));
            be->grad_norm_clip(be, d_vals, d, 1, 1.0f);
            dev_download(be, vals, d_vals, sizeof vals);
            CHECK(vals[EXITRL_STEP_SCALE] == 0.0f, "a non-finite norm must give scale 0, got %g", vals[EXITRL_STEP_SCALE]);
        }
        be->free(be, d);
        free(x);
    }
    be->free(be, d_vals);
}

int main(void) {
    exitrl_backend *be = test_cpu_backend();
    test_encoder(be);
    test_layernorm(be);
    test_residual_layernorm(be);
    test_matmul(be, 0, 0);
    test_matmul(be, 1, 0);
    test_matmul(be, 1, 1);
    test_attention(be);
    test_classifier(be);
    test_adamw(be);
    test_grad_norm_clip(be);
    be->destroy(be);
    return test_finish("test_cpu_ops_grad");
}
