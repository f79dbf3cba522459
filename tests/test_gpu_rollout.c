/* The rollout engine on CUDA against the CPU reference, and the CUDA decode step replayed from a
 * graph against the same step run op by op.
 *
 * A tiny GPT (sharpened output embedding, so argmax and top-k/top-p have something to choose)
 * generates for 37 prompts of lengths 1..30 in chunks of 16, greedy and sampled (temperature 0.8,
 * top-k 40, top-p 0.95, one seed). CPU and CUDA draw the same Philox numbers, so the tokens agree
 * up to ties, and before a sequence's first difference the recorded log-probs must agree. A tie
 * is, greedy: the two chosen tokens about equally likely (recorded log-probs within the tie
 * tolerance); sampled: the draw u lies near a boundary of the CPU's cumulative distribution, so a
 * small change of the kept probabilities flips the pick (the kept mass between u and the nearest
 * edge of the CUDA pick, recomputed from a CPU forward over the common prefix, within the CDF
 * tolerance; the two picks need not be equally likely). fp32 mode: log-probs within 2e-4 nats,
 * greedy ties 2e-4, CDF 1e-3, at most 2 of 37 sequences may differ; bf16: log-probs within 0.08
 * nats before a difference, greedy ties 0.25 nats, CDF 0.03 (bf16 activations move logits by
 * ~1e-2), greedy: at least half of the sequences identical; sampled: any number may differ (in the
 * simulator 3 of 6 sequences flipped within 6 tokens, each needing a CDF shift <= 3.2e-3), each
 * difference being checked as a boundary flip.
 * Graphs: the same generation on a backend created with EXITRL_CUDA_NO_GRAPHS=1 must give
 * bit-identical tokens, log-probs and embeddings (the same kernels on the same inputs), and the
 * graph backend must actually have captured its decode step.
 * `--quick`: 6 prompts, 6 new tokens, chunks of 4 (for the slow CPU simulator in tools/cudasim).
 * Skips (exit 77) when no GPU is present. */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"
#include "rl/rollout.h"
#include "test_util.h"
#include "model/tokenizer.h"

#define NSEQ_MAX 37
#define PMAX 30
#define NEW_MAX 40
#define SEQ_LEN (PMAX + NEW_MAX)

/* The run's size: 37 prompts, 40 new tokens, chunks of 16; --quick shrinks it. */
static int nseq = NSEQ_MAX, n_new = NEW_MAX, chunk = 16;

static const gpt_config CFG = {2, 4, 64, 96, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

typedef struct {
    gpt_model m;
    rollout_engine r;
    rollout_output out;
} gen_ctx;

static int gen_open(gen_ctx *g, exitrl_backend *be, const float *weights) {
    memset(g, 0, sizeof *g);
    if (gpt_create(&g->m, be, &CFG, chunk, SEQ_LEN)) return -1;
    gpt_load_params(&g->m, weights);
    if (rollout_create(&g->r, &g->m, chunk, SEQ_LEN)) return -1;
    return rollout_output_alloc(&g->out, nseq, SEQ_LEN, CFG.d_model);
}

static void gen_close(gen_ctx *g) {
    rollout_output_free(&g->out);
    rollout_destroy(&g->r);
    gpt_destroy(&g->m);
}

static int generate(gen_ctx *g, const int *prompts, const int *lens, const struct exitrl_sampling *sp) {
    char err[256];
    if (rollout_generate(&g->r, prompts, lens, PMAX, nseq, n_new, sp, 0, &g->out, err, sizeof err)) {
        fprintf(stderr, "rollout_generate: %s\n", err);
        return -1;
    }
    return 0;
}

/* Sampled mode: sequence b's first difference is at position t (seq: the CPU's tokens), where CUDA
 * picked tok_gpu. Recomputes the CPU's distribution there (forward over the common prefix), applies
 * the sampling rules of ops.h and returns how much kept probability mass lies between the draw
 * u * kept_mass and the nearest edge of tok_gpu's interval of the CPU's cumulative sum (id order):
 * the shift of the cumulative distribution that the flip needs. -1 when tok_gpu is not kept. */
static double cdf_shift_for_flip(gen_ctx *cpu, const int *seq, int b, int t, int tok_gpu,
                                 const struct exitrl_sampling *sp) {
    const int V = CFG.vocab, Vp = CFG.vocab_padded;
    int *targets = malloc(sizeof(int) * t);
    float *logits = malloc(sizeof(float) * Vp), *p = malloc(sizeof(float) * V), *kept = calloc(V, sizeof(float));
    for (int i = 0; i < t; i++) targets[i] = -1;
    gpt_set_batch(&cpu->m, seq, targets, NULL, 1, t);
    gpt_forward(&cpu->m, 1, t);
    cpu->m.backend->download(cpu->m.backend, logits, (const float *)cpu->m.acts.logits + (size_t)(t - 1) * Vp,
                        sizeof(float) * Vp);
    double mx = -INFINITY, sum = 0.0, mass = 0.0;
    for (int v = 0; v < V; v++) mx = fmax(mx, logits[v] / sp->temperature);
    for (int v = 0; v < V; v++) sum += (p[v] = (float)exp(logits[v] / sp->temperature - mx));
    for (int v = 0; v < V; v++) p[v] /= sum;
    /* rank r: the r-th most likely token (ties: lower id); keep it while r < top_k and the mass
     * ranked before it < top_p */
    double before = 0.0;
    for (int r = 0; r < V && (sp->top_k <= 0 || r < sp->top_k) && before < sp->top_p; r++) {
        int best = -1;
        for (int v = 0; v < V; v++)
            if (kept[v] == 0.0f && (best < 0 || p[v] > p[best])) best = v;
        kept[best] = p[best];
        before += p[best];
        mass += p[best];
    }
    double target = philox_uniform(sp->seed, (uint32_t)b, (uint32_t)t) * mass;
    double lo = 0.0, hi = 0.0; /* tok_gpu's interval [lo, hi) of the cumulative kept mass */
    for (int v = 0; v <= tok_gpu; v++) {
        lo = hi;
        hi += kept[v];
    }
    double shift = kept[tok_gpu] == 0.0f ? -1.0 : target < lo ? lo - target : target >= hi ? target - hi : 0.0;
    free(targets), free(logits), free(p), free(kept);
    return shift;
}

/* Compares a CUDA generation with the CPU one, sequence by sequence, up to ties (see the top). */
static void compare_with_cpu(gen_ctx *cpu_gen, const rollout_output *cpu, const rollout_output *gpu,
                             const struct exitrl_sampling *sp, const char *what, double lp_tol, double tie_tol,
                             double cdf_tol, int max_differing) {
    int differing = 0;
    double worst_lp = 0.0, worst_shift = 0.0;
    for (int b = 0; b < nseq; b++) {
        const int len = cpu->prompt_len[b], S = cpu->S;
        const int *tc = cpu->tokens + (size_t)b * S, *tg = gpu->tokens + (size_t)b * S;
        const float *lc = cpu->logprobs + (size_t)b * S, *lg = gpu->logprobs + (size_t)b * S;
        int n = cpu->gen_len[b] > gpu->gen_len[b] ? cpu->gen_len[b] : gpu->gen_len[b];
        for (int t = len; t < len + n; t++) {
            if (tc[t] != tg[t]) {
                differing++;
                if (sp->greedy) {
                    CHECK(fabs(lc[t] - lg[t]) <= tie_tol,
                          "%s: sequence %d position %d: cpu token %d (log-prob %.5f), cuda %d (%.5f): not a tie", what,
                          b, t, tc[t], lc[t], tg[t], lg[t]);
                } else {
                    double shift = cdf_shift_for_flip(cpu_gen, tc, b, t, tg[t], sp);
                    worst_shift = fmax(worst_shift, shift);
                    CHECK(shift >= 0.0 && shift <= cdf_tol,
                          "%s: sequence %d position %d: cpu token %d, cuda %d: the flip needs the cumulative "
                          "distribution to move by %.5f (tolerance %g; -1: cuda's token is not kept)",
                          what, b, t, tc[t], tg[t], shift, cdf_tol);
                }
                break;
            }
            worst_lp = fmax(worst_lp, fabs(lc[t] - lg[t]));
            CHECK(fabs(lc[t] - lg[t]) <= lp_tol, "%s: sequence %d position %d token %d: log-prob cuda %.6f cpu %.6f",
                  what, b, t, tc[t], lg[t], lc[t]);
        }
    }
    printf("  %-22s %d of %d sequences differ (at ties), worst log-prob gap before that %.2e", what, differing, nseq,
           worst_lp);
    if (!sp->greedy && differing) printf(", largest CDF shift of a flip %.2e", worst_shift);
    printf("\n");
    CHECK(differing <= max_differing, "%s: %d of %d sequences differ from the CPU (at most %d allowed)", what,
          differing, nseq, max_differing);
}

static void expect_identical(const rollout_output *a, const rollout_output *b, const char *what) {
    size_t n = (size_t)nseq * a->S;
    CHECK(memcmp(a->tokens, b->tokens, n * sizeof(int)) == 0, "%s: tokens differ", what);
    CHECK(memcmp(a->logprobs, b->logprobs, n * sizeof(float)) == 0, "%s: log-probs differ", what);
    CHECK(memcmp(a->gen_len, b->gen_len, nseq * sizeof(int)) == 0, "%s: lengths differ", what);
    CHECK(memcmp(a->embed, b->embed, (size_t)nseq * a->C * sizeof(float)) == 0, "%s: embeddings differ", what);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--quick") == 0) {
        nseq = 6;
        n_new = 6;
        chunk = 4;
    }
    if (!exitrl_cuda_available()) {
        printf("SKIP: no GPU\n");
        return TEST_SKIP;
    }
    exitrl_backend *cpu = exitrl_backend_cpu_create();
    gen_ctx gc;
    if (gpt_create(&gc.m, cpu, &CFG, chunk, SEQ_LEN)) return 1;
    gpt_init_random(&gc.m, 3);
    float *w = dev_read(cpu, gc.m.master, sizeof(float) * gc.m.num_params);
    for (size_t i = 0; i < gc.m.param_sizes[P_WTE]; i++) w[gc.m.param_offsets[P_WTE] + i] *= 4.0f;
    gpt_destroy(&gc.m);
    CHECK(gen_open(&gc, cpu, w) == 0, "cpu generator");

    int prompts[NSEQ_MAX * PMAX], lens[NSEQ_MAX];
    for (int b = 0; b < nseq; b++) {
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
        CHECK(rollout_output_alloc(&cpu_out[k], nseq, SEQ_LEN, CFG.d_model) == 0, "alloc");
        memcpy(cpu_out[k].tokens, gc.out.tokens, sizeof(int) * nseq * SEQ_LEN);
        memcpy(cpu_out[k].logprobs, gc.out.logprobs, sizeof(float) * nseq * SEQ_LEN);
        memcpy(cpu_out[k].prompt_len, gc.out.prompt_len, sizeof(int) * nseq);
        memcpy(cpu_out[k].gen_len, gc.out.gen_len, sizeof(int) * nseq);
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
            compare_with_cpu(&gc, &cpu_out[k], &gg.out, modes[k], what, bf16 ? 0.08 : 2e-4, bf16 ? 0.25 : 2e-4,
                             bf16 ? 0.03 : 1e-3, !bf16 ? 2 : k == 0 ? nseq / 2 : nseq);
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
