/* Forward ops and memory ops of the CPU reference backend (fp32) against double-precision
 * formulas written out here: embedding, LayerNorm (eps 1e-5, as GPT-2), fused residual +
 * LayerNorm, matmul with bias and GELU(tanh) epilogue, causal attention (scale 1/sqrt(head size)),
 * and the classifier's "logits untouched without weights" rule. The gradient ops are checked
 * by test_cpu_ops_grad.c.
 *
 * Tolerances follow the fp32 error bound of a length-k sum, |err| <= k * u * sum|terms| with
 * u = 2^-24 ~ 6e-8 (Higham, Accuracy and Stability of Numerical Algorithms, ch. 3); elementwise
 * results get a few ulp.
 */
#include <string.h>

#include "ops.h"
#include "test_util.h"

#define U32 5.96e-8 /* unit roundoff of fp32 */

/* Largest |got - want| / tol[i] over i (NaN counts as infinite); index in *worst. */
static double worst_ratio(const float *got, const double *want, const double *tol, size_t n,
                          size_t *worst) {
    double m = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / tol[i];
        if (!(r <= m)) { m = isnan(r) ? INFINITY : r; *worst = i; }
    }
    return m;
}

#define CHECK_CLOSE(what, got, want, tol, n)                                                   \
    do {                                                                                     \
        size_t w_;                                                                           \
        double r_ = worst_ratio(got, want, tol, n, &w_);                                     \
        printf("  %-44s worst error / tolerance = %.3f\n", what, r_);                        \
        CHECK(r_ <= 1.0, "%s: element %zu is %.9g, want %.9g (tolerance %.2g)", what, w_,    \
              (got)[w_], (want)[w_], (tol)[w_]);                                             \
    } while (0)

/* ---- memory ops ---- */

static void test_memory(exitrl_backend *be) {
    enum { M = 1003 };
    float *x = test_floats(M), *y = test_floats(M);
    test_fill(x, M, 1, 10.0f);
    float *d = dev_zeros(be, M * sizeof(float));
    dev_download(be, y, d, M * sizeof(float));
    int zeroed = 1;
    for (int i = 0; i < M; i++) zeroed &= y[i] == 0.0f;
    CHECK(zeroed, "alloc did not return zeroed memory");

    be->upload(be, d, x, M * sizeof(float));
    float *e = dev_zeros(be, M * sizeof(float));
    be->copy(be, e, d, M * sizeof(float));
    dev_download(be, y, e, M * sizeof(float));
    CHECK(memcmp(x, y, M * sizeof(float)) == 0, "upload + copy + download does not round-trip");

    be->zero(be, e, 100 * sizeof(float));
    dev_download(be, y, e, M * sizeof(float));
    int first_zero = 1;
    for (int i = 0; i < 100; i++) first_zero &= y[i] == 0.0f;
    CHECK(first_zero && memcmp(y + 100, x + 100, (M - 100) * sizeof(float)) == 0,
          "zero(100 floats) did not zero exactly the first 100");

    /* fp32 activations: the conversions are exact copies. */
    void *act = dev_zeros(be, M * exitrl_dtype_size(be->act_dtype));
    be->f32_to_act(be, act, d, M);
    be->act_to_f32(be, e, act, M);
    dev_download(be, y, e, M * sizeof(float));
    CHECK(memcmp(x, y, M * sizeof(float)) == 0, "f32_to_act + act_to_f32 is not exact in fp32");
    be->free(be, d); be->free(be, e); be->free(be, act);
    free(x); free(y);
}

/* ---- encoder ---- */

static void test_encoder(exitrl_backend *be) {
    enum { B = 2, T = 5, C = 12, VP = 16 };
    const int tok[B * T] = {3, 3, 0, 15, 3, 7, 0, 0, 1, 15};
    float wte[VP * C], wpe[T * C], out[B * T * C];
    test_fill(wte, VP * C, 11, 1.0f);
    test_fill(wpe, T * C, 12, 1.0f);
    int *d_tok = dev_upload(be, tok, sizeof tok);
    void *d_wte = dev_upload(be, wte, sizeof wte), *d_wpe = dev_upload(be, wpe, sizeof wpe);
    void *d_out = dev_zeros(be, sizeof out);
    be->encoder_forward(be, d_out, d_tok, d_wte, d_wpe, B, T, C);
    dev_download(be, out, d_out, sizeof out);
    /* One fp32 addition per element: bit-exact. */
    int exact = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                exact &= out[(b * T + t) * C + c] == wte[tok[b * T + t] * C + c] + wpe[t * C + c];
    CHECK(exact, "encoder_forward is not wte[tok] + wpe[t]");
    be->free(be, d_tok); be->free(be, d_wte); be->free(be, d_wpe); be->free(be, d_out);
}

/* ---- LayerNorm ---- */

enum { LN_N = 10, LN_C = 12 };

/* Double LayerNorm of one [N,C] block; tolerances for out, mean, rstd. */
static void layernorm_ref(const float *x, const float *w, const float *b, double *out,
                          double *mean, double *rstd, double *tol_out) {
    for (int n = 0; n < LN_N; n++) {
        const float *r = x + n * LN_C;
        double m = 0, v = 0, maxabs = 0;
        for (int c = 0; c < LN_C; c++) maxabs = fabs(r[c]) > maxabs ? fabs(r[c]) : maxabs;
        for (int c = 0; c < LN_C; c++) m += r[c];
        m /= LN_C;
        for (int c = 0; c < LN_C; c++) v += (r[c] - m) * (r[c] - m);
        v /= LN_C;
        double s = 1.0 / sqrt(v + 1e-5);
        mean[n] = m;
        rstd[n] = s;
        for (int c = 0; c < LN_C; c++) {
            out[n * LN_C + c] = (r[c] - m) * s * w[c] + b[c];
            /* The mean is off by ~C ulp of max|x| (scaled by rstd in xhat), rstd by ~C ulp. */
            tol_out[n * LN_C + c] =
                4 * LN_C * U32 * (fabs(w[c]) * (s * maxabs + fabs((r[c] - m) * s)) + fabs(b[c]));
        }
    }
}

static void test_layernorm(exitrl_backend *be) {
    float x[LN_N * LN_C], w[LN_C], b[LN_C], out[LN_N * LN_C], mean[LN_N], rstd[LN_N];
    test_fill_layernorm(x, w, b, LN_N, LN_C, 21);
    double want[LN_N * LN_C], want_mean[LN_N], want_rstd[LN_N], tol[LN_N * LN_C], tol_m[LN_N], tol_s[LN_N];
    layernorm_ref(x, w, b, want, want_mean, want_rstd, tol);
    for (int n = 0; n < LN_N; n++) {
        tol_m[n] = 2 * LN_C * U32 * (fabs(want_mean[n]) + 2); /* the row's |x| reaches ~3 */
        tol_s[n] = 4 * LN_C * U32 * want_rstd[n];
    }
    void *d_x = dev_upload(be, x, sizeof x), *d_w = dev_upload(be, w, sizeof w);
    void *d_b = dev_upload(be, b, sizeof b), *d_out = dev_zeros(be, sizeof out);
    float *d_mean = dev_zeros(be, sizeof mean), *d_rstd = dev_zeros(be, sizeof rstd);
    be->layernorm_forward(be, d_out, d_mean, d_rstd, d_x, d_w, d_b, LN_N, LN_C);
    dev_download(be, out, d_out, sizeof out);
    dev_download(be, mean, d_mean, sizeof mean);
    dev_download(be, rstd, d_rstd, sizeof rstd);
    CHECK_CLOSE("layernorm out", out, want, tol, LN_N * LN_C);
    CHECK_CLOSE("layernorm mean", mean, want_mean, tol_m, LN_N);
    CHECK_CLOSE("layernorm rstd", rstd, want_rstd, tol_s, LN_N);

    /* Inference form: mean and rstd NULL, same out. */
    float again[LN_N * LN_C];
    be->zero(be, d_out, sizeof out);
    be->layernorm_forward(be, d_out, NULL, NULL, d_x, d_w, d_b, LN_N, LN_C);
    dev_download(be, again, d_out, sizeof again);
    CHECK(memcmp(again, out, sizeof out) == 0, "layernorm out differs when mean/rstd are NULL");
    be->free(be, d_x); be->free(be, d_w); be->free(be, d_b); be->free(be, d_out);
    be->free(be, d_mean); be->free(be, d_rstd);
}

static void test_residual_layernorm(exitrl_backend *be) {
    float full[LN_N * LN_C], a[LN_N * LN_C], bi[LN_N * LN_C], w[LN_C], bias[LN_C];
    test_fill_layernorm(full, w, bias, LN_N, LN_C, 31);
    test_fill(bi, LN_N * LN_C, 34, 0.5f);
    for (int i = 0; i < LN_N * LN_C; i++) a[i] = full[i] - bi[i];
    void *d_a = dev_upload(be, a, sizeof a), *d_bi = dev_upload(be, bi, sizeof bi);
    void *d_w = dev_upload(be, w, sizeof w), *d_bias = dev_upload(be, bias, sizeof bias);
    void *d_res = dev_zeros(be, sizeof a), *d_out = dev_zeros(be, sizeof a);
    float *d_mean = dev_zeros(be, LN_N * sizeof(float)), *d_rstd = dev_zeros(be, LN_N * sizeof(float));
    be->residual_layernorm_forward(be, d_res, d_out, d_mean, d_rstd, d_a, d_bi, d_w, d_bias, LN_N, LN_C);
    float res[LN_N * LN_C], out[LN_N * LN_C], mean[LN_N], rstd[LN_N];
    dev_download(be, res, d_res, sizeof res);
    dev_download(be, out, d_out, sizeof out);
    dev_download(be, mean, d_mean, sizeof mean);
    dev_download(be, rstd, d_rstd, sizeof rstd);

    int exact = 1;
    for (int i = 0; i < LN_N * LN_C; i++) exact &= res[i] == a[i] + bi[i];
    CHECK(exact, "residual_layernorm_forward: res is not a + b_in");
    /* The LayerNorm half against the double reference applied to the fp32 res. */
    double want[LN_N * LN_C], want_mean[LN_N], want_rstd[LN_N], tol[LN_N * LN_C], tol_m[LN_N], tol_s[LN_N];
    layernorm_ref(res, w, bias, want, want_mean, want_rstd, tol);
    for (int n = 0; n < LN_N; n++) {
        tol_m[n] = 2 * LN_C * U32 * (fabs(want_mean[n]) + 2);
        tol_s[n] = 4 * LN_C * U32 * want_rstd[n];
    }
    CHECK_CLOSE("residual_layernorm out", out, want, tol, LN_N * LN_C);
    CHECK_CLOSE("residual_layernorm mean", mean, want_mean, tol_m, LN_N);
    CHECK_CLOSE("residual_layernorm rstd", rstd, want_rstd, tol_s, LN_N);
    be->free(be, d_a); be->free(be, d_bi); be->free(be, d_w); be->free(be, d_bias);
    be->free(be, d_res); be->free(be, d_out); be->free(be, d_mean); be->free(be, d_rstd);
}

/* ---- matmul ---- */

/* One shape, with or without bias, with or without the GELU epilogue; with panels, the weight is laid
 * out by panel_weight and multiplied by matmul_forward_panels (ops.h), against the same reference. */
static void test_matmul(exitrl_backend *be, int N, int C, int OC, int use_bias, int use_gelu, int panels) {
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;
    float *x = test_floats(nin), *w = test_floats(nw), *bias = test_floats(OC);
    float *out = test_floats(nout), *pre = test_floats(nout);
    double *want = test_doubles(nout), *want_pre = test_doubles(nout);
    double *tol = test_doubles(nout), *tol_pre = test_doubles(nout);
    test_fill(x, nin, 41 + N, 1.0f);
    test_fill(w, nw, 42 + C, 0.5f);
    test_fill(bias, OC, 43 + OC, 1.0f);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = use_bias ? bias[o] : 0.0, sabs = use_bias ? fabs(bias[o]) : 0.0;
            for (int c = 0; c < C; c++) {
                s += (double)x[(size_t)n * C + c] * w[(size_t)o * C + c];
                sabs += fabs((double)x[(size_t)n * C + c] * w[(size_t)o * C + c]);
            }
            size_t i = (size_t)n * OC + o;
            want_pre[i] = s;
            tol_pre[i] = (C + 2) * U32 * sabs + 1e-30;
            /* GELU' <= 1.13, plus a few ulp for fp32 tanh and the products. */
            want[i] = use_gelu ? test_gelu_tanh(s) : s;
            tol[i] = use_gelu ? 1.13 * tol_pre[i] + 8 * U32 * (fabs(want[i]) + fabs(s)) + 1e-7 : tol_pre[i];
        }
    void *d_x = dev_upload(be, x, nin * sizeof(float)), *d_w = dev_upload(be, w, nw * sizeof(float));
    void *d_bias = use_bias ? dev_upload(be, bias, OC * sizeof(float)) : NULL;
    void *d_out = dev_zeros(be, nout * sizeof(float));
    void *d_pre = use_gelu ? dev_zeros(be, nout * sizeof(float)) : NULL;
    if (panels) {
        void *d_wp = dev_zeros(be, be->panel_weight_bytes(be, C, OC));
        be->panel_weight(be, d_wp, d_w, C, OC);
        be->matmul_forward_panels(be, d_out, d_pre, d_x, d_wp, d_bias, N, C, OC);
        be->free(be, d_wp);
    } else {
        be->matmul_forward(be, d_out, d_pre, d_x, d_w, d_bias, N, C, OC);
    }
    dev_download(be, out, d_out, nout * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "matmul%s N=%d C=%d OC=%d%s%s out", panels ? "_panels" : "", N, C, OC,
             use_bias ? " +bias" : "", use_gelu ? " +gelu" : "");
    CHECK_CLOSE(what, out, want, tol, nout);
    if (use_gelu) {
        dev_download(be, pre, d_pre, nout * sizeof(float));
        snprintf(what, sizeof what, "matmul%s N=%d C=%d OC=%d pre_gelu", panels ? "_panels" : "", N, C, OC);
        CHECK_CLOSE(what, pre, want_pre, tol_pre, nout);
        be->free(be, d_pre);
    }
    be->free(be, d_x); be->free(be, d_w); be->free(be, d_out);
    if (d_bias) be->free(be, d_bias);
    free(x); free(w); free(bias); free(out); free(pre);
    free(want); free(want_pre); free(tol); free(tol_pre);
}

/* ---- attention ---- */

static void test_attention(exitrl_backend *be, int B, int T, int C, int NH) {
    int hs = C / NH;
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    float *qkv = test_floats(nqkv), *out = test_floats(nout), *lse = test_floats(nlse);
    float *again = test_floats(nout);
    double *want = test_doubles(nout), *tol = test_doubles(nout);
    double *want_lse = test_doubles(nlse), *tol_lse = test_doubles(nlse);
    double *p = test_doubles(T);
    test_fill(qkv, nqkv, 51 + T, 1.5f);
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, sum = 0, sabs = 0;
                for (int s = 0; s <= t; s++) {
                    const float *k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    double d = 0;
                    for (int i = 0; i < hs; i++) d += (double)q[i] * k[i];
                    p[s] = d * scale;
                    mx = p[s] > mx ? p[s] : mx;
                    for (int i = 0; i < hs; i++) sabs += fabs((double)q[i] * k[i]) * scale;
                }
                for (int s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                size_t li = ((size_t)b * NH + h) * T + t;
                want_lse[li] = mx + log(sum);
                /* Scores carry ~hs ulp of sum|q k| scale; exp turns that into relative error. */
                double score_err = (hs + 2) * U32 * sabs + (T + 4) * U32 * fabs(want_lse[li]);
                tol_lse[li] = score_err + 1e-6;
                for (int i = 0; i < hs; i++) {
                    double o = 0, oabs = 0;
                    for (int s = 0; s <= t; s++) {
                        double v = qkv[((size_t)b * T + s) * 3 * C + 2 * C + h * hs + i];
                        o += p[s] / sum * v;
                        oabs += p[s] / sum * fabs(v);
                    }
                    size_t oi = ((size_t)b * T + t) * C + h * hs + i;
                    want[oi] = o;
                    tol[oi] = (2 * score_err + (T + 4) * U32) * oabs + 1e-7;
                }
            }
    void *d_qkv = dev_upload(be, qkv, nqkv * sizeof(float)), *d_out = dev_zeros(be, nout * sizeof(float));
    float *d_lse = dev_zeros(be, nlse * sizeof(float));
    be->attention_forward(be, d_out, d_lse, d_qkv, B, T, C, NH);
    dev_download(be, out, d_out, nout * sizeof(float));
    dev_download(be, lse, d_lse, nlse * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "attention B=%d T=%d C=%d NH=%d out", B, T, C, NH);
    CHECK_CLOSE(what, out, want, tol, nout);
    snprintf(what, sizeof what, "attention B=%d T=%d C=%d NH=%d lse", B, T, C, NH);
    CHECK_CLOSE(what, lse, want_lse, tol_lse, nlse);

    be->zero(be, d_out, nout * sizeof(float));
    be->attention_forward(be, d_out, NULL, d_qkv, B, T, C, NH);
    dev_download(be, again, d_out, nout * sizeof(float));
    CHECK(memcmp(again, out, nout * sizeof(float)) == 0, "attention out differs when lse is NULL");
    be->free(be, d_qkv); be->free(be, d_out); be->free(be, d_lse);
    free(qkv); free(out); free(lse); free(again); free(want); free(tol); free(want_lse);
    free(tol_lse); free(p);
}

/* ---- classifier without weights ---- */

static void test_classifier_keeps_logits(exitrl_backend *be) {
    enum { N = 6, V = 11, VP = 16 };
    float logits[N * VP], after[N * VP], losses[N];
    const int targets[N] = {0, 10, -1, 4, 4, 9};
    test_fill(logits, N * VP, 61, 3.0f);
    void *d_logits = dev_upload(be, logits, sizeof logits);
    int *d_targets = dev_upload(be, targets, sizeof targets);
    float *d_losses = dev_zeros(be, sizeof losses);
    be->classifier_forward_backward(be, d_logits, d_losses, NULL, d_targets, N, V, VP);
    dev_download(be, after, d_logits, sizeof after);
    dev_download(be, losses, d_losses, sizeof losses);
    CHECK(memcmp(after, logits, sizeof after) == 0,
          "classifier changed the logits although dloss_weights was NULL");
    /* A loss is -log p >= 0; the exact values are checked in test_cpu_ops_grad. */
    int nonneg = 1;
    for (int n = 0; n < N; n++) nonneg &= targets[n] < 0 || losses[n] >= 0.0f;
    CHECK(nonneg, "classifier produced a negative loss");
    be->free(be, d_logits); be->free(be, d_targets); be->free(be, d_losses);
}

int main(void) {
    exitrl_backend *be = test_cpu_backend();
    test_memory(be);
    test_encoder(be);
    test_layernorm(be);
    test_residual_layernorm(be);
    /* The small odd shape, and one large enough for blocked / BLAS paths. */
    for (int bias = 0; bias <= 1; bias++) {
        test_matmul(be, 10, 12, 7, bias, 0, 0);
        test_matmul(be, 67, 96, 131, bias, 0, 0);
    }
    test_matmul(be, 10, 12, 7, 1, 1, 0);
    test_matmul(be, 67, 96, 131, 1, 1, 0);
    /* Panels: every row count of a tile and a partial one after full tiles (1..17 rows), output
     * channels that do not fill the last panel, and the decode shapes of the small model. */
    for (int n = 1; n <= 17; n += 4) test_matmul(be, n, 12, 7, 1, 0, 1);
    for (int n = 2; n <= 18; n += 4) test_matmul(be, n, 40, 33, 0, 1, 1);
    test_matmul(be, 67, 96, 131, 1, 1, 1);
    test_matmul(be, 64, 384, 1152, 1, 0, 1);
    test_matmul(be, 64, 1536, 384, 1, 0, 1);
    test_attention(be, 2, 5, 12, 3);
    test_attention(be, 1, 37, 32, 2);
    test_classifier_keeps_logits(be);
    be->destroy(be);
    return test_finish("test_cpu_ops_forward");
}
