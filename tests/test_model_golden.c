/* The whole model on the CPU backend against golden values of an independent float64 PyTorch
 * implementation (tests/ref/gpt_ref.py; fixture made by tests/ref/make_golden.py, whose header
 * documents the file format): logits, per-token losses, the weighted loss and every parameter
 * gradient, for uniform (NULL) loss weights and for explicit signed weights.
 *
 * Tolerances. Our fp32 results carry rounding noise of about 1e-6 of each tensor's scale (a float32
 * run of the reference lands 3e-6 from float64 on logits of magnitude ~6, and within 1.3e-6 of each
 * gradient tensor's max). The fixture's weights make activations O(1), so wrong formulas show at
 * 1e-4..1e-3: an exact-erf GELU moves logits by 1.4e-3 and gradients by 3e-4..1e-3 of their scale;
 * a wrong attention scale, a missing causal mask, a softmax over the padded columns or a mean over
 * all tokens move them by far more (make_golden.py checks each of these against the tolerances).
 * The tolerances sit between the two, about 10x above the noise:
 *   logits, losses, loss: |got - want| <= 2e-5 + 1e-5 |want|
 *   gradients: |got - want| <= 2e-5 * max|want over the tensor| + 1e-4 |want|
 * (the per-tensor absolute part because gradient elements are sums with cancellation, so a small
 * element's relative error says nothing; its error is set by the tensor's scale). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "test_util.h"

#define DEFAULT_FIXTURE EXITRL_SOURCE_DIR "/tests/fixtures/gpt_tiny_golden.bin"
#define FIXTURE_VERSION 1

static const double VAL_ATOL = 2e-5, VAL_RTOL = 1e-5;
static const double GRAD_ATOL_FRAC = 2e-5, GRAD_RTOL = 1e-4;

/* The fixture being read (argv[1] overrides the default, to try damaged files by hand). */
static const char *fixture_path = DEFAULT_FIXTURE;

typedef struct {
    gpt_config cfg;
    int B, T;
    size_t num_params;
    float *params;
    int *tokens, *targets;
    float *logits, *losses;     /* [B*T*Vp], [B*T] */
    float loss_uniform;
    float *grads_uniform;
    float *weights;             /* [B*T] */
    float loss_weighted;
    float *grads_weighted;
} golden;

/* Reads exactly n bytes or exits naming the field that was cut short. */
static void read_exact(FILE *f, void *dst, size_t n, const char *what) {
    if (fread(dst, 1, n, f) != n) {
        fprintf(stderr, "FAIL %s: file ends inside '%s' (%zu bytes expected)\n", fixture_path,
                what, n);
        exit(1);
    }
}

static void *read_array(FILE *f, size_t count, size_t elem, const char *what) {
    void *p = malloc(count * elem);
    if (!p) {
        fprintf(stderr, "FAIL: out of memory for '%s' (%zu values)\n", what, count);
        exit(1);
    }
    read_exact(f, p, count * elem, what);
    return p;
}

/* Loads and validates the fixture; any mismatch with the format or with this build's model is a
 * clear failure, before anything is allocated from the file's sizes. */
static void golden_load(golden *g) {
    FILE *f = fopen(fixture_path, "rb");
    if (!f) {
        fprintf(stderr, "FAIL: cannot open %s (make it with tests/ref/make_golden.py)\n",
                fixture_path);
        exit(1);
    }
    char magic[8];
    int32_t h[10];
    read_exact(f, magic, sizeof magic, "magic");
    if (memcmp(magic, "EXRLGOLD", 8) != 0) {
        fprintf(stderr, "FAIL %s: bad magic, not an exitrl golden file\n", fixture_path);
        exit(1);
    }
    read_exact(f, h, sizeof h, "header");
    if (h[0] != FIXTURE_VERSION) {
        fprintf(stderr, "FAIL %s: version %d, this test reads version %d\n", fixture_path, h[0],
                FIXTURE_VERSION);
        exit(1);
    }
    g->cfg = (gpt_config){.n_layer = h[1], .n_head = h[2], .d_model = h[3], .max_seq = h[4],
                          .vocab = h[5], .vocab_padded = h[6]};
    g->B = h[7];
    g->T = h[8];
    char why[160];
    if (gpt_config_validate(&g->cfg, why, sizeof why)) {
        fprintf(stderr, "FAIL %s: invalid config in header: %s\n", fixture_path, why);
        exit(1);
    }
    if (g->B < 1 || g->B > 64 || g->T < 1 || g->T > g->cfg.max_seq) {
        fprintf(stderr, "FAIL %s: batch %d x %d out of range (max_seq %d)\n", fixture_path, g->B,
                g->T, g->cfg.max_seq);
        exit(1);
    }
    g->num_params = gpt_num_params(&g->cfg);
    if (h[9] < 0 || (size_t)h[9] != g->num_params) {
        fprintf(stderr, "FAIL %s: %d parameters in the file, gpt_num_params says %zu (layout "
                "differs from host/model/model.h)\n", fixture_path, h[9], g->num_params);
        exit(1);
    }
    const size_t P = g->num_params, BT = (size_t)g->B * g->T, Vp = g->cfg.vocab_padded;
    const long expect = (long)(8 + sizeof h + 4 * (3 * P + 4 * BT + BT * Vp + 2));
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (size != expect) {
        fprintf(stderr, "FAIL %s: %ld bytes, the header implies %ld\n", fixture_path, size, expect);
        exit(1);
    }
    fseek(f, 8 + (long)sizeof h, SEEK_SET);
    g->params = read_array(f, P, 4, "params");
    g->tokens = read_array(f, BT, 4, "tokens");
    g->targets = read_array(f, BT, 4, "targets");
    g->logits = read_array(f, BT * Vp, 4, "logits");
    g->losses = read_array(f, BT, 4, "losses");
    read_exact(f, &g->loss_uniform, 4, "loss_uniform");
    g->grads_uniform = read_array(f, P, 4, "grads_uniform");
    g->weights = read_array(f, BT, 4, "weights");
    read_exact(f, &g->loss_weighted, 4, "loss_weighted");
    g->grads_weighted = read_array(f, P, 4, "grads_weighted");
    fclose(f);
    for (size_t i = 0; i < BT; i++)
        if (g->tokens[i] < 0 || g->tokens[i] >= g->cfg.vocab || g->targets[i] >= g->cfg.vocab) {
            fprintf(stderr, "FAIL %s: token or target %zu out of range\n", fixture_path, i);
            exit(1);
        }
}

static void golden_free(golden *g) {
    free(g->params); free(g->tokens); free(g->targets); free(g->logits); free(g->losses);
    free(g->grads_uniform); free(g->weights); free(g->grads_weighted);
}

static int scalar_close(double got, double want) {
    return fabs(got - want) <= VAL_ATOL + VAL_RTOL * fabs(want);
}

/* Compares every parameter tensor's gradient and prints its max error ratio (<= 1 passes). */
static void compare_grads(const gpt_model *m, const float *got, const float *want, const char *label) {
    printf("%s gradients (error ratio = |got-want| / (%.0e*max|want| + %.0e*|want|), <= 1 passes):\n",
           label, GRAD_ATOL_FRAC, GRAD_RTOL);
    for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++) {
        const float *a = got + m->param_offsets[t], *b = want + m->param_offsets[t];
        size_t n = m->param_sizes[t], worst = 0;
        double scale = 0, max_abs_err = 0;
        for (size_t i = 0; i < n; i++) {
            if (fabs(b[i]) > scale) scale = fabs(b[i]);
            double e = fabs((double)a[i] - b[i]);
            if (!(e <= max_abs_err)) max_abs_err = e;
        }
        double ratio = test_max_err_ratio(a, b, n, GRAD_ATOL_FRAC * scale + 1e-30, GRAD_RTOL, &worst);
        printf("  %-9s max|want| %.3e  max abs err %.3e  ratio %.4f\n", test_tensor_names[t], scale,
               max_abs_err, ratio);
        CHECK(ratio <= 1.0, "%s grad of %s: ratio %.3f at %zu (got %.8g want %.8g)", label,
              test_tensor_names[t], ratio, worst, a[worst], b[worst]);
    }
}

/* Rows of wpe past T and the padded rows of wte take no part in the loss: their gradient is 0. */
static void check_unused_rows_zero(const gpt_model *m, const float *grads, int T, const char *label) {
    const gpt_config *c = &m->cfg;
    const float *dwpe = grads + m->param_offsets[P_WPE];
    const float *dwte = grads + m->param_offsets[P_WTE];
    size_t nonzero = 0;
    for (size_t i = (size_t)T * c->d_model; i < (size_t)c->max_seq * c->d_model; i++)
        nonzero += dwpe[i] != 0.0f;
    for (size_t i = (size_t)c->vocab * c->d_model; i < (size_t)c->vocab_padded * c->d_model; i++)
        nonzero += dwte[i] != 0.0f;
    CHECK(nonzero == 0, "%s: %zu gradient values of unused wpe/wte rows are non-zero", label, nonzero);
}

int main(int argc, char **argv) {
    if (argc > 1) fixture_path = argv[1];
    golden g;
    golden_load(&g);
    const gpt_config *c = &g.cfg;
    const int B = g.B, T = g.T, V = c->vocab, Vp = c->vocab_padded;
    const size_t BT = (size_t)B * T, P = g.num_params;
    printf("fixture: L=%d NH=%d C=%d maxT=%d V=%d Vp=%d, batch %dx%d, %zu params\n", c->n_layer,
           c->n_head, c->d_model, c->max_seq, V, Vp, B, T, P);

    exitrl_backend *be = test_cpu_backend();
    gpt_model m;
    if (gpt_create(&m, be, c, B, T) != 0) {
        fprintf(stderr, "FAIL: gpt_create\n");
        return 1;
    }
    gpt_load_params(&m, g.params);

    float *logits = test_floats(BT * Vp), *losses = test_floats(BT), *grads = test_floats(P);
    float *grads_again = test_floats(P);

    /* ---- forward: logits (first V columns), per-token losses, uniform weighted loss ---- */
    gpt_set_batch(&m, g.tokens, g.targets, NULL, B, T);
    gpt_forward(&m, B, T);
    be->download(be, logits, m.acts.logits, BT * Vp * sizeof(float));
    be->download(be, losses, m.acts.losses, BT * sizeof(float));
    double logit_ratio = 0;
    size_t logit_worst = 0;
    for (size_t r = 0; r < BT; r++) {
        size_t w;
        double e = test_max_err_ratio(logits + r * Vp, g.logits + r * Vp, (size_t)V, VAL_ATOL,
                                      VAL_RTOL, &w);
        if (!(e <= logit_ratio)) { logit_ratio = e; logit_worst = r * Vp + w; }
    }
    printf("logits: max error ratio %.4f (|got-want| / (%.0e + %.0e*|want|))\n", logit_ratio,
           VAL_ATOL, VAL_RTOL);
    CHECK(logit_ratio <= 1.0, "logits: ratio %.3f at row %zu col %zu (got %.8g want %.8g)",
          logit_ratio, logit_worst / Vp, logit_worst % Vp, logits[logit_worst], g.logits[logit_worst]);

    double loss_ratio = 0;
    for (size_t i = 0; i < BT; i++) {
        if (g.targets[i] < 0) continue;
        double e = fabs((double)losses[i] - g.losses[i]) / (VAL_ATOL + VAL_RTOL * fabs(g.losses[i]));
        if (!(e <= loss_ratio)) loss_ratio = e;
        CHECK(e <= 1.0, "loss of token %zu: got %.8g want %.8g", i, losses[i], g.losses[i]);
    }
    printf("per-token losses: max error ratio %.4f\n", loss_ratio);
    float fwd_loss = gpt_weighted_loss(&m, B, T);
    CHECK(scalar_close(fwd_loss, g.loss_uniform), "forward weighted loss %.8g, want %.8g", fwd_loss,
          g.loss_uniform);

    /* ---- backward, uniform (NULL) weights: the mean over target tokens ---- */
    gpt_zero_grad(&m);
    float loss = gpt_forward_backward(&m, B, T);
    printf("uniform loss: got %.8f want %.8f\n", loss, g.loss_uniform);
    CHECK(scalar_close(loss, g.loss_uniform), "uniform loss %.8g, want %.8g", loss, g.loss_uniform);
    be->download(be, grads, m.grads, P * sizeof(float));
    compare_grads(&m, grads, g.grads_uniform, "uniform");
    check_unused_rows_zero(&m, grads, T, "uniform");

    /* ---- backward, explicit signed weights (as GRPO's advantages give) ---- */
    gpt_set_batch(&m, g.tokens, g.targets, g.weights, B, T);
    gpt_zero_grad(&m);
    loss = gpt_forward_backward(&m, B, T);
    printf("weighted loss: got %.8f want %.8f\n", loss, g.loss_weighted);
    CHECK(scalar_close(loss, g.loss_weighted), "weighted loss %.8g, want %.8g", loss, g.loss_weighted);
    be->download(be, grads, m.grads, P * sizeof(float));
    compare_grads(&m, grads, g.grads_weighted, "weighted");
    check_unused_rows_zero(&m, grads, T, "weighted");

    /* ---- gradients accumulate: a second pass without zeroing doubles them (up to rounding) ---- */
    gpt_forward_backward(&m, B, T);
    be->download(be, grads_again, m.grads, P * sizeof(float));
    /* Accumulating onto a nonzero gradient rounds differently from doubling it; where a sum
     * cancels, that rounding is large next to the element itself, so the absolute part of the
     * tolerance scales with the largest gradient (fp32 rounding of sums of its size). */
    float gmax = 0.0f;
    for (size_t i = 0; i < P; i++) gmax = fmaxf(gmax, fabsf(grads[i]));
    size_t off = 0;
    for (size_t i = 0; i < P; i++) off += fabsf(grads_again[i] - 2.0f * grads[i]) >
                                          1e-6f * fabsf(2.0f * grads[i]) + 1e-6f * gmax;
    CHECK(off == 0, "%zu gradients are not doubled by a second gpt_forward_backward", off);

    free(logits); free(losses); free(grads); free(grads_again);
    gpt_destroy(&m);
    be->destroy(be);
    golden_free(&g);
    return test_finish("test_model_golden");
}
