/* grpo_update moves the policy the right way: after updates with advantage +1 on one completion and
 * -1 on another of the same prompt, the first's log-probability rises and the second's falls;
 * micro-batches (capacity smaller than the minibatch) accumulate the same gradient as one batch; a
 * KL penalty to the reference restrains the update; alpha = 1 copies the weights to the reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rl/grpo.h"
#include "test_util.h"
#include "model/tokenizer.h"

static gpt_config CFG = {2, 2, 32, 32, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

/* Two rows sharing the prompt BOS 'a' 'b' ANSWER, completions "12" EOS and "34" EOS. */
static void make_rollouts(gpt_model *m, rollout_output *ro) {
    rollout_output_alloc(ro, 4, 8, CFG.d_model);
    const int rows[4][7] = {{TOK_BOS, 'a', 'b', TOK_ANSWER, '1', '2', TOK_EOS},
                            {TOK_BOS, 'a', 'b', TOK_ANSWER, '3', '4', TOK_EOS},
                            {TOK_BOS, 'c', TOK_ANSWER, '5', TOK_EOS, TOK_PAD, TOK_PAD},
                            {TOK_BOS, 'c', TOK_ANSWER, '6', '7', '8', TOK_EOS}};
    const int plen[4] = {4, 4, 3, 3}, glen[4] = {3, 3, 2, 4};
    for (int i = 0; i < 4; i++) {
        for (int t = 0; t < 8; t++) ro->tokens[i * 8 + t] = t < 7 ? rows[i][t] : TOK_PAD;
        ro->prompt_len[i] = plen[i];
        ro->gen_len[i] = glen[i];
        ro->hit_eos[i] = 1;
    }
    /* Old log-probs = the current policy's, as a rollout at temperature 1 would record them. */
    int tgt[4 * 8];
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 8; t++) {
            int target = t + 1 < 8 && t >= plen[i] - 1 && t < plen[i] + glen[i] - 1;
            tgt[i * 8 + t] = target ? ro->tokens[i * 8 + t + 1] : -1;
        }
    float lp[4 * 8];
    gpt_set_batch(m, ro->tokens, tgt, NULL, 4, 8);
    gpt_token_logprobs(m, 4, 8, 1.0f, lp);
    memset(ro->logprobs, 0, sizeof(float) * 4 * 8);
    for (int i = 0; i < 4; i++)
        for (int t = 0; t < 7; t++)
            if (tgt[i * 8 + t] >= 0) ro->logprobs[i * 8 + t + 1] = lp[i * 8 + t];
}

/* Sum of the completion's token log-probs under the model. */
static double completion_logprob(gpt_model *m, const rollout_output *ro, int i) {
    int tgt[8], len = ro->prompt_len[i], gen = ro->gen_len[i];
    for (int t = 0; t < 8; t++) tgt[t] = t >= len - 1 && t < len + gen - 1 ? ro->tokens[i * 8 + t + 1] : -1;
    float lp[8];
    gpt_set_batch(m, ro->tokens + i * 8, tgt, NULL, 1, 8);
    gpt_token_logprobs(m, 1, 8, 1.0f, lp);
    double s = 0;
    for (int t = 0; t < 8; t++) s += lp[t];
    return s;
}

int main(void) {
    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_model m, small;
    CHECK(gpt_create(&m, be, &CFG, 4, 8) == 0, "create");
    CHECK(gpt_create(&small, be, &CFG, 1, 8) == 0, "create small"); /* forces micro-batches of 1 row */
    gpt_init_random(&m, 5);
    gpt_init_random(&small, 5);
    rollout_output ro;
    make_rollouts(&m, &ro);
    double before[4];
    for (int i = 0; i < 4; i++) before[i] = completion_logprob(&m, &ro, i);

    float adv[4] = {1.0f, -1.0f, -1.0f, 1.0f};
    grpo_options o = {GRPO_AGG_GRPO, 1, 1, 8, {1.0f, 0.2f, 0.2f, 0.0f}, {0.0f, 0.9f, 0.95f, 1e-8f, 0.0f, 0.0f}, GRPO_FAULT_NONE, 0, 0, 0};
    grpo_stats st, st_small;
    /* With lr 0 the weights stay put and the accumulated gradients can be compared: micro-batches
     * of one row must add up to the full batch's gradient. */
    CHECK(grpo_update(&m, NULL, &ro, 4, adv, &o, &st) == 0, "update");
    CHECK(grpo_update(&small, NULL, &ro, 4, adv, &o, &st_small) == 0, "update (micro-batched)");
    double maxdiff = 0, maxg = 0;
    for (size_t i = 0; i < m.num_params; i++) {
        maxdiff = fmax(maxdiff, fabs(m.grads[i] - small.grads[i]));
        maxg = fmax(maxg, fabs(m.grads[i]));
    }
    CHECK(maxg > 0 && maxdiff <= 1e-5 * maxg, "micro-batched gradient differs by %.3g (max |g| %.3g)", maxdiff, maxg);
    CHECK(st.tokens == 12 && st_small.tokens == 12, "tokens trained on: %ld and %ld, want 12", st.tokens, st_small.tokens);
    o.opt.lr = 1e-2f;
    o.opt.grad_clip = 1.0f;
    for (int step = 0; step < 5; step++) CHECK(grpo_update(&m, NULL, &ro, 4, adv, &o, &st) == 0, "update");
    double after[4];
    for (int i = 0; i < 4; i++) after[i] = completion_logprob(&m, &ro, i);
    printf("log-prob of completions: %.3f -> %.3f (A=+1), %.3f -> %.3f (A=-1), %.3f -> %.3f (A=-1), %.3f -> %.3f (A=+1)\n",
           before[0], after[0], before[1], after[1], before[2], after[2], before[3], after[3]);
    CHECK(after[0] > before[0] + 0.1, "A=+1 completion did not become more likely");
    CHECK(after[1] < before[1] - 0.1, "A=-1 completion did not become less likely");
    CHECK(after[2] < before[2] - 0.1, "A=-1 completion did not become less likely");
    CHECK(after[3] > before[3] + 0.1, "A=+1 completion did not become more likely");

    /* With a KL penalty towards a reference equal to the starting policy, large beta pulls the
     * update back: the log-prob moves less than without it. */
    gpt_model k;
    CHECK(gpt_create(&k, be, &CFG, 4, 8) == 0, "create k");
    gpt_init_random(&k, 5);
    grpo_reference ref;
    CHECK(grpo_reference_init(&ref, &k) == 0, "reference");
    grpo_options ok = o;
    ok.loss.beta = 5.0f; /* lr 1e-2 as above */
    for (int step = 0; step < 5; step++) CHECK(grpo_update(&k, &ref, &ro, 4, adv, &ok, &st) == 0, "kl update");
    double kl_after = completion_logprob(&k, &ro, 0);
    printf("with beta 5: %.3f -> %.3f (KL %.4f)\n", before[0], kl_after, st.kl);
    CHECK(kl_after - before[0] < after[0] - before[0], "the KL term did not restrain the update");
    CHECK(st.kl > 0, "KL estimate should be positive after the policy moved");
    grpo_reference_update(&ref, &k, 1.0f);
    CHECK(memcmp(ref.master, k.master, sizeof(float) * k.num_params) == 0, "alpha = 1 copies the weights");

    grpo_reference_free(&ref, &k);
    rollout_output_free(&ro);
    gpt_destroy(&m);
    gpt_destroy(&small);
    gpt_destroy(&k);
    be->destroy(be);
    return test_finish("test_grpo_update");
}
