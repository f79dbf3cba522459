/* Shared prefixes (docs/DESIGN.md §2, "rollout" and "update"): a GRPO group's G sequences share one
 * prompt. With share_prefix on, the rollout prefills it once and copies its KV rows to the G slots,
 * and the GRPO update runs each prompt once in a packed row with its completions (§5.6). Both must
 * equal the unshared path for the same inputs: the same tokens, and log-probs, embeddings, losses,
 * KL, clip fraction, gradient norm, every parameter's gradient and the weights after the step
 * within the stated float tolerances (the sums run in another order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/grpo.h"
#include "rl/rollout.h"
#include "rl/trainer.h"
#include "run/config.h"
#include "run/setup.h"
#include "test_util.h"

static gpt_config CFG = {2, 4, 64, 96, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

/* Rollout tolerances: the shared path runs the same ops on the same rows; only the prefill
 * matmuls see fewer rows, which a BLAS may sum in another order. */
#define RO_LP_TOL 1e-5
#define RO_EMB_TOL 1e-5

/* P groups of G copies of P different prompts (lengths 1..), stride S_P. */
enum { P = 5, G = 4, N = P * G, S_P = 40, NEW = 24 };
static void make_groups(int *prompts, int *lens) {
    static const int plen[P] = {1, 17, 33, 8, 25};
    for (int p = 0; p < P; p++)
        for (int j = 0; j < G; j++) {
            int i = p * G + j;
            lens[i] = plen[p];
            for (int t = 0; t < S_P; t++) prompts[i * S_P + t] = t == 0 ? TOK_BOS : (p * 131 + t * 7919) % 256;
        }
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

static void test_rollout_shared(gpt_model *m) {
    int prompts[N * S_P], lens[N];
    make_groups(prompts, lens);
    rollout_output shared, alone;
    const int S = S_P + NEW;
    CHECK(rollout_output_alloc(&shared, N, S, CFG.d_model) == 0 && rollout_output_alloc(&alone, N, S, CFG.d_model) == 0,
          "alloc");
    const struct exitrl_sampling sp = {1.0f, 0, 1.0f, 0, TOK_EOS, 77};
    char err[256];
    /* Chunks of 7 sequences: groups straddle chunk boundaries. */
    const int chunks[] = {N, 7};
    for (int k = 0; k < 2; k++) {
        rollout_engine r;
        CHECK(rollout_create(&r, m, chunks[k], S) == 0, "rollout create");
        r.share_prefix = 1;
        CHECK(rollout_generate(&r, prompts, lens, S_P, N, NEW, &sp, 0, &shared, err, sizeof err) == 0, "%s", err);
        r.share_prefix = 0;
        CHECK(rollout_generate(&r, prompts, lens, S_P, N, NEW, &sp, 0, &alone, err, sizeof err) == 0, "%s", err);
        rollout_destroy(&r);
        CHECK(memcmp(shared.tokens, alone.tokens, sizeof(int) * N * S) == 0, "chunk %d: shared prefill changed the tokens",
              chunks[k]);
        CHECK(!memcmp(shared.gen_len, alone.gen_len, sizeof(int) * N) && !memcmp(shared.hit_eos, alone.hit_eos, sizeof(int) * N),
              "chunk %d: lengths differ", chunks[k]);
        double lp = max_abs_diff(shared.logprobs, alone.logprobs, (size_t)N * S);
        double emb = max_abs_diff(shared.embed, alone.embed, (size_t)N * CFG.d_model);
        printf("rollout, chunk %d: max |log-prob diff| %.3g, max |embedding diff| %.3g\n", chunks[k], lp, emb);
        CHECK(lp <= RO_LP_TOL, "chunk %d: log-probs differ by %.3g (tolerance %g)", chunks[k], lp, RO_LP_TOL);
        CHECK(emb <= RO_EMB_TOL, "chunk %d: embeddings differ by %.3g (tolerance %g)", chunks[k], emb, RO_EMB_TOL);
        /* The group's members sampled different continuations: sharing did not copy tokens across. */
        int differ = 0;
        for (int p = 0; p < P; p++) differ += memcmp(shared.tokens + (size_t)p * G * S, shared.tokens + (size_t)(p * G + 1) * S,
                                                    sizeof(int) * S) != 0;
        CHECK(differ >= P - 1, "only %d of %d groups sampled different completions", differ, P);
    }
    rollout_output_free(&shared);
    rollout_output_free(&alone);
}

/* The CPU packed attention against the causal op on the rows it stands for: a packed sequence of a
 * prefix and two segments [P A B] equals the causal sequences [P A] and [P B] (outputs, lse), and
 * its backward gives the segments' gradients of those rows and the prefix the sum of both. */
#define OP_TOL 1e-5
static void test_packed_attention_op(exitrl_backend *be) {
    enum { C = 64, NH = 4, LP = 7, LA = 5, LB = 9, T = LP + LA + LB, T1 = LP + LA, T2 = LP + LB };
    unsigned long long seed = 5;
    float qkv[T * 3 * C], out[T * C], lse[NH * T], dout[T * C], dqkv[T * 3 * C];
    float q1[T1 * 3 * C], q2[T2 * 3 * C], o1[T1 * C], o2[T2 * C], l1[NH * T1], l2[NH * T2];
    float do1[T1 * C], do2[T2 * C], d1[T1 * 3 * C], d2[T2 * 3 * C];
    for (int i = 0; i < T * 3 * C; i++) qkv[i] = test_randf(&seed, 1.5f);
    for (int i = 0; i < T * C; i++) dout[i] = test_randf(&seed, 1.0f);
    int prefix_len = LP, seg_start[T];
    for (int t = 0; t < T; t++) seg_start[t] = t < LP ? 0 : t < LP + LA ? LP : LP + LA;
    /* the separate rows: [P A] and [P B]; the prefix's output gradient goes to the first only */
    memcpy(q1, qkv, sizeof(float) * T1 * 3 * C);
    memcpy(q2, qkv, sizeof(float) * LP * 3 * C);
    memcpy(q2 + LP * 3 * C, qkv + T1 * 3 * C, sizeof(float) * LB * 3 * C);
    memcpy(do1, dout, sizeof(float) * T1 * C);
    memset(do2, 0, sizeof(float) * LP * C);
    memcpy(do2 + LP * C, dout + T1 * C, sizeof(float) * LB * C);
    be->attention_forward_packed(be, out, lse, qkv, &prefix_len, seg_start, 1, T, C, NH);
    be->attention_forward(be, o1, l1, q1, 1, T1, C, NH);
    be->attention_forward(be, o2, l2, q2, 1, T2, C, NH);
    be->attention_backward_packed(be, dqkv, dout, qkv, out, lse, &prefix_len, seg_start, 1, T, C, NH);
    be->attention_backward(be, d1, do1, q1, o1, l1, 1, T1, C, NH);
    be->attention_backward(be, d2, do2, q2, o2, l2, 1, T2, C, NH);
    double e_out = 0, e_lse = 0, e_d = 0;
    for (int t = 0; t < T; t++) {
        const int in_b = t >= T1, r = in_b ? t - LA : t; /* the row of [P A] or [P B] */
        const float *o = in_b ? o2 : o1, *l = in_b ? l2 : l1;
        for (int c = 0; c < C; c++) e_out = fmax(e_out, fabs(out[t * C + c] - o[r * C + c]));
        for (int h = 0; h < NH; h++) e_lse = fmax(e_lse, fabs(lse[h * T + t] - l[h * (in_b ? T2 : T1) + r]));
        for (int c = 0; c < 3 * C; c++) {
            double ref = t < LP ? (double)d1[t * 3 * C + c] + d2[t * 3 * C + c] : (in_b ? d2 : d1)[r * 3 * C + c];
            e_d = fmax(e_d, fabs(dqkv[t * 3 * C + c] - ref));
        }
    }
    printf("packed attention op: max |diff| out %.3g, lse %.3g, dqkv %.3g\n", e_out, e_lse, e_d);
    CHECK(e_out <= OP_TOL && e_lse <= OP_TOL && e_d <= OP_TOL, "packed attention differs from the causal rows (tolerance %g)",
          OP_TOL);
}

/* GRPO update tolerances: gradients relative to each tensor's largest magnitude, statistics relative
 * to the value (the figures measured are printed: about 1e-6 and 1e-7). With several minibatches
 * the last step's gradient is taken at weights that earlier AdamW steps moved apart (Adam's first
 * steps turn rounding-sized gradients into lr-sized moves), hence the looser bound there. The
 * weights after a step are not compared for the same reason. */
#define UPD_GRAD_TOL 1e-5
#define UPD_GRAD_TOL_LATER_STEP 2e-4
#define UPD_STAT_TOL 1e-5

static const char *const TENSOR_NAMES[GPT_NUM_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

/* max |a - b| over a tensor, relative to max |b| (or absolute when b is all zero). */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mag = fmax(mag, fabs((double)b[i]));
    }
    return mag > 0 ? d / mag : d;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

/* One grpo_update on a fresh copy of the weights w (reference ref_w), shared or not; returns the
 * last step's gradients (a host copy) and the statistics. */
static void run_update(exitrl_backend *be, const float *w, const float *ref_w, const rollout_output *ro, const float *adv,
                       grpo_options o, int share, int cap_B, int cap_T, float **grads, grpo_stats *st) {
    gpt_model m;
    CHECK(gpt_create(&m, be, &CFG, cap_B, cap_T) == 0, "create");
    gpt_load_params(&m, ref_w);
    grpo_reference ref;
    CHECK(grpo_reference_init(&ref, &m) == 0, "reference");
    gpt_load_params(&m, w);
    o.share_prefix = share;
    CHECK(grpo_update(&m, &ref, ro, N, adv, &o, st) == 0, "grpo_update (share %d)", share);
    CHECK(!m.packed, "grpo_update left the model in packed mode");
    *grads = dev_read(be, m.grads, sizeof(float) * m.num_params);
    grpo_reference_free(&ref, &m);
    gpt_destroy(&m);
}

/* Rollouts of the groups under the weights `gen` (so the policy that updates, w, sees ratios away
 * from 1 and clips some), advantages of either sign, KL to a reference; the update under several
 * aggregations, minibatch splits (groups straddle them) and capacities (micro-batches, groups split
 * over packed rows). */
static void test_update_shared(gpt_model *gen) {
    exitrl_backend *be = gen->backend;
    int prompts[N * S_P], lens[N];
    make_groups(prompts, lens);
    rollout_output ro;
    const int S = S_P + NEW;
    CHECK(rollout_output_alloc(&ro, N, S, CFG.d_model) == 0, "alloc");
    rollout_engine r;
    CHECK(rollout_create(&r, gen, N, S) == 0, "rollout create");
    const struct exitrl_sampling sp = {1.0f, 0, 1.0f, 0, TOK_EOS, 5};
    char err[256];
    CHECK(rollout_generate(&r, prompts, lens, S_P, N, NEW, &sp, 0, &ro, err, sizeof err) == 0, "%s", err);
    rollout_destroy(&r);

    float *ref_w = dev_read(be, gen->master, sizeof(float) * gen->num_params);
    float *w = malloc(sizeof(float) * gen->num_params);
    unsigned long long seed = 99;
    for (size_t i = 0; i < gen->num_params; i++) w[i] = ref_w[i] + test_randf(&seed, 0.02f);
    for (size_t i = (size_t)CFG.vocab * CFG.d_model; i < (size_t)CFG.vocab_padded * CFG.d_model; i++) w[i] = 0.0f;
    float adv[N];
    for (int i = 0; i < N; i++) adv[i] = test_randf(&seed, 1.5f);

    const struct {
        int agg, minibatches, cap_B, cap_T;
    } cases[] = {
        {GRPO_AGG_GRPO, 1, 8, 96},  /* one minibatch, packed rows in one or two micro-batches */
        {GRPO_AGG_DAPO, 3, 8, 96},  /* groups straddle minibatches */
        {GRPO_AGG_DR_GRPO, 1, 1, 96}, /* capacity of one plain row: groups split over packed rows */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        grpo_options o = {cases[c].agg, 1, cases[c].minibatches, NEW, {1.0f, 0.1f, 0.1f, 0.05f},
                          {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f}, GRPO_FAULT_NONE, 0, 0, 0};
        float *g1, *g0;
        grpo_stats s1, s0;
        run_update(be, w, ref_w, &ro, adv, o, 1, cases[c].cap_B, cases[c].cap_T, &g1, &s1);
        run_update(be, w, ref_w, &ro, adv, o, 0, cases[c].cap_B, cases[c].cap_T, &g0, &s0);
        const double tol = cases[c].minibatches > 1 ? UPD_GRAD_TOL_LATER_STEP : UPD_GRAD_TOL;
        printf("update case %zu: rows of %ld tokens shared, %ld unshared\n", c, s1.row_tokens, s0.row_tokens);
        CHECK(s1.row_tokens < s0.row_tokens,
              "case %zu: the shared update ran over %ld tokens, the unshared over %ld", c, s1.row_tokens, s0.row_tokens);
        printf("update case %zu: loss %.6g / %.6g, kl %.6g / %.6g, clip %.4g / %.4g, norm %.6g / %.6g\n", c, s1.loss,
               s0.loss, s1.kl, s0.kl, s1.clip_frac, s0.clip_frac, s1.grad_norm, s0.grad_norm);
        CHECK(s0.clip_frac > 0 && s0.kl > 0, "case %zu: the inputs exercise neither clipping nor KL", c);
        CHECK(s1.tokens == s0.tokens && s1.steps == s0.steps && s1.skipped == 0 && s0.skipped == 0,
              "case %zu: tokens %ld / %ld, steps %d / %d, skipped %d / %d", c, s1.tokens, s0.tokens, s1.steps, s0.steps,
              s1.skipped, s0.skipped);
        CHECK(rel(s1.loss, s0.loss) <= UPD_STAT_TOL && rel(s1.kl, s0.kl) <= UPD_STAT_TOL &&
              rel(s1.grad_norm, s0.grad_norm) <= UPD_STAT_TOL && fabs(s1.clip_frac - s0.clip_frac) <= 1e-6,
              "case %zu: statistics differ beyond %g", c, UPD_STAT_TOL);
        double worst = 0;
        for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++) {
            size_t off = gen->param_offsets[t], n = gen->param_sizes[t];
            double d = rel_diff(g1 + off, g0 + off, n);
            worst = fmax(worst, d);
            CHECK(d <= tol, "case %zu: gradient of %s differs by %.3g relative (tolerance %g)", c, TENSOR_NAMES[t], d, tol);
        }
        printf("update case %zu: worst relative gradient difference %.3g (tolerance %g), loss %.3g, kl %.3g, norm %.3g\n",
               c, worst, tol, rel(s1.loss, s0.loss), rel(s1.kl, s0.kl), rel(s1.grad_norm, s0.grad_norm));
        free(g1), free(g0);
    }
    free(ref_w);
    free(w);
    rollout_output_free(&ro);
}

/* Whole iterations of every method (knapsack with feedback, so improve and diverge prompts carry
 * an attempt and its verdict): with share_prefix 1 and 0 from the same weights, the written
 * metrics must agree: the rollout's (tokens, rewards, buffer) exactly, the update's within
 * UPD_STAT_TOL in the first iteration. The second iteration (replaying the buffer where the method
 * does) starts from weights that the first AdamW step moved apart where a gradient was at the
 * rounding floor (the first step moves every weight by about lr whatever its gradient's size), so
 * its update is compared within ITER2_STAT_TOL (measured: up to 4.3e-4). */
#define ITER2_STAT_TOL 2e-3
static void test_iterations_shared(exitrl_backend *be) {
    static const char *const methods[] = {"grpo", "curriculum", "improve", "diverge", "exit"};
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
        rl_iter_stats st[2][2];
        for (int share = 0; share <= 1; share++) {
            exitrl_config cfg;
            config_defaults(&cfg);
            const char *kv[][2] = {{"model", "tiny"}, {"n_layer", "2"}, {"d_model", "64"}, {"max_seq", "128"},
                                   {"task", "knapsack"}, {"feedback", "1"}, {"method", methods[k]},
                                   {"prompts", "4"}, {"group_size", "4"}, {"max_new_tokens", "12"},
                                   {"buffer_min", "4"}, {"p_replay", "1"}, {"p_diverge", "0.5"},
                                   {"share_prefix", share ? "1" : "0"}};
            for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
                CHECK(config_set(&cfg, kv[i][0], kv[i][1], "test") == 0, "config %s", kv[i][0]);
            gpt_config mc;
            CHECK(setup_model_config(&cfg, &mc) == 0, "model config");
            int rows, T;
            rl_model_capacity(&cfg, mc.max_seq, &rows, &T);
            gpt_model m;
            CHECK(gpt_create(&m, be, &mc, rows, T) == 0, "create");
            gpt_init_random(&m, 4);
            rl_trainer t;
            CHECK(rl_trainer_init(&t, &cfg, &m) == 0, "trainer");
            for (int it = 0; it < 2; it++) CHECK(rl_iteration(&t, (uint64_t)it, &st[share][it]) == 0, "iteration");
            rl_trainer_free(&t);
            gpt_destroy(&m);
        }
        for (int it = 0; it < 2; it++) {
            const rl_iter_stats *a = &st[1][it], *b = &st[0][it];
            CHECK(a->gen_tokens == b->gen_tokens && a->reward_mean == b->reward_mean && a->quality_mean == b->quality_mean &&
                      a->score_mean == b->score_mean && a->replay_share == b->replay_share &&
                      a->diverge_share == b->diverge_share && a->mean_step == b->mean_step && a->inserted == b->inserted &&
                      a->rejected == b->rejected,
                  "%s iteration %d: the rollout's metrics differ with shared prefixes", methods[k], it + 1);
            const grpo_stats *u = &a->update, *v = &b->update;
            printf("%s iteration %d: replay %.2f diverge %.2f; update loss %.3g kl %.3g norm %.3g relative, "
                   "%ld / %ld update tokens\n", methods[k], it + 1, b->replay_share, b->diverge_share, rel(u->loss, v->loss),
                   rel(u->kl, v->kl), rel(u->grad_norm, v->grad_norm), u->row_tokens, v->row_tokens);
            const double tol = it == 0 ? UPD_STAT_TOL : ITER2_STAT_TOL;
            CHECK(rel(u->loss, v->loss) <= tol && rel(u->kl, v->kl) <= tol && rel(u->grad_norm, v->grad_norm) <= tol &&
                      fabs(u->clip_frac - v->clip_frac) <= 0.01 && u->tokens == v->tokens && u->skipped == 0 &&
                      v->skipped == 0,
                  "%s iteration %d: the update's metrics differ beyond %g", methods[k], it + 1, tol);
            CHECK(u->row_tokens < v->row_tokens, "%s iteration %d: the shared update ran over %ld tokens, unshared %ld",
                  methods[k], it + 1, u->row_tokens, v->row_tokens);
        }
    }
}

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_model m;
    CHECK(gpt_create(&m, be, &CFG, 8, 96) == 0, "create");
    gpt_init_random(&m, 11);
    test_packed_attention_op(be);
    test_rollout_shared(&m);
    test_update_shared(&m);
    test_iterations_shared(be);
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_shared_prefix");
}
