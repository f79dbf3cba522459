/* The RL ops of the CPU backend (ops.h, "RL (GRPO / ExIt)"): group_advantage, diversity_scale,
 * score_groups and grpo_classifier, against
 *   - cases worked by hand (in the comments),
 *   - the grpo_classifier gradient by central finite differences of the scalar objective
 *     sum_n weight[n] * loss_tok[n], computed in double here, in every clip regime with both signs
 *     of A, with the k3 KL term, a temperature, targets of -1 and padded columns,
 *   - the CE classifier (at rho = 1 and beta = 0 the GRPO gradient is the CE gradient with
 *     dloss_weights = A * weight),
 *   - golden values of an independent float64 PyTorch reference (tests/ref/rl_ref.py, which
 *     documents the fixture's format).
 *
 * Tolerances. The group ops accumulate in double and round once, so they land within an ulp or two
 * of the float64 reference: |got - want| <= 1e-6 + 2e-6 |want|. Per-row GRPO values carry the fp32
 * rounding of the scaled logits (|z| up to ~10, an ulp ~1e-6): 1e-5 + 1e-5 |want|. dlogits are fp32
 * products of a softmax: 1e-5 * max|want| + 1e-4 |want|. rl_ref.py checks that each deliberate
 * mistake it knows (population std, eps inside the sqrt, min-max diversity, ties to the highest
 * index, temperature left out of the gradient, gradient through the clipped branch, softmax over
 * Vp, the k3 gradient's sign) moves the golden values by more than 10x these tolerances. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "philox.h"
#include "test_util.h"

#define DEFAULT_FIXTURE EXITRL_SOURCE_DIR "/tests/fixtures/rl_golden.bin"
#define FIXTURE_VERSION 1

static const double GROUP_ATOL = 1e-6, GROUP_RTOL = 2e-6;
static const double ROW_ATOL = 1e-5, ROW_RTOL = 1e-5;
static const double DLOGIT_ATOL_FRAC = 1e-5, DLOGIT_RTOL = 1e-4;

static exitrl_backend *be;
/* The fixture being read (argv[1] overrides the default, to try damaged files by hand). */
static const char *fixture_path = DEFAULT_FIXTURE;

#define CHECK_NEAR(got, want, tol, ...)                                                  \
    do {                                                                                 \
        double got_ = (got), want_ = (want);                                             \
        CHECK(fabs(got_ - want_) <= (tol), __VA_ARGS__);                                 \
        if (!(fabs(got_ - want_) <= (tol))) fprintf(stderr, "  got %.9g, want %.9g\n", got_, want_); \
    } while (0)

/* ---- backend round trips: host arrays in, host arrays out ---- */
static void *to_backend(const void *host, size_t bytes) {
    return host ? dev_upload(be, host, bytes) : dev_zeros(be, bytes);
}
static void from_backend(void *host, void *dev, size_t bytes) {
    be->download(be, host, dev, bytes);
    be->free(be, dev);
}

static void run_advantage(float *adv, const float *rewards, const float *div, int P, int G,
                          int mode, float eps) {
    size_t bytes = sizeof(float) * P * G;
    float *d_adv = to_backend(NULL, bytes), *d_r = to_backend(rewards, bytes);
    float *d_div = div ? to_backend(div, bytes) : NULL;
    be->group_advantage(be, d_adv, d_r, d_div, P, G, mode, eps);
    from_backend(adv, d_adv, bytes);
    be->free(be, d_r);
    if (d_div) be->free(be, d_div);
}

static void run_diversity(float *d, const float *emb, int P, int G, int C) {
    float *d_d = to_backend(NULL, sizeof(float) * P * G);
    float *d_e = to_backend(emb, sizeof(float) * P * G * C);
    be->diversity_scale(be, d_d, d_e, P, G, C);
    from_backend(d, d_d, sizeof(float) * P * G);
    be->free(be, d_e);
}

static void run_scores(float *scores, int *chosen, const float *rewards, int P, int G, int mode,
                       int k, uint64_t seed) {
    float *d_s = to_backend(NULL, sizeof(float) * P), *d_r = to_backend(rewards, sizeof(float) * P * G);
    int *d_c = to_backend(NULL, sizeof(int) * P * G);
    be->score_groups(be, d_s, d_c, d_r, P, G, mode, k, seed);
    from_backend(scores, d_s, sizeof(float) * P);
    from_backend(chosen, d_c, sizeof(int) * P * G);
    be->free(be, d_r);
}

typedef struct {
    int N, V, Vp;
    const float *logits; /* [N, Vp], left untouched (the op works on a copy) */
    const int *targets;
    const float *lp_old, *lp_ref, *adv, *weight; /* lp_ref may be NULL */
    float inv_temp, eps_low, eps_high, beta;
} grpo_case;

/* Runs grpo_classifier; dlogits [N*Vp] and lp_new, loss, clipped [N] are host outputs. */
static void run_grpo(const grpo_case *c, float *dlogits, float *lp_new, float *loss, float *clipped) {
    const size_t N = c->N, rows = sizeof(float) * N, lbytes = sizeof(float) * N * c->Vp;
    void *d_logits = to_backend(c->logits, lbytes);
    int *d_t = to_backend(c->targets, sizeof(int) * N);
    float *d_old = to_backend(c->lp_old, rows), *d_adv = to_backend(c->adv, rows);
    float *d_w = to_backend(c->weight, rows);
    float *d_ref = c->lp_ref ? to_backend(c->lp_ref, rows) : NULL;
    float *d_lp = to_backend(NULL, rows), *d_loss = to_backend(NULL, rows);
    float *d_clip = to_backend(NULL, rows);
    be->grpo_classifier(be, d_logits, d_t, d_old, d_ref, d_adv, d_w, c->inv_temp, c->eps_low,
                        c->eps_high, c->beta, d_lp, d_loss, d_clip, c->N, c->V, c->Vp);
    from_backend(dlogits, d_logits, lbytes);
    from_backend(lp_new, d_lp, rows);
    from_backend(loss, d_loss, rows);
    from_backend(clipped, d_clip, rows);
    be->free(be, d_t), be->free(be, d_old), be->free(be, d_adv), be->free(be, d_w);
    if (d_ref) be->free(be, d_ref);
}

/* ---- group_advantage by hand ---- */
static void test_advantage_hand(void) {
    float adv[8];
    /* {1,0,0,1}: mean 0.5, deviations +-0.5, squares sum to 1, Bessel variance 1/3, std
     * 0.5773503. eps 0: A = +-0.5 / 0.5773503 = +-0.8660254 (sqrt(3)/2). eps 0.1 goes on the std:
     * +-0.5 / 0.6773503 = +-0.7381705 (on the variance it would be 0.5/sqrt(1/3+0.1) = 0.7595545). */
    const float r4[4] = {1, 0, 0, 1};
    run_advantage(adv, r4, NULL, 1, 4, EXITRL_SCALE_GROUP, 0.0f);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(adv[i], (r4[i] ? 1 : -1) * 0.8660254, 1e-6, "group {1,0,0,1} eps 0, i=%d", i);
    run_advantage(adv, r4, NULL, 1, 4, EXITRL_SCALE_GROUP, 0.1f);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(adv[i], (r4[i] ? 1 : -1) * 0.7381705, 1e-6, "group {1,0,0,1} eps 0.1, i=%d", i);

    /* Diversity multiplies: d = {2, 0.5, 3, 1} -> {1.7320508, -0.4330127, -2.5980762, 0.8660254}. */
    const float div4[4] = {2, 0.5f, 3, 1}, want_div[4] = {1.7320508f, -0.4330127f, -2.5980762f, 0.8660254f};
    run_advantage(adv, r4, div4, 1, 4, EXITRL_SCALE_GROUP, 0.0f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(adv[i], want_div[i], 1e-6, "with diversity, i=%d", i);

    /* All equal: std 0, A = 0 / (0 + eps) = 0 in every mode. */
    const float same[3] = {0.3f, 0.3f, 0.3f};
    for (int mode = 0; mode < 3; mode++) {
        run_advantage(adv, same, NULL, 1, 3, mode, 1e-4f);
        for (int i = 0; i < 3; i++) CHECK(adv[i] == 0.0f, "all equal, mode %d: %g", mode, adv[i]);
    }

    /* Two groups {1,0 | 1,1}. BATCH: batch mean 0.75, deviations .25 -.75 .25 .25, squares
     * sum to 0.75, Bessel variance 0.25, s = 0.5; group means 0.5 and 1:
     *   A = (1-.5)/.5, (0-.5)/.5, 0, 0 = {1, -1, 0, 0} (eps 0); with eps 0.1: +-0.5/0.6 = +-0.8333333.
     * GROUP, eps 1e-4: group 0 std sqrt(0.5) = 0.7071068 -> A = +-0.5/0.7072068 = +-0.7070068;
     * group 1: 0 / (0 + eps) = 0 (with eps 0 it would be 0/0: ops.h gives no rule for that).
     * NONE: A = r - mean = {0.5, -0.5, 0, 0}. */
    const float r22[4] = {1, 0, 1, 1};
    run_advantage(adv, r22, NULL, 2, 2, EXITRL_SCALE_BATCH, 0.0f);
    const float want_batch[4] = {1, -1, 0, 0};
    for (int i = 0; i < 4; i++) CHECK_NEAR(adv[i], want_batch[i], 1e-6, "batch eps 0, i=%d", i);
    run_advantage(adv, r22, NULL, 2, 2, EXITRL_SCALE_BATCH, 0.1f);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(adv[i], want_batch[i] * 0.8333333, 1e-6, "batch eps 0.1, i=%d", i);
    run_advantage(adv, r22, NULL, 2, 2, EXITRL_SCALE_GROUP, 1e-4f);
    const float want_group[4] = {0.7070068f, -0.7070068f, 0, 0};
    for (int i = 0; i < 4; i++) CHECK_NEAR(adv[i], want_group[i], 1e-6, "group of two, i=%d", i);
    const float want_none[4] = {0.5f, -0.5f, 0, 0}, div22[4] = {3, 2, 5, 7};
    run_advantage(adv, r22, NULL, 2, 2, EXITRL_SCALE_NONE, 1e-4f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(adv[i], want_none[i], 1e-7, "none, i=%d", i);
    run_advantage(adv, r22, div22, 2, 2, EXITRL_SCALE_NONE, 1e-4f);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(adv[i], want_none[i] * div22[i], 1e-6, "none with diversity, i=%d", i);

    /* G == 1: nothing to compare against, A = 0 in every mode, with or without diversity. */
    const float r1[3] = {0.9f, 0.1f, 0.5f}, d1[3] = {2, 2, 2};
    for (int mode = 0; mode < 3; mode++) {
        run_advantage(adv, r1, d1, 3, 1, mode, 1e-4f);
        for (int i = 0; i < 3; i++) CHECK(adv[i] == 0.0f, "G == 1, mode %d: %g", mode, adv[i]);
    }
}

/* ---- diversity_scale by hand ---- */
static void test_diversity_hand(void) {
    float d[8];
    /* Three points on a line: (0,0), (1,0), (5,0); centroid (2,0); distances 2, 1, 3;
     * max - min = 2; d = 1, 0.5, 1.5. */
    const float line[6] = {0, 0, 1, 0, 5, 0};
    run_diversity(d, line, 1, 3, 2);
    const float want_line[3] = {1, 0.5f, 1.5f};
    for (int i = 0; i < 3; i++) CHECK_NEAR(d[i], want_line[i], 1e-6, "line, i=%d", i);

    /* Group 0: (0,0), (4,0), (0,0), (0,4); centroid (1,1); distances sqrt2, sqrt10, sqrt2,
     * sqrt10; d = sqrt2/(sqrt10-sqrt2) = 1/(sqrt5-1) = 0.8090170 and sqrt5/(sqrt5-1) = 1.8090170.
     * Group 1: the corners of a square around (10,-3), all sqrt2 from the centroid: the
     * denominator is 0, so d = 1 for the whole group. */
    const float two[16] = {0, 0, 4, 0, 0, 0, 0, 4, 11, -2, 9, -2, 11, -4, 9, -4};
    run_diversity(d, two, 2, 4, 2);
    const float want_two[8] = {0.8090170f, 1.8090170f, 0.8090170f, 1.8090170f, 1, 1, 1, 1};
    for (int i = 0; i < 8; i++) CHECK_NEAR(d[i], want_two[i], 1e-6, "two groups, i=%d", i);

    /* G == 2 with arbitrary values: both points are equally far from their midpoint -> 1. So is
     * G == 1 (one point, zero range). */
    float emb[3 * 2 * 5];
    test_fill(emb, 30, 11, 3.0f);
    run_diversity(d, emb, 3, 2, 5);
    for (int i = 0; i < 6; i++) CHECK(d[i] == 1.0f, "G == 2, i=%d: %g", i, d[i]);
    run_diversity(d, emb, 4, 1, 5);
    for (int i = 0; i < 4; i++) CHECK(d[i] == 1.0f, "G == 1, i=%d: %g", i, d[i]);
}

/* ---- score_groups by hand ---- */
static void test_scores_hand(void) {
    /* 0/1 rewards with s successes of 8: population variance p(1-p), p = s/8, score 4p(1-p):
     * 0, 0.4375, 0.75, 0.9375, 1, 0.9375, 0.75, 0.4375, 0. */
    float r[9 * 8], scores[9];
    int chosen[9 * 8];
    for (int s = 0; s <= 8; s++)
        for (int j = 0; j < 8; j++) r[s * 8 + j] = ((j * 5 + s) % 8) < s ? 1.0f : 0.0f; /* s ones, scattered */
    run_scores(scores, chosen, r, 9, 8, EXITRL_SELECT_ALL, 0, 1);
    for (int s = 0; s <= 8; s++) {
        double p = s / 8.0;
        CHECK_NEAR(scores[s], 4 * p * (1 - p), 1e-7, "0/1 group with %d successes", s);
    }
    /* {0.2, 0.6, 0.2, 0.6}: mean 0.4, population variance 0.04, score 0.16. */
    const float cont[4] = {0.2f, 0.6f, 0.2f, 0.6f};
    run_scores(scores, chosen, cont, 1, 4, EXITRL_SELECT_ALL, 0, 1);
    CHECK_NEAR(scores[0], 0.16, 1e-7, "continuous group");
    run_scores(scores, chosen, cont, 4, 1, EXITRL_SELECT_ALL, 0, 1); /* G == 1: variance 0 */
    for (int g = 0; g < 4; g++) CHECK(scores[g] == 0.0f, "G == 1 score %g", scores[g]);
}

/* ---- selection modes by hand ---- */
static void check_chosen(const int *got, const int *want, int n, const char *what) {
    for (int i = 0; i < n; i++) CHECK(got[i] == want[i], "%s: chosen[%d] = %d, want %d", what, i, got[i], want[i]);
}

static void test_selection_hand(void) {
    /* g0 {0.5, 0.9, 0.9, 0.1}: tie at the top; g1 all 0.3; g2 {0.9, 0.5, 0.5, 0.5}: tie below. */
    const float r[12] = {0.5f, 0.9f, 0.9f, 0.1f, 0.3f, 0.3f, 0.3f, 0.3f, 0.9f, 0.5f, 0.5f, 0.5f};
    /* Scores: g0 mean 0.6, squares .01 .09 .09 .25 -> pop var 0.11, score 0.44; g1 0;
     * g2 mean 0.6, squares .09 .01 .01 .01 -> pop var 0.03, score 0.12. Same in every mode. */
    const float want_scores[3] = {0.44f, 0.0f, 0.12f};
    float scores[3];
    int chosen[12];
    const int all[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    run_scores(scores, chosen, r, 3, 4, EXITRL_SELECT_ALL, 1, 5);
    check_chosen(chosen, all, 12, "ALL");
    for (int mode = 0; mode < 4; mode++) {
        run_scores(scores, chosen, r, 3, 4, mode, 2, 5);
        for (int g = 0; g < 3; g++) CHECK_NEAR(scores[g], want_scores[g], 1e-7, "mode %d group %d", mode, g);
    }
    /* BEST: the highest, ties to the lowest index (k is ignored). */
    const int best[12] = {0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
    run_scores(scores, chosen, r, 3, 4, EXITRL_SELECT_BEST, 3, 5);
    check_chosen(chosen, best, 12, "BEST");
    /* TOPK k = 2: g0 {1, 2}; g1 {0, 1}; g2 {0, 1}. k = 3: g0 {1, 2, 0}; g1 {0, 1, 2}; g2 {0, 1, 2}. */
    const int top2[12] = {0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0};
    const int top3[12] = {1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0};
    run_scores(scores, chosen, r, 3, 4, EXITRL_SELECT_TOPK, 2, 5);
    check_chosen(chosen, top2, 12, "TOPK 2");
    run_scores(scores, chosen, r, 3, 4, EXITRL_SELECT_TOPK, 3, 5);
    check_chosen(chosen, top3, 12, "TOPK 3");
    /* k >= G keeps the whole group, for TOPK and RANDOM. */
    for (int k = 4; k <= 9; k += 5) {
        run_scores(scores, chosen, r, 3, 4, EXITRL_SELECT_TOPK, k, 5);
        check_chosen(chosen, all, 12, "TOPK k >= G");
        run_scores(scores, chosen, r, 3, 4, EXITRL_SELECT_RANDOM, k, 5);
        check_chosen(chosen, all, 12, "RANDOM k >= G");
    }
}

/* ---- RANDOM selection ---- */
static int chosen_equal(const int *a, const int *b, int n) { return memcmp(a, b, sizeof(int) * n) == 0; }

static void test_random_selection(void) {
    enum { P = 4, G = 8, K = 3 };
    float r[P * G], scores[P];
    int a[P * G], b[P * G];
    test_fill(r, P * G, 21, 1.0f);
    const uint64_t seed = 0xDEADBEEF12345678ull;
    run_scores(scores, a, r, P, G, EXITRL_SELECT_RANDOM, K, seed);
    /* k of each group; the k smallest 24-bit Philox draws with counter (j, g, 1, 0). */
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int g = 0; g < P; g++) {
        uint32_t draw[G];
        int kept = 0;
        for (int j = 0; j < G; j++) {
            uint32_t out[4];
            philox4x32_10((uint32_t[4]){(uint32_t)j, (uint32_t)g, 1u, 0u}, key, out);
            draw[j] = out[0] >> 8;
        }
        for (int j = 0; j < G; j++) {
            int smaller = 0;
            for (int i = 0; i < G; i++) smaller += draw[i] < draw[j] || (draw[i] == draw[j] && i < j);
            CHECK(a[g * G + j] == (smaller < K), "RANDOM group %d member %d vs its Philox draw", g, j);
            kept += a[g * G + j];
        }
        CHECK(kept == K, "RANDOM group %d kept %d, want %d", g, kept, K);
    }
    /* Deterministic per seed, different across seeds (also the seed's high word). */
    run_scores(scores, b, r, P, G, EXITRL_SELECT_RANDOM, K, seed);
    CHECK(chosen_equal(a, b, P * G), "RANDOM same seed, different choice");
    int same = 0;
    for (uint64_t s = 1; s <= 20; s++) {
        run_scores(scores, b, r, P, G, EXITRL_SELECT_RANDOM, K, seed + (s << 32));
        same += chosen_equal(a, b, P * G);
    }
    /* Two independent draws coincide with probability 56^-4 per seed. */
    CHECK(same == 0, "RANDOM: %d of 20 other seeds (high word) chose the same", same);

    /* Uniform over the C(5,2) = 10 subsets: 4000 seeds, 3 groups each tested on its own; Pearson
     * chi-square with 9 degrees of freedom, bound 33.72 (upper 1e-4 quantile). */
    enum { GU = 5, KU = 2, PU = 3, SEEDS = 4000 };
    float ru[PU * GU] = {0};
    int ch[PU * GU], counts[PU][32] = {{0}};
    for (int s = 0; s < SEEDS; s++) {
        run_scores(scores, ch, ru, PU, GU, EXITRL_SELECT_RANDOM, KU, (uint64_t)s * 0x9E3779B97F4A7C15ull);
        for (int g = 0; g < PU; g++) {
            int mask = 0;
            for (int j = 0; j < GU; j++) mask |= ch[g * GU + j] << j;
            counts[g][mask]++;
        }
    }
    for (int g = 0; g < PU; g++) {
        double expect = SEEDS / 10.0, x2 = 0;
        int subsets = 0, stray = 0;
        for (int mask = 0; mask < 32; mask++) {
            int members = 0;
            for (int j = 0; j < GU; j++) members += (mask >> j) & 1;
            if (members != KU) {
                stray += counts[g][mask];
                continue;
            }
            subsets++;
            x2 += (counts[g][mask] - expect) * (counts[g][mask] - expect) / expect;
        }
        CHECK(stray == 0 && subsets == 10, "group %d: %d choices of the wrong size", g, stray);
        CHECK(x2 < 33.72, "RANDOM not uniform over subsets in group %d: chi-square %.2f (9 df)", g, x2);
        printf("RANDOM uniformity, group %d: chi-square %.2f (9 df, bound 33.72)\n", g, x2);
    }
}

/* ---- grpo_classifier: the objective in double ---- */
typedef struct {
    double lp, loss; /* loss = loss_tok, unweighted */
} row_value;

/* log softmax(l * inv_temp)[tgt] over V columns, in double. */
static double log_prob(const double *l, int V, int tgt, double inv_temp) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, l[v] * inv_temp);
    for (int v = 0; v < V; v++) s += exp(l[v] * inv_temp - mx);
    return l[tgt] * inv_temp - mx - log(s);
}

/* lp and loss_tok of ops.h for row n of case c with logits l, all in double. */
static row_value grpo_row(const double *l, const grpo_case *c, int n) {
    row_value r;
    r.lp = log_prob(l, c->V, c->targets[n], c->inv_temp);
    double A = c->adv[n], rho = exp(r.lp - c->lp_old[n]);
    double lo = 1.0 - (double)c->eps_low, hi = 1.0 + (double)c->eps_high;
    double rho_c = fmin(fmax(rho, lo), hi);
    r.loss = -fmin(rho * A, rho_c * A);
    if (c->lp_ref) {
        double x = c->lp_ref[n] - r.lp;
        r.loss += c->beta * (exp(x) - x - 1);
    }
    return r;
}

enum { REG_INSIDE, REG_ABOVE, REG_BELOW };

/* (a) dlogits against central differences of weight[n] * loss_tok[n]; (b) lp_new, loss and the
 * clipped flag against direct computation; zeros where ops.h asks for them. */
static void check_grpo_fd(const grpo_case *c, const int *regime, const char *what) {
    const int N = c->N, V = c->V, Vp = c->Vp;
    float *dl = malloc(sizeof(float) * N * Vp), *lp = malloc(sizeof(float) * N);
    float *loss = malloc(sizeof(float) * N), *clip = malloc(sizeof(float) * N);
    double *row = malloc(sizeof(double) * Vp);
    run_grpo(c, dl, lp, loss, clip);
    double max_fd = 0, worst = 0;
    double *fd = malloc(sizeof(double) * N * Vp);
    const double h = 1e-4;
    for (int n = 0; n < N; n++) {
        if (c->targets[n] < 0) continue;
        for (int v = 0; v < Vp; v++) row[v] = c->logits[(size_t)n * Vp + v];
        for (int v = 0; v < V; v++) {
            double keep = row[v];
            row[v] = keep + h;
            double up = grpo_row(row, c, n).loss;
            row[v] = keep - h;
            double down = grpo_row(row, c, n).loss;
            row[v] = keep;
            fd[(size_t)n * Vp + v] = c->weight[n] * (up - down) / (2 * h);
            max_fd = fmax(max_fd, fabs(fd[(size_t)n * Vp + v]));
        }
    }
    int clipped_rows = 0, unclipped_outside = 0;
    for (int n = 0; n < N; n++) {
        const float *g = dl + (size_t)n * Vp;
        if (c->targets[n] < 0) {
            int nonzero = 0;
            for (int v = 0; v < Vp; v++) nonzero += g[v] != 0.0f;
            CHECK(nonzero == 0 && lp[n] == 0 && loss[n] == 0 && clip[n] == 0,
                  "%s: row %d (target -1) not all zero", what, n);
            continue;
        }
        for (int v = 0; v < V; v++) {
            double want = fd[(size_t)n * Vp + v];
            double e = fabs(g[v] - want) / (2e-6 * max_fd + 1e-5 * fabs(want));
            worst = fmax(worst, e);
            CHECK(e <= 1.0, "%s: dlogits[%d,%d] = %.9g, finite difference %.9g", what, n, v, g[v], want);
        }
        for (int v = V; v < Vp; v++) CHECK(g[v] == 0.0f, "%s: padded dlogits[%d,%d] = %g", what, n, v, g[v]);
        for (int v = 0; v < Vp; v++) row[v] = c->logits[(size_t)n * Vp + v];
        row_value want = grpo_row(row, c, n);
        CHECK_NEAR(lp[n], want.lp, 1e-5 + 1e-5 * fabs(want.lp), "%s: lp_new row %d", what, n);
        CHECK_NEAR(loss[n], want.loss, 1e-5 + 1e-5 * fabs(want.loss), "%s: loss row %d", what, n);
        /* Clipped: rho above the range with A > 0, or below it with A < 0 (the min picks the
         * constant clipped product); rho outside the range with the other sign keeps its gradient. */
        int want_clip = (regime[n] == REG_ABOVE && c->adv[n] > 0) || (regime[n] == REG_BELOW && c->adv[n] < 0);
        CHECK(clip[n] == (float)want_clip, "%s: clipped row %d = %g, want %d", what, n, clip[n], want_clip);
        clipped_rows += want_clip;
        unclipped_outside += regime[n] != REG_INSIDE && !want_clip;
    }
    CHECK(clipped_rows >= 2 && unclipped_outside >= 2, "%s: the case must exercise both branches", what);
    printf("%s: dlogits vs finite differences, worst err ratio %.3g (max |grad| %.3g)\n", what, worst, max_fd);
    free(dl), free(lp), free(loss), free(clip), free(row), free(fd);
}

static void test_grpo_finite_differences(void) {
    enum { N = 14, V = 23, Vp = 32 };
    float logits[N * Vp], lp_old[N], lp_ref[N], adv[N], weight[N];
    int targets[N], regime[N];
    test_fill(logits, N * Vp, 31, 2.5f);
    for (int n = 0; n < N; n++)
        for (int v = V; v < Vp; v++) logits[n * Vp + v] = 40.0f + v; /* must be ignored */
    /* rho per row and A: every regime with both signs; eps_low 0.2, eps_high 0.3 -> range
     * [0.8, 1.3]. Rows 3 and 9 have no target; row 12 has weight 0. */
    const double rho[N] = {0.95, 1.1, 1.5, 1.7, 0.6, 0.5, 1.0, 1.25, 2.0, 1.0, 0.65, 0.85, 1.4, 0.7};
    const float A[N] = {1.2f, -0.7f, 0.8f, -1.3f, 1.5f, -0.9f, 0.0f, 2.1f, -0.6f, 1.0f, 0.4f, -1.6f, 0.9f, -0.5f};
    grpo_case c = {N, V, Vp, logits, targets, lp_old, lp_ref, adv, weight, 1.25f, 0.2f, 0.3f, 0.05f};
    unsigned long long s = 77;
    for (int n = 0; n < N; n++) {
        targets[n] = (n == 3 || n == 9) ? -1 : (int)((test_randf(&s, 0.5f) + 0.5f) * V) % V;
        adv[n] = A[n];
        weight[n] = n == 12 ? 0.0f : 0.7f + test_randf(&s, 0.5f);
        regime[n] = rho[n] > 1.3 ? REG_ABOVE : rho[n] < 0.8 ? REG_BELOW : REG_INSIDE;
    }
    /* lp_old = lp - log(rho): the intended ratio, far (>= 0.05) from the range's ends. */
    double row[Vp];
    for (int n = 0; n < N; n++) {
        lp_old[n] = 0, lp_ref[n] = 0;
        if (targets[n] < 0) continue;
        for (int v = 0; v < Vp; v++) row[v] = logits[n * Vp + v];
        double lp = log_prob(row, V, targets[n], c.inv_temp);
        lp_old[n] = (float)(lp - log(rho[n]));
        lp_ref[n] = (float)(lp + test_randf(&s, 0.6f));
    }
    check_grpo_fd(&c, regime, "grpo with lp_ref, beta 0.05, inv_temp 1.25");
    c.lp_ref = NULL;
    check_grpo_fd(&c, regime, "grpo without lp_ref");
    /* beta = 0 with lp_ref given: no KL term, same as no lp_ref. */
    c.lp_ref = lp_ref;
    c.beta = 0.0f;
    float *g0 = malloc(sizeof(float) * N * Vp), *g1 = malloc(sizeof(float) * N * Vp), a[N], b[N], cl[N];
    run_grpo(&c, g0, a, b, cl);
    c.lp_ref = NULL;
    run_grpo(&c, g1, a, b, cl);
    CHECK(memcmp(g0, g1, sizeof(float) * N * Vp) == 0, "beta 0 with lp_ref differs from no lp_ref");
    free(g0), free(g1);
}

/* (c) At rho = 1 (lp_old = lp) and beta = 0, g = -A, so dlogits = weight * (-A) * (onehot - p)
 * = (A * weight) * (p - onehot): the CE classifier's gradient with dloss_weights = A * weight. */
static void test_grpo_vs_classifier(void) {
    enum { N = 10, V = 29, Vp = 32 };
    float logits[N * Vp], zeros[N] = {0}, adv[N], weight[N], ce_w[N];
    int targets[N];
    test_fill(logits, N * Vp, 41, 3.0f);
    unsigned long long s = 43;
    for (int n = 0; n < N; n++) {
        targets[n] = n == 6 ? -1 : (n * 7 + 3) % V;
        adv[n] = test_randf(&s, 2.0f);
        weight[n] = 0.5f + test_randf(&s, 0.4f);
        ce_w[n] = adv[n] * weight[n];
    }
    float dl[N * Vp], lp[N], loss[N], clip[N], lp2[N];
    grpo_case c = {N, V, Vp, logits, targets, zeros, NULL, adv, weight, 1.0f, 0.2f, 0.2f, 0.0f};
    run_grpo(&c, dl, lp, loss, clip); /* first pass: the log-probs */
    c.lp_old = lp;
    c.lp_ref = adv; /* any values: beta = 0 must make them irrelevant */
    run_grpo(&c, dl, lp2, loss, clip);

    void *d_logits = to_backend(logits, sizeof logits);
    float *d_w = to_backend(ce_w, sizeof ce_w), *d_loss = to_backend(NULL, sizeof loss);
    int *d_t = to_backend(targets, sizeof targets);
    float ce[N * Vp], ce_loss[N];
    be->classifier_forward_backward(be, d_logits, d_loss, d_w, d_t, N, V, Vp);
    from_backend(ce, d_logits, sizeof ce);
    from_backend(ce_loss, d_loss, sizeof ce_loss);
    be->free(be, d_w), be->free(be, d_t);

    float mx = 0;
    for (int i = 0; i < N * Vp; i++) mx = fmaxf(mx, fabsf(ce[i]));
    size_t w;
    double e = test_max_err_ratio(dl, ce, N * Vp, 1e-6 * mx, 1e-5, &w);
    CHECK(e <= 1.0, "grpo at rho 1 vs CE classifier: err ratio %.3g at %zu (%g vs %g)", e, w, dl[w], ce[w]);
    printf("grpo at rho = 1 vs CE classifier with weights A*w: err ratio %.3g\n", e);
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        CHECK(lp2[n] == lp[n], "lp_new changed between identical calls, row %d", n);
        CHECK_NEAR(lp[n], -ce_loss[n], 2e-6 * (1 + fabs(ce_loss[n])), "lp_new vs -CE loss, row %d", n);
        CHECK_NEAR(loss[n], -adv[n], 1e-6, "loss_tok at rho 1 is -A, row %d", n);
        CHECK(clip[n] == 0.0f, "nothing is clipped at rho 1, row %d", n);
    }
}

/* ---- golden values of tests/ref/rl_ref.py ---- */
typedef struct {
    int P, G, C, topk_k, random_k, N, V, Vp;
    uint64_t seed;
    float eps, inv_temp, eps_low, eps_high, beta;
    float *rewards, *emb, *div, *adv_group, *adv_batch, *adv_none, *adv_group_nodiv, *scores;
    int *chosen_best, *chosen_topk, *chosen_random;
    float *logits;
    int *targets;
    float *lp_old, *lp_ref, *adv, *weight, *lp_new, *loss, *clipped, *dlogits, *loss_noref, *dlogits_noref;
} golden;

static int read_into(FILE *f, void *dst, size_t count, size_t elem, const char *what) {
    if (fread(dst, elem, count, f) != count) {
        fprintf(stderr, "FAIL %s: file ends inside '%s'\n", fixture_path, what);
        return 1;
    }
    return 0;
}

static void golden_free(golden *g) {
    void *all[] = {g->rewards, g->emb, g->div, g->adv_group, g->adv_batch, g->adv_none,
                   g->adv_group_nodiv, g->scores, g->chosen_best, g->chosen_topk, g->chosen_random,
                   g->logits, g->targets, g->lp_old, g->lp_ref, g->adv, g->weight, g->lp_new,
                   g->loss, g->clipped, g->dlogits, g->loss_noref, g->dlogits_noref};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* Loads and validates the fixture; 0 on success, or 1 after a message naming the problem. */
static int golden_load(golden *g) {
    FILE *f = fopen(fixture_path, "rb");
    if (!f) {
        fprintf(stderr, "FAIL: cannot open %s (make it with tests/ref/rl_ref.py)\n", fixture_path);
        return 1;
    }
    char magic[8];
    int32_t h[11];
    float hf[5];
    if (read_into(f, magic, 8, 1, "magic") || read_into(f, h, 11, 4, "header") ||
        read_into(f, hf, 5, 4, "header floats")) {
        fclose(f);
        return 1;
    }
    if (memcmp(magic, "EXRLRLGD", 8) != 0 || h[0] != FIXTURE_VERSION) {
        fprintf(stderr, "FAIL %s: not an RL golden file of version %d\n", fixture_path, FIXTURE_VERSION);
        fclose(f);
        return 1;
    }
    g->P = h[1], g->G = h[2], g->C = h[3], g->topk_k = h[4], g->random_k = h[5];
    g->seed = (uint64_t)(uint32_t)h[6] | (uint64_t)(uint32_t)h[7] << 32;
    g->N = h[8], g->V = h[9], g->Vp = h[10];
    g->eps = hf[0], g->inv_temp = hf[1], g->eps_low = hf[2], g->eps_high = hf[3], g->beta = hf[4];
    if (g->P < 1 || g->P > 1024 || g->G < 1 || g->G > 1024 || g->C < 1 || g->C > 4096 ||
        g->topk_k < 0 || g->random_k < 0 || g->N < 1 || g->N > 4096 || g->V < 1 || g->Vp < g->V ||
        g->Vp > 65536) {
        fprintf(stderr, "FAIL %s: sizes out of range in the header\n", fixture_path);
        fclose(f);
        return 1;
    }
    const size_t PG = (size_t)g->P * g->G, NV = (size_t)g->N * g->Vp, N = g->N;
    const size_t words = PG * (9 + (size_t)g->C) + g->P + 3 * NV + 9 * N;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (size < 0 || (size_t)size != 72 + 4 * words) {
        fprintf(stderr, "FAIL %s: %ld bytes, the header implies %zu\n", fixture_path, size, 72 + 4 * words);
        fclose(f);
        return 1;
    }
    fseek(f, 72, SEEK_SET);
    struct { void **dst; size_t count; const char *name; } fields[] = {
        {(void **)&g->rewards, PG, "rewards"}, {(void **)&g->emb, PG * g->C, "emb"},
        {(void **)&g->div, PG, "div"}, {(void **)&g->adv_group, PG, "adv_group"},
        {(void **)&g->adv_batch, PG, "adv_batch"}, {(void **)&g->adv_none, PG, "adv_none"},
        {(void **)&g->adv_group_nodiv, PG, "adv_group_nodiv"}, {(void **)&g->scores, g->P, "scores"},
        {(void **)&g->chosen_best, PG, "chosen_best"}, {(void **)&g->chosen_topk, PG, "chosen_topk"},
        {(void **)&g->chosen_random, PG, "chosen_random"}, {(void **)&g->logits, NV, "logits"},
        {(void **)&g->targets, N, "targets"}, {(void **)&g->lp_old, N, "lp_old"},
        {(void **)&g->lp_ref, N, "lp_ref"}, {(void **)&g->adv, N, "adv"},
        {(void **)&g->weight, N, "weight"}, {(void **)&g->lp_new, N, "lp_new"},
        {(void **)&g->loss, N, "loss"}, {(void **)&g->clipped, N, "clipped"},
        {(void **)&g->dlogits, NV, "dlogits"}, {(void **)&g->loss_noref, N, "loss_noref"},
        {(void **)&g->dlogits_noref, NV, "dlogits_noref"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        *fields[i].dst = malloc(4 * fields[i].count);
        if (!*fields[i].dst || read_into(f, *fields[i].dst, fields[i].count, 4, fields[i].name)) {
            fclose(f);
            return 1;
        }
    }
    fclose(f);
    for (size_t n = 0; n < N; n++)
        if (g->targets[n] >= g->V) {
            fprintf(stderr, "FAIL %s: target %zu out of range\n", fixture_path, n);
            return 1;
        }
    return 0;
}

/* Compares n values; prints and returns the worst error ratio and max abs error. */
static void compare(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
    size_t w;
    double e = test_max_err_ratio(got, want, n, atol, rtol, &w), mabs = 0;
    for (size_t i = 0; i < n; i++) mabs = fmax(mabs, fabs((double)got[i] - want[i]));
    CHECK(e <= 1.0, "golden %s: err ratio %.3g at %zu (got %.9g want %.9g)", what, e, w, got[w], want[w]);
    printf("golden %-16s max abs err %.3g, err ratio %.3g\n", what, mabs, e);
}

static void test_golden(void) {
    golden g = {0};
    if (golden_load(&g)) {
        CHECK(0, "golden fixture unreadable");
        golden_free(&g);
        return;
    }
    const int P = g.P, G = g.G, PG = P * G;
    float *out = malloc(sizeof(float) * PG), *scores = malloc(sizeof(float) * P);
    int *chosen = malloc(sizeof(int) * PG);
    run_diversity(out, g.emb, P, G, g.C);
    compare("div", out, g.div, PG, GROUP_ATOL, GROUP_RTOL);
    const struct { int mode; const float *div, *want; const char *name; } adv_cases[] = {
        {EXITRL_SCALE_GROUP, g.div, g.adv_group, "adv_group"},
        {EXITRL_SCALE_BATCH, g.div, g.adv_batch, "adv_batch"},
        {EXITRL_SCALE_NONE, g.div, g.adv_none, "adv_none"},
        {EXITRL_SCALE_GROUP, NULL, g.adv_group_nodiv, "adv_group_nodiv"}};
    for (int i = 0; i < 4; i++) {
        run_advantage(out, g.rewards, adv_cases[i].div, P, G, adv_cases[i].mode, g.eps);
        compare(adv_cases[i].name, out, adv_cases[i].want, PG, GROUP_ATOL, GROUP_RTOL);
    }
    const struct { int mode, k; const int *want; const char *name; } sel[] = {
        {EXITRL_SELECT_BEST, 1, g.chosen_best, "BEST"},
        {EXITRL_SELECT_TOPK, g.topk_k, g.chosen_topk, "TOPK"},
        {EXITRL_SELECT_RANDOM, g.random_k, g.chosen_random, "RANDOM"}};
    for (int i = 0; i < 3; i++) {
        run_scores(scores, chosen, g.rewards, P, G, sel[i].mode, sel[i].k, g.seed);
        int diff = 0;
        for (int j = 0; j < PG; j++) diff += chosen[j] != sel[i].want[j];
        CHECK(diff == 0, "golden chosen %s: %d of %d differ", sel[i].name, diff, PG);
    }
    compare("scores", scores, g.scores, P, GROUP_ATOL, GROUP_RTOL);

    const size_t NV = (size_t)g.N * g.Vp;
    float *dl = malloc(sizeof(float) * NV), *lp = malloc(sizeof(float) * g.N);
    float *loss = malloc(sizeof(float) * g.N), *clip = malloc(sizeof(float) * g.N);
    grpo_case c = {g.N, g.V, g.Vp, g.logits, g.targets, g.lp_old, g.lp_ref, g.adv, g.weight,
                   g.inv_temp, g.eps_low, g.eps_high, g.beta};
    float mx = 0;
    run_grpo(&c, dl, lp, loss, clip);
    compare("lp_new", lp, g.lp_new, g.N, ROW_ATOL, ROW_RTOL);
    compare("loss", loss, g.loss, g.N, ROW_ATOL, ROW_RTOL);
    CHECK(memcmp(clip, g.clipped, sizeof(float) * g.N) == 0, "golden clipped flags differ");
    for (size_t i = 0; i < NV; i++) mx = fmaxf(mx, fabsf(g.dlogits[i]));
    compare("dlogits", dl, g.dlogits, NV, DLOGIT_ATOL_FRAC * mx, DLOGIT_RTOL);
    c.lp_ref = NULL;
    run_grpo(&c, dl, lp, loss, clip);
    compare("loss_noref", loss, g.loss_noref, g.N, ROW_ATOL, ROW_RTOL);
    mx = 0;
    for (size_t i = 0; i < NV; i++) mx = fmaxf(mx, fabsf(g.dlogits_noref[i]));
    compare("dlogits_noref", dl, g.dlogits_noref, NV, DLOGIT_ATOL_FRAC * mx, DLOGIT_RTOL);

    free(out), free(scores), free(chosen), free(dl), free(lp), free(loss), free(clip);
    golden_free(&g);
}

int main(int argc, char **argv) {
    if (argc > 1) fixture_path = argv[1];
    be = test_cpu_backend();
    test_advantage_hand();
    test_diversity_hand();
    test_scores_hand();
    test_selection_hand();
    test_random_selection();
    test_grpo_finite_differences();
    test_grpo_vs_classifier();
    test_golden();
    be->destroy(be);
    return test_finish("test_rl_ops");
}
