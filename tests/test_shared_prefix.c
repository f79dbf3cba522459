/* Shared prefixes (docs/DESIGN.md §2, "rollout" and "update"): a GRPO group's G sequences share one
 * prompt. With share_prefix on, the rollout prefills it once and copies its KV rows to the G slots;
 * the results must equal the unshared path's for the same seed: the same tokens, and log-probs and
 * embeddings within float rounding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/rollout.h"
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

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_model m;
    CHECK(gpt_create(&m, be, &CFG, 8, 96) == 0, "create");
    gpt_init_random(&m, 11);
    test_rollout_shared(&m);
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_shared_prefix");
}
