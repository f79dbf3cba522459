/* The shared-prefix GRPO update (packed rows, docs/DESIGN.md §5.6) on CUDA against the CPU
 * reference's unshared update on the same rollouts: P groups of G completions of one prompt each,
 * advantages of either sign, KL to a reference, ratios away from 1 (the policy is perturbed from
 * the one that generated). One optimizer step; the statistics and every parameter's gradient must
 * agree.
 * Bands: fp32 mode: loss, KL and gradient norm within 1e-4 relative, clip fraction equal within
 * one token in 200; gradients per tensor within rtol 1e-3 plus 1e-3 x the tensor's max |gradient|
 * (test_gpu_train_step's band). bf16 mode: loss and KL within 2e-2 relative + 1e-4, gradient norm
 * within 5%. Skips (exit 77) when no GPU is present. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rl/grpo.h"
#include "test_util.h"

enum { P = 4, G = 4, N = P * G, S = 64 };
static gpt_config CFG = {2, 4, 64, 64, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

/* Prompts of 9..30 tokens, completions of 1..20 tokens ending in EOS; lp_old from the weights gen. */
static void make_rollouts(gpt_model *gen, rollout_output *ro) {
    rollout_output_alloc(ro, N, S, CFG.d_model);
    unsigned long long s = 3;
    for (int i = 0; i < N; i++) {
        const int p = i / G, plen = 9 + 7 * p, glen = 1 + (int)((test_randf(&s, 1.0f) + 1.0f) * 9.5f);
        int *row = ro->tokens + (size_t)i * S;
        for (int t = 0; t < S; t++) row[t] = TOK_PAD;
        for (int t = 0; t < plen; t++) row[t] = t == 0 ? TOK_BOS : (p * 37 + t * 11) % 256;
        for (int t = 0; t < glen; t++) row[plen + t] = t == glen - 1 ? TOK_EOS : (int)((test_randf(&s, 1.0f) + 1.0f) * 127.0f);
        ro->prompt_len[i] = plen, ro->gen_len[i] = glen, ro->hit_eos[i] = 1;
    }
    /* lp_old: the generating policy's log-probs of each completion token, one row at a time */
    int tgt[S];
    float lp[S];
    memset(ro->logprobs, 0, sizeof(float) * N * S);
    for (int i = 0; i < N; i++) {
        const int *row = ro->tokens + (size_t)i * S, len = ro->prompt_len[i] + ro->gen_len[i] - 1;
        for (int t = 0; t < len; t++) tgt[t] = t >= ro->prompt_len[i] - 1 ? row[t + 1] : -1;
        gpt_set_batch(gen, row, tgt, NULL, 1, len);
        gpt_token_logprobs(gen, 1, len, 1.0f, lp);
        for (int t = 0; t < len; t++)
            if (tgt[t] >= 0) ro->logprobs[(size_t)i * S + t + 1] = lp[t];
    }
}

static void update(exitrl_backend *be, const float *w, const float *ref_w, const rollout_output *ro, const float *adv,
                   int share, float **grads, grpo_stats *st) {
    gpt_model m;
    CHECK(gpt_create(&m, be, &CFG, N, S) == 0, "create on %s", be->name);
    gpt_load_params(&m, ref_w);
    grpo_reference ref;
    CHECK(grpo_reference_init(&ref, &m) == 0, "reference");
    gpt_load_params(&m, w);
    grpo_options o = {GRPO_AGG_GRPO, 1, 1, 20, {1.0f, 0.1f, 0.1f, 0.05f}, {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f},
                      GRPO_FAULT_NONE, share, 0, 0};
    CHECK(grpo_update(&m, &ref, ro, N, adv, &o, st) == 0, "grpo_update on %s (share %d)", be->name, share);
    *grads = dev_read(be, m.grads, sizeof(float) * m.num_params);
    grpo_reference_free(&ref, &m);
    gpt_destroy(&m);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

int main(void) {
    if (!exitrl_cuda_available()) {
        printf("SKIP: no GPU\n");
        return TEST_SKIP;
    }
    exitrl_backend *cpu = exitrl_backend_cpu_create();
    gpt_model gen;
    CHECK(gpt_create(&gen, cpu, &CFG, 1, S) == 0, "create");
    gpt_init_random(&gen, 21);
    rollout_output ro;
    make_rollouts(&gen, &ro);
    float *ref_w = dev_read(cpu, gen.master, sizeof(float) * gen.num_params);
    float *w = malloc(sizeof(float) * gen.num_params);
    unsigned long long s = 8;
    for (size_t i = 0; i < gen.num_params; i++) w[i] = ref_w[i] + test_randf(&s, 0.02f);
    for (size_t i = (size_t)CFG.vocab * CFG.d_model; i < (size_t)CFG.vocab_padded * CFG.d_model; i++) w[i] = 0.0f;
    float adv[N];
    for (int i = 0; i < N; i++) adv[i] = test_randf(&s, 1.5f);

    float *cg;
    grpo_stats cs;
    update(cpu, w, ref_w, &ro, adv, 0, &cg, &cs);
    printf("cpu (unshared): loss %.6g kl %.6g clip %.4g norm %.6g\n", cs.loss, cs.kl, cs.clip_frac, cs.grad_norm);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        const char *mode = bf16 ? "bf16" : "fp32";
        char why[256];
        exitrl_backend *gpu = exitrl_backend_cuda_create(0, !bf16, why, sizeof why);
        CHECK(gpu != NULL, "cuda backend (%s): %s", mode, why);
        if (!gpu) continue;
        float *gg;
        grpo_stats gs;
        update(gpu, w, ref_w, &ro, adv, 1, &gg, &gs);
        printf("%s (shared): loss %.6g kl %.6g clip %.4g norm %.6g, rows of %ld tokens (cpu unshared %ld)\n", mode,
               gs.loss, gs.kl, gs.clip_frac, gs.grad_norm, gs.row_tokens, cs.row_tokens);
        CHECK(gs.row_tokens < cs.row_tokens, "%s: the update did not run packed rows", mode);
        if (!bf16) {
            CHECK(rel(gs.loss, cs.loss) <= 1e-4 && rel(gs.kl, cs.kl) <= 1e-4 && rel(gs.grad_norm, cs.grad_norm) <= 1e-4 &&
                      fabs(gs.clip_frac - cs.clip_frac) <= 5e-3,
                  "fp32: statistics differ");
            for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++) {
                size_t off = gen.param_offsets[t], n = gen.param_sizes[t], worst = 0;
                double mx = 0.0;
                for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(cg[off + i]));
                double r = test_max_err_ratio(gg + off, cg + off, n, 1e-3 * (mx > 0 ? mx : 1e-12), 1e-3, &worst);
                printf("  grad %-9s max|g| %.3e err/tol %.3g\n", test_tensor_names[t], mx, r);
                CHECK(r <= 1.0, "fp32: gradient of %s element %zu: cuda %.8g cpu %.8g", test_tensor_names[t], worst,
                      gg[off + worst], cg[off + worst]);
            }
        } else {
            CHECK(rel(gs.loss, cs.loss) <= 2e-2 + 1e-4 / fmax(fabs(cs.loss), 1e-12) &&
                      rel(gs.kl, cs.kl) <= 2e-2 + 1e-4 / fmax(cs.kl, 1e-12) && rel(gs.grad_norm, cs.grad_norm) <= 0.05,
                  "bf16: loss %.6g / %.6g, kl %.6g / %.6g, norm %.6g / %.6g", gs.loss, cs.loss, gs.kl, cs.kl,
                  gs.grad_norm, cs.grad_norm);
        }
        free(gg);
        gpu->destroy(gpu);
    }
    free(cg);
    free(ref_w);
    free(w);
    rollout_output_free(&ro);
    gpt_destroy(&gen);
    cpu->destroy(cpu);
    return test_finish("test_gpu_grpo_shared");
}
