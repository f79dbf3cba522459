#include "rl/grpo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/nvtx.h"
#include "model/tokenizer.h"

int grpo_reference_init(grpo_reference *ref, gpt_model *m) {
    exitrl_backend *be = m->backend;
    size_t n = m->num_params;
    ref->master = be->alloc(be, n * sizeof(float));
    ref->params = be->act_dtype == EXITRL_F32 ? (void *)ref->master : be->alloc(be, n * exitrl_dtype_size(be->act_dtype));
    if (!ref->master || !ref->params) {
        grpo_reference_free(ref, m);
        return -1;
    }
    be->copy(be, ref->master, m->master, n * sizeof(float));
    be->f32_to_act(be, ref->params, ref->master, n);
    return 0;
}

void grpo_reference_update(grpo_reference *ref, gpt_model *m, float alpha) {
    exitrl_backend *be = m->backend;
    size_t n = m->num_params;
    if (alpha >= 1.0f) {
        be->copy(be, ref->master, m->master, n * sizeof(float));
    } else {
        /* A rare host round trip (every M iterations) keeps the backend interface small. */
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        if (!a || !b) {
            fprintf(stderr, "exitrl: out of host memory updating the reference policy\n");
            exit(1);
        }
        be->download(be, a, m->master, n * sizeof(float));
        be->download(be, b, ref->master, n * sizeof(float));
        for (size_t i = 0; i < n; i++) b[i] = alpha * a[i] + (1.0f - alpha) * b[i];
        be->upload(be, ref->master, b, n * sizeof(float));
        free(a);
        free(b);
    }
    be->f32_to_act(be, ref->params, ref->master, n);
}

void grpo_reference_free(grpo_reference *ref, gpt_model *m) {
    exitrl_backend *be = m->backend;
    if (ref->params && ref->params != (void *)ref->master) be->free(be, ref->params);
    if (ref->master) be->free(be, ref->master);
    ref->master = NULL;
    ref->params = NULL;
}

/* Length of row i: its prompt and completion, less the final token, which is only a target. */
static int row_len(const rollout_output *ro, int i) { return ro->prompt_len[i] + ro->gen_len[i] - 1; }

int grpo_update(gpt_model *m, const grpo_reference *ref, const rollout_output *ro, int n, const float *adv,
                const grpo_options *o, grpo_stats *st) {
    const int mb_rows = (n + o->minibatches - 1) / o->minibatches;
    int T = 1;
    for (int i = 0; i < n; i++) T = row_len(ro, i) > T ? row_len(ro, i) : T;
    /* A minibatch larger than the activation capacity runs as micro-batches whose gradients add up
     * before the optimizer step (the weights are normalised over the whole minibatch). */
    int micro = mb_rows;
    while (micro > 1 && !gpt_batch_fits(m, micro, T)) micro = (micro + 1) / 2;
    if (!gpt_batch_fits(m, micro, T)) {
        fprintf(stderr, "exitrl: GRPO rows of %d tokens exceed the model's capacity (%d x %d, max_seq %d)\n", T,
                m->max_B, m->max_T, m->cfg.max_seq);
        return -1;
    }
    if (o->loss.beta > 0 && !ref) {
        fprintf(stderr, "exitrl: GRPO with kl_beta > 0 needs a reference policy\n");
        return -1;
    }
    size_t cells = (size_t)micro * T;
    int *tok = malloc(sizeof(int) * cells), *tgt = malloc(sizeof(int) * cells);
    float *w = malloc(sizeof(float) * cells), *lp_old = malloc(sizeof(float) * cells);
    float *a = malloc(sizeof(float) * cells), *lp_ref = malloc(sizeof(float) * cells);
    if (!tok || !tgt || !w || !lp_old || !a || !lp_ref) {
        fprintf(stderr, "exitrl: out of host memory for the GRPO batch\n");
        exit(1);
    }
    memset(st, 0, sizeof *st);
    st->steps = o->epochs * ((n + mb_rows - 1) / mb_rows);
    int adv_finite = o->test_fault != GRPO_FAULT_ADV;
    for (int i = 0; i < n && adv_finite; i++) adv_finite = isfinite(adv[i]);
    if (!adv_finite) { /* every step would carry it into the weights */
        st->skipped = st->steps;
        st->skip_reason = "advantage";
        st->loss = st->kl = st->clip_frac = st->grad_norm = NAN;
        free(tok), free(tgt), free(w), free(lp_old), free(a), free(lp_ref);
        return 0;
    }
    nvtx_push("grpo_update");
    for (int epoch = 0; epoch < o->epochs; epoch++)
        for (int r0 = 0; r0 < n; r0 += mb_rows) {
            int rows = n - r0 < mb_rows ? n - r0 : mb_rows;
            long tokens = 0;
            for (int b = 0; b < rows; b++) tokens += ro->gen_len[r0 + b];
            gpt_zero_grad(m);
            float step_loss = 0.0f, step_kl = 0.0f;
            for (int u0 = 0; u0 < rows; u0 += micro) {
                int urows = rows - u0 < micro ? rows - u0 : micro;
                for (int b = 0; b < urows; b++) {
                    int i = r0 + u0 + b, len = ro->prompt_len[i], gen = ro->gen_len[i];
                    const int *seq = ro->tokens + (size_t)i * ro->S;
                    const float *lp = ro->logprobs + (size_t)i * ro->S;
                    float wt = o->aggregation == GRPO_AGG_GRPO ? 1.0f / ((float)rows * gen)
                             : o->aggregation == GRPO_AGG_DAPO ? 1.0f / (float)tokens
                                                               : 1.0f / ((float)rows * o->max_new_tokens);
                    for (int t = 0; t < T; t++) {
                        size_t c = (size_t)b * T + t;
                        int is_target = t >= len - 1 && t < len + gen - 1; /* row t predicts token t + 1 */
                        tok[c] = t < len + gen - 1 ? seq[t] : TOK_PAD;
                        tgt[c] = is_target ? seq[t + 1] : -1;
                        w[c] = is_target ? wt : 0.0f;
                        lp_old[c] = is_target ? lp[t + 1] : 0.0f;
                        a[c] = is_target ? adv[i] : 0.0f;
                    }
                }
                if (o->test_fault == GRPO_FAULT_LOSS) lp_old[ro->prompt_len[r0 + u0] - 1] = NAN;
                gpt_set_batch(m, tok, tgt, w, urows, T);
                if (o->loss.beta > 0) {
                    void *own = m->params;
                    m->params = ref->params; /* the same forward, under the reference weights */
                    gpt_token_logprobs(m, urows, T, o->loss.inv_temp, lp_ref);
                    m->params = own;
                    gpt_set_batch(m, tok, tgt, w, urows, T); /* gpt_token_logprobs used the weights as scratch */
                }
                gpt_set_grpo_inputs(m, lp_old, o->loss.beta > 0 ? lp_ref : NULL, a, urows, T);
                gpt_grpo_stats gs;
                gpt_forward_backward_grpo(m, urows, T, &o->loss, &gs);
                step_loss += gs.loss;
                step_kl += gs.kl * gs.tokens;
                st->loss += gs.loss;
                st->kl += gs.kl * gs.tokens;
                st->clip_frac += gs.clip_frac * gs.tokens;
                st->tokens += gs.tokens;
            }
            if (o->test_fault == GRPO_FAULT_GRAD) {
                const float nan = NAN;
                m->backend->upload(m->backend, m->grads, &nan, sizeof nan);
            }
            /* A non-finite loss or KL skips the step before its gradient is looked at; a
             * non-finite gradient norm inside gpt_update_if_finite. */
            float norm = NAN;
            const char *bad = !isfinite(step_loss) ? "loss" : !isfinite(step_kl) ? "KL" : NULL;
            if (!bad && gpt_update_if_finite(m, &o->opt, &norm)) bad = "gradient norm";
            if (bad && !st->skipped++) st->skip_reason = bad;
            st->grad_norm += norm;
        }
    nvtx_pop();
    if (st->tokens) {
        st->kl /= st->tokens;
        st->clip_frac /= st->tokens;
    }
    st->loss /= st->steps;
    st->grad_norm /= st->steps;
    st->tokens /= o->epochs;
    free(tok), free(tgt), free(w), free(lp_old), free(a), free(lp_ref);
    return 0;
}
