/* The rollout engine on CUDA against the CPU reference, and the CUDA decode step replayed from a
 * graph against the same step run op by op.
 *
 * A tiny GPT (sharpened output embedding, so argmax and top-k/top-p have something to choose)
 * generates for 37 prompts of lengths 1..30 in chunks of 16, greedy and sampled (temperature 0.8,
 * top-k 40, top-p 0.95, one seed). CPU and CUDA draw the same Philox numbers, so the tokens agree
 * up to ties: where a sequence first differs, the two chosen tokens must be about equally likely
 * (their recorded log-probs within the tie tolerance), and before that the recorded log-probs must
 * agree. fp32 mode: log-probs within 2e-4 nats, at most 2 of 37 sequences may differ (only at
 * ties); bf16: log-probs within 0.08 nats before a difference, ties within 0.25 nats (bf16
 * activations move logits by ~1e-2), at least half of the sequences identical.
 * Graphs: the same generation on a backend created with EXITRL_CUDA_NO_GRAPHS=1 must give
 * bit-identical tokens, log-probs and embeddings (the same kernels on the same inputs), and the
 * graph backend must actually have captured its decode step.
 * Skips (exit 77) when no GPU is present. */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout.h"
#include "test_util.h"
#include "tokenizer.h"

#define NSEQ 37
#define PMAX 30
#define NEW 40
#define CHUNK 16
#define SEQ_LEN (PMAX + NEW)

static const gpt_config CFG = {2, 4, 64, 96, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

typedef struct {
    gpt_model m;
    rollout_engine r;
    rollout_output out;
} gen_ctx;

static int gen_open(gen_ctx *g, exitrl_backend *be, const float *weights) {
    memset(g, 0, sizeof *g);
    if (gpt_create(&g->m, be, &CFG, CHUNK, SEQ_LEN)) return -1;
    gpt_load_params(&g->m, weights);
    if (rollout_create(&g->r, &g->m, CHUNK, SEQ_LEN)) return -1;
    return rollout_output_alloc(&g->out, NSEQ, SEQ_LEN, CFG.d_model);
}

static void gen_close(gen_ctx *g) {
    rollout_output_free(&g->out);
    rollout_destroy(&g->r);
    gpt_destroy(&g->m);
}

static int generate(gen_ctx *g, const int *prompts, const int *lens, const struct exitrl_sampling *sp) {
    char err[256];
    if (rollout_generate(&g->r, prompts, lens, PMAX, NSEQ, NEW, sp, 0, &g->out, err, sizeof err)) {
        fprintf(stderr, "rollout_generate: %s\n", err);
        return -1;
    }
    return 0;
}

/* Compares a CUDA generation with the CPU one, sequence by sequence, up to ties. */
static void compare_with_cpu(const rollout_output *cpu, const rollout_output *gpu, const char *what, double lp_tol,
                             double tie_tol, int max_differing) {
    int differing = 0;
    double worst_lp = 0.0;
    for (int b = 0; b < NSEQ; b++) {
        const int len = cpu->prompt_len[b], S = cpu->S;
        const int *tc = cpu->tokens + (size_t)b * S, *tg = gpu->tokens + (size_t)b * S;
        const float *lc = cpu->logprobs + (size_t)b * S, *lg = gpu->logprobs + (size_t)b * S;
        int n = cpu->gen_len[b] > gpu->gen_len[b] ? cpu->gen_len[b] : gpu->gen_len[b];
        for (int t = len; t < len + n; t++) {
            if (tc[t] != tg[t]) {
                differing++;
                CHECK(fabs(lc[t] - lg[t]) <= tie_tol,
                      "%s: sequence %d position %d: cpu token %d (log-prob %.5f), cuda %d (%.5f): not a tie", what, b,
                      t, tc[t], lc[t], tg[t], lg[t]);
                break;
            }
            worst_lp = fmax(worst_lp, fabs(lc[t] - lg[t]));
            CHECK(fabs(lc[t] - lg[t]) <= lp_tol, "%s: sequence %d position %d token %d: log-prob cuda %.6f cpu %.6f",
                  what, b, t, tc[t], lg[t], lc[t]);
        }
    }
    printf("  %-22s %d of %d sequences differ (at ties), worst log-prob gap before that %.2e\n", what, differing,
           NSEQ, worst_lp);
    CHECK(differing <= max_differing, "%s: %d of %d sequences differ from the CPU (at most %d allowed)", what,
          differing, NSEQ, max_differing);
}

static void expect_identical(const rollout_output *a, const rollout_output *b, const char *what) {
    size_t n = (size_t)NSEQ * a->S;
    CHECK(memcmp(a->tokens, b->tokens, n * sizeof(int)) == 0, "%s: tokens differ", what);
    CHECK(memcmp(a->logprobs, b->logprobs, n * sizeof(float)) == 0, "%s: log-probs differ", what);
    CHECK(memcmp(a->gen_len, b->gen_len, NSEQ * sizeof(int)) == 0, "%s: lengths differ", what);
    CHECK(memcmp(a->embed, b->embed, (size_t)NSEQ * a->C * sizeof(float)) == 0, "%s: embeddings differ", what);
}

int main(void) {
    if (!exitrl_cuda_available()) {
        printf("SKIP: no GPU\n");
        return TEST_SKIP;
    }
    exitrl_backend *cpu = exitrl_backend_cpu_create();
    gen_ctx gc;
    if (gpt_create(&gc.m, cpu, &CFG, CHUNK, SEQ_LEN)) return 1;
    gpt_init_random(&gc.m, 3);
    float *w = malloc(sizeof(float) * gc.m.num_params);
    cpu->download(cpu, w, gc.m.master, sizeof(float) * gc.m.num_params);
    for (size_t i = 0; i < gc.m.param_sizes[P_WTE]; i++) w[gc.m.param_offsets[P_WTE] + i] *= 4.0f;
    gpt_destroy(&gc.m);
    CHECK(gen_open(&gc, cpu, w) == 0, "cpu generator");

    int prompts[NSEQ * PMAX], lens[NSEQ];
    for (int b = 0; b < NSEQ; b++) {
        lens[b] = 1 + (b * 13) % PMAX;
        prompts[b * PMAX] = TOK_BOS;
        for (int t = 1; t < PMAX; t++) prompts[b * PMAX + t] = (b * 7919 + t * 104729) % 256;
    }
    const struct exitrl_sampling greedy = {1.0f, 0, 1.0f, 1, TOK_EOS, 5};
    const struct exitrl_sampling sampled = {0.8f, 40, 0.95f, 0, TOK_EOS, 11};
    const struct exitrl_sampling *modes[2] = {&greedy, &sampled};
    const char *mode_names[2] = {"greedy", "sampled"};
    rollout_output cpu_out[2];
    for (int k = 0; k < 2; k++) {
        CHECK(generate(&gc, prompts, lens, modes[k]) == 0, "cpu %s generation", mode_names[k]);
        CHECK(rollout_output_alloc(&cpu_out[k], NSEQ, SEQ_LEN, CFG.d_model) == 0, "alloc");
        memcpy(cpu_out[k].tokens, gc.out.tokens, sizeof(int) * NSEQ * SEQ_LEN);
        memcpy(cpu_out[k].logprobs, gc.out.logprobs, sizeof(float) * NSEQ * SEQ_LEN);
        memcpy(cpu_out[k].prompt_len, gc.out.prompt_len, sizeof(int) * NSEQ);
        memcpy(cpu_out[k].gen_len, gc.out.gen_len, sizeof(int) * NSEQ);
    }

    for (int bf16 = 0; bf16 <= 1; bf16++) {
        const char *dtype = bf16 ? "bf16" : "fp32";
        char why[256], what[64];
        exitrl_backend *gpu = exitrl_backend_cuda_create(0, !bf16, why, sizeof why);
        setenv("EXITRL_CUDA_NO_GRAPHS", "1", 1);
        exitrl_backend *plain = exitrl_backend_cuda_create(0, !bf16, why, sizeof why);
        unsetenv("EXITRL_CUDA_NO_GRAPHS");
        CHECK(gpu && plain, "cuda backend (%s): %s", dtype, why);
        if (!gpu || !plain) continue;
        gen_ctx gg, gp;
        CHECK(gen_open(&gg, gpu, w) == 0 && gen_open(&gp, plain, w) == 0, "cuda generators (%s)", dtype);
        for (int k = 0; k < 2; k++) {
            snprintf(what, sizeof what, "%s %s", dtype, mode_names[k]);
            if (generate(&gg, prompts, lens, modes[k]) || generate(&gp, prompts, lens, modes[k])) {
                CHECK(0, "%s: cuda generation failed", what);
                continue;
            }
            compare_with_cpu(&cpu_out[k], &gg.out, what, bf16 ? 0.08 : 2e-4, bf16 ? 0.25 : 2e-4,
                             bf16 ? NSEQ / 2 : 2);
            CHECK(gg.r.decode_graph != NULL, "%s: the decode step was not captured in a CUDA graph", what);
            CHECK(gp.r.decode_graph == NULL, "%s: EXITRL_CUDA_NO_GRAPHS=1 still captured a graph", what);
            snprintf(what, sizeof what, "%s %s graph vs op by op", dtype, mode_names[k]);
            expect_identical(&gg.out, &gp.out, what);
        }
        gen_close(&gg);
        gen_close(&gp);
        gpu->destroy(gpu);
        plain->destroy(plain);
    }
    rollout_output_free(&cpu_out[0]);
    rollout_output_free(&cpu_out[1]);
    gen_close(&gc);
    free(w);
    cpu->destroy(cpu);
    return test_finish("test_gpu_rollout");
}
