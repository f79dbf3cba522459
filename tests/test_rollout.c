/* Rollout engine on the CPU backend: greedy = argmax of a full forward at every position; recorded
 * log-probs = teacher-forced log-probs; sampled frequencies match the softmax (chi-square);
 * top-k / top-p never emit an excluded token; determinism per seed and across chunk sizes; Philox
 * known-answer vectors; bad requests are errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"
#include "rl/rollout.h"
#include "test_util.h"
#include "model/tokenizer.h"

static gpt_config CFG = {2, 4, 64, 64, EXITRL_VOCAB, EXITRL_VOCAB_PADDED};

/* Full-forward logits of one sequence (row t predicts token t+1), fp32 [T, Vp]. */
static void full_logits(gpt_model *m, const int *seq, int T, float *logits) {
    int tgt[64];
    for (int t = 0; t < T; t++) tgt[t] = -1;
    gpt_set_batch(m, seq, tgt, NULL, 1, T);
    gpt_forward(m, 1, T);
    m->backend->download(m->backend, logits, m->acts.logits, sizeof(float) * T * m->cfg.vocab_padded);
}

static void log_softmax(const float *l, int V, float inv_t, double *out) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, l[v] * inv_t);
    for (int v = 0; v < V; v++) s += exp(l[v] * inv_t - mx);
    for (int v = 0; v < V; v++) out[v] = l[v] * inv_t - mx - log(s);
}

int main(void) {
    /* Philox4x32-10 known-answer vectors (Random123's kat_vectors). */
    uint32_t o[4];
    philox4x32_10((uint32_t[4]){0, 0, 0, 0}, (uint32_t[2]){0, 0}, o);
    CHECK(o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u,
          "philox zero vector: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    philox4x32_10((uint32_t[4]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                  (uint32_t[2]){0xa4093822u, 0x299f31d0u}, o);
    CHECK(o[0] == 0xd16cfe09u && o[1] == 0x94fdccebu && o[2] == 0x5001e420u && o[3] == 0x24126ea1u,
          "philox pi vector: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);

    exitrl_backend *be = exitrl_backend_cpu_create();
    gpt_model m;
    CHECK(gpt_create(&m, be, &CFG, 1, 64) == 0, "create");
    gpt_init_random(&m, 3);
    /* Sharpen the output distribution so argmax, top-k and top-p have something to choose. */
    float *w = dev_read(be, m.master, sizeof(float) * m.num_params);
    for (size_t i = 0; i < m.param_sizes[P_WTE]; i++) w[m.param_offsets[P_WTE] + i] *= 4.0f;
    gpt_load_params(&m, w);
    free(w);

    const int V = CFG.vocab, Vp = CFG.vocab_padded, NEW = 20, B = 6;
    int prompts[6 * 16], lens[6] = {1, 5, 16, 9, 2, 12};
    for (int i = 0; i < 6 * 16; i++) prompts[i] = (i * 7919) % 256;
    for (int b = 0; b < B; b++) prompts[b * 16] = TOK_BOS;
    rollout_engine r;
    CHECK(rollout_create(&r, &m, 4, 40) == 0, "rollout create");
    rollout_output out;
    CHECK(rollout_output_alloc(&out, 4096, 40, CFG.d_model) == 0, "alloc");
    char err[256];
    float *logits = malloc(sizeof(float) * 64 * Vp);
    double *ls = malloc(sizeof(double) * V);

    /* 1. Greedy = argmax of the full forward; log-probs = teacher-forced (temperature 1). */
    struct exitrl_sampling greedy = {1.0f, 0, 1.0f, 1, TOK_EOS, 1};
    CHECK(rollout_generate(&r, prompts, lens, 16, B, NEW, &greedy, 0, &out, err, sizeof err) == 0, "%s", err);
    double worst_lp = 0;
    for (int b = 0; b < B; b++) {
        int len = out.prompt_len[b], n = out.gen_len[b], *seq = out.tokens + (size_t)b * out.S;
        CHECK(len == lens[b] && n >= 1 && n <= NEW, "lengths %d %d", len, n);
        CHECK(memcmp(seq, prompts + b * 16, sizeof(int) * len) == 0, "prompt %d not kept", b);
        full_logits(&m, seq, len + n, logits);
        for (int t = len; t < len + n; t++) {
            const float *l = logits + (size_t)(t - 1) * Vp;
            int best = 0;
            for (int v = 1; v < V; v++) if (l[v] > l[best]) best = v;
            CHECK(seq[t] == best, "seq %d pos %d: greedy %d, argmax %d", b, t, seq[t], best);
            log_softmax(l, V, 1.0f, ls);
            double e = fabs(out.logprobs[(size_t)b * out.S + t] - ls[seq[t]]);
            worst_lp = fmax(worst_lp, e);
        }
        CHECK(out.hit_eos[b] == (seq[len + n - 1] == TOK_EOS), "eos flag");
        CHECK(out.hit_eos[b] || n == NEW, "stopped early without EOS");
    }
    CHECK(worst_lp < 1e-4, "greedy log-prob vs teacher-forced: max error %.3g (tolerance 1e-4)", worst_lp);

    /* 2. Sampled log-probs at temperature 0.7 = log_softmax(logits / 0.7) of the full forward. */
    struct exitrl_sampling samp = {0.7f, 0, 1.0f, 0, TOK_EOS, 1234};
    CHECK(rollout_generate(&r, prompts, lens, 16, B, NEW, &samp, 0, &out, err, sizeof err) == 0, "%s", err);
    worst_lp = 0;
    for (int b = 0; b < B; b++) {
        int len = out.prompt_len[b], n = out.gen_len[b], *seq = out.tokens + (size_t)b * out.S;
        full_logits(&m, seq, len + n, logits);
        for (int t = len; t < len + n; t++) {
            log_softmax(logits + (size_t)(t - 1) * Vp, V, 1.0f / 0.7f, ls);
            worst_lp = fmax(worst_lp, fabs(out.logprobs[(size_t)b * out.S + t] - ls[seq[t]]));
        }
    }
    CHECK(worst_lp < 1e-4, "sampled log-prob vs teacher-forced: max error %.3g (tolerance 1e-4)", worst_lp);

    /* 3. Determinism: the same seed twice, and chunks of 4 vs a single chunk of 6, give the same
     * tokens; another seed differs. */
    int *first = malloc(sizeof(int) * B * out.S);
    memcpy(first, out.tokens, sizeof(int) * B * out.S);
    CHECK(rollout_generate(&r, prompts, lens, 16, B, NEW, &samp, 0, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(first, out.tokens, sizeof(int) * B * out.S) == 0, "same seed, different tokens");
    rollout_engine r6;
    CHECK(rollout_create(&r6, &m, 6, 40) == 0, "create 6");
    CHECK(rollout_generate(&r6, prompts, lens, 16, B, NEW, &samp, 0, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(first, out.tokens, sizeof(int) * B * out.S) == 0, "chunking changed the samples");
    /* Decode steps on the weights as they are (use_panels off) sample the same tokens, and after
     * the weights change, the next generation follows them (the panel copy is laid out anew). */
    rollout_engine plain;
    CHECK(rollout_create(&plain, &m, 6, 40) == 0, "create plain");
    plain.use_panels = 0;
    CHECK(rollout_generate(&plain, prompts, lens, 16, B, NEW, &samp, 0, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(first, out.tokens, sizeof(int) * B * out.S) == 0, "panels changed the samples");
    float *orig = dev_read(be, m.master, sizeof(float) * m.num_params), *w2 = dev_read(be, m.master, sizeof(float) * m.num_params);
    for (size_t i = 0; i < m.param_sizes[P_FCW]; i++) w2[m.param_offsets[P_FCW] + i] *= -1.5f;
    gpt_load_params(&m, w2);
    int *changed = malloc(sizeof(int) * B * out.S);
    CHECK(rollout_generate(&plain, prompts, lens, 16, B, NEW, &samp, 0, &out, err, sizeof err) == 0, "%s", err);
    memcpy(changed, out.tokens, sizeof(int) * B * out.S);
    CHECK(rollout_generate(&r6, prompts, lens, 16, B, NEW, &samp, 0, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(changed, out.tokens, sizeof(int) * B * out.S) == 0, "panels kept the old weights");
    CHECK(memcmp(first, changed, sizeof(int) * B * out.S) != 0, "the weight change changed no sample");
    gpt_load_params(&m, orig);
    free(orig), free(w2), free(changed);
    rollout_destroy(&plain);
    struct exitrl_sampling other = samp;
    other.seed = 99;
    CHECK(rollout_generate(&r6, prompts, lens, 16, B, NEW, &other, 0, &out, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(first, out.tokens, sizeof(int) * B * out.S) != 0, "another seed gave identical samples");

    /* 4. Frequencies of the first sampled token over N sequences with one prompt match the softmax:
     * chi-square over bins with expected count >= 5 (others pooled), bound at the 0.999 quantile. */
    const int N = 4000;
    int *many = malloc(sizeof(int) * N * 4), *many_len = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        memcpy(many + i * 4, (int[]){TOK_BOS, 'a', 'b', 'c'}, sizeof(int) * 4);
        many_len[i] = 4;
    }
    struct exitrl_sampling t1 = {1.0f, 0, 1.0f, 0, TOK_EOS, 7};
    CHECK(rollout_generate(&r6, many, many_len, 4, N, 1, &t1, 0, &out, err, sizeof err) == 0, "%s", err);
    full_logits(&m, many, 4, logits);
    log_softmax(logits + 3 * Vp, V, 1.0f, ls);
    int *count = calloc(V, sizeof(int));
    for (int i = 0; i < N; i++) count[out.tokens[(size_t)i * out.S + 4]]++;
    double chi2 = 0, pooled_e = 0, pooled_o = 0;
    int df = -1;
    for (int v = 0; v < V; v++) {
        double e = N * exp(ls[v]);
        if (e >= 5) {
            chi2 += (count[v] - e) * (count[v] - e) / e;
            df++;
        } else {
            pooled_e += e;
            pooled_o += count[v];
        }
    }
    if (pooled_e > 0) {
        chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
        df++;
    }
    /* Wilson-Hilferty approximation of the chi-square 0.999 quantile (z = 3.09). */
    double k = df, q999 = k * pow(1 - 2 / (9 * k) + 3.09 * sqrt(2 / (9 * k)), 3);
    printf("chi-square %.1f with %d degrees of freedom (0.999 quantile %.1f)\n", chi2, df, q999);
    CHECK(df >= 3, "distribution too peaked to test (df %d)", df);
    CHECK(chi2 < q999, "sampled frequencies do not match the softmax: chi2 %.1f >= %.1f", chi2, q999);

    /* 5. top-k and top-p never emit an excluded token (same prompt, so one distribution). */
    int order[EXITRL_VOCAB];
    for (int v = 0; v < V; v++) order[v] = v;
    for (int i = 0; i < V; i++) /* rank by probability, ties by id (selection sort: V is small) */
        for (int j = i + 1; j < V; j++)
            if (ls[order[j]] > ls[order[i]] || (ls[order[j]] == ls[order[i]] && order[j] < order[i])) {
                int tmp = order[i]; order[i] = order[j]; order[j] = tmp;
            }
    struct exitrl_sampling tk = {1.0f, 3, 1.0f, 0, TOK_EOS, 11};
    CHECK(rollout_generate(&r6, many, many_len, 4, N, 1, &tk, 0, &out, err, sizeof err) == 0, "%s", err);
    int bad_k = 0;
    for (int i = 0; i < N; i++) {
        int tok = out.tokens[(size_t)i * out.S + 4];
        bad_k += tok != order[0] && tok != order[1] && tok != order[2];
    }
    CHECK(bad_k == 0, "top-k emitted %d excluded tokens", bad_k);
    struct exitrl_sampling tp = {1.0f, 0, 0.5f, 0, TOK_EOS, 12};
    int nucleus = 0;
    for (double before = 0; nucleus < V && before < 0.5; nucleus++) before += exp(ls[order[nucleus]]);
    CHECK(rollout_generate(&r6, many, many_len, 4, N, 1, &tp, 0, &out, err, sizeof err) == 0, "%s", err);
    int bad_p = 0, seen_last = 0;
    for (int i = 0; i < N; i++) {
        int tok = out.tokens[(size_t)i * out.S + 4], in = 0;
        for (int j = 0; j < nucleus; j++) in |= tok == order[j];
        bad_p += !in;
        seen_last |= tok == order[nucleus - 1];
    }
    printf("top-p 0.5 nucleus: %d tokens\n", nucleus);
    CHECK(bad_p == 0, "top-p emitted %d excluded tokens", bad_p);
    CHECK(nucleus == 1 || seen_last, "the token that crosses top_p was never drawn");

    /* 6. Bad requests are errors with a reason, not crashes. */
    int long_prompt[64] = {0}, long_len = 40, zero = 0;
    CHECK(rollout_generate(&r6, long_prompt, &long_len, 64, 1, 4, &greedy, 0, &out, err, sizeof err) != 0 &&
              strstr(err, "leaves no room"), "long prompt: %s", err);
    CHECK(rollout_generate(&r6, prompts, lens, 16, 0, 4, &greedy, 0, &out, err, sizeof err) != 0 &&
              strstr(err, "empty batch"), "empty batch: %s", err);
    CHECK(rollout_generate(&r6, prompts, &zero, 16, 1, 4, &greedy, 0, &out, err, sizeof err) != 0 &&
              strstr(err, "empty"), "empty prompt: %s", err);
    struct exitrl_sampling bad = {0.0f, 0, 1.0f, 0, TOK_EOS, 1};
    CHECK(rollout_generate(&r6, prompts, lens, 16, 1, 4, &bad, 0, &out, err, sizeof err) != 0 &&
              strstr(err, "temperature"), "temperature 0: %s", err);
    bad.temperature = 1.0f, bad.top_p = 1.5f;
    CHECK(rollout_generate(&r6, prompts, lens, 16, 1, 4, &bad, 0, &out, err, sizeof err) != 0 &&
              strstr(err, "top_p"), "top_p 1.5: %s", err);
    int bad_tok[2] = {TOK_BOS, 5000}, two = 2;
    CHECK(rollout_generate(&r6, bad_tok, &two, 2, 1, 4, &greedy, 0, &out, err, sizeof err) != 0 &&
              strstr(err, "outside"), "bad token id: %s", err);

    free(first), free(many), free(many_len), free(count), free(logits), free(ls);
    rollout_output_free(&out);
    rollout_destroy(&r);
    rollout_destroy(&r6);
    gpt_destroy(&m);
    be->destroy(be);
    return test_finish("test_rollout");
}
