#include "rl/grpo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
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

/* 1 when completions i and j were generated from the same prompt. */
static int same_prompt(const rollout_output *ro, int i, int j) {
    return ro->prompt_len[i] == ro->prompt_len[j] &&
           !memcmp(ro->tokens + (size_t)i * ro->S, ro->tokens + (size_t)j * ro->S, sizeof(int) * ro->prompt_len[i]);
}

/* A packed row (docs/DESIGN.md §5.6): completions first .. first+count-1, of one prompt of Lp
 * tokens, laid out as the prompt less its last token (the shared prefix, plen = Lp - 1 rows, no
 * targets), then per completion a segment of gen_len rows: the prompt's last token and the
 * completion less its last token, at positions plen, plen+1, ...; segment row u predicts
 * completion token u. len = plen + the segments. A row of one completion is the plain layout
 * (prompt + completion less the last token, positions 0..len-1, causal). */
typedef struct {
    int first, count, len;
} packed_row;

/* The rows of completions [r0, r0 + n): with share, consecutive completions of one prompt join one
 * row while it stays within cap tokens; else one row per completion. Returns the row count. */
static int plan_rows(const rollout_output *ro, int r0, int n, int share, long cap, packed_row *pr) {
    int k = 0;
    for (int i = r0; i < r0 + n; i++) {
        packed_row *last = k ? &pr[k - 1] : NULL;
        if (share && last && same_prompt(ro, last->first, i) && last->len + ro->gen_len[i] <= cap) {
            last->count++;
            last->len += ro->gen_len[i];
        } else {
            pr[k++] = (packed_row){i, 1, row_len(ro, i)};
        }
    }
    return k;
}

/* Host arrays of one micro-batch, [B, T] each (prefix_len [B]). */
typedef struct {
    int *tok, *tgt, *pos, *seg, *prefix_len;
    float *w, *lp_old, *adv, *lp_ref;
} micro_arrays;

static void micro_arrays_free(micro_arrays *x) {
    free(x->tok), free(x->tgt), free(x->pos), free(x->seg), free(x->prefix_len);
    free(x->w), free(x->lp_old), free(x->adv), free(x->lp_ref);
}

/* Row b of a micro-batch of stride T from packed row r; wt[i] is completion i's loss weight. */
static void fill_row(const rollout_output *ro, const packed_row *r, const float *adv, const float *wt, int b, int T,
                     micro_arrays *x) {
    const int plen = ro->prompt_len[r->first] - 1;
    const int *seq0 = ro->tokens + (size_t)r->first * ro->S;
    size_t c = (size_t)b * T;
    for (int t = 0; t < plen; t++, c++) {
        x->tok[c] = seq0[t], x->pos[c] = t, x->seg[c] = 0, x->tgt[c] = -1;
        x->w[c] = x->lp_old[c] = x->adv[c] = 0.0f;
    }
    for (int i = r->first; i < r->first + r->count; i++) {
        const int *seq = ro->tokens + (size_t)i * ro->S;
        const float *lp = ro->logprobs + (size_t)i * ro->S;
        const int start = (int)(c - (size_t)b * T);
        for (int u = 0; u < ro->gen_len[i]; u++, c++) { /* row plen + u predicts token plen + u + 1 */
            x->tok[c] = seq[plen + u], x->pos[c] = plen + u, x->seg[c] = start, x->tgt[c] = seq[plen + u + 1];
            x->w[c] = wt[i], x->lp_old[c] = lp[plen + u + 1], x->adv[c] = adv[i];
        }
    }
    for (; c < (size_t)(b + 1) * T; c++) { /* padding: no targets, sees only what precedes it */
        x->tok[c] = TOK_PAD, x->pos[c] = 0, x->seg[c] = 0, x->tgt[c] = -1;
        x->w[c] = x->lp_old[c] = x->adv[c] = 0.0f;
    }
    x->prefix_len[b] = plen;
}

int grpo_update_steps(int n, int minibatches, int epochs) {
    const int mb_rows = (n + minibatches - 1) / minibatches;
    return epochs * ((n + mb_rows - 1) / mb_rows);
}

int grpo_update(gpt_model *m, const grpo_reference *ref, const rollout_output *ro, int n, const float *adv,
                const grpo_options *o, grpo_stats *st) {
    const int mb_rows = (n + o->minibatches - 1) / o->minibatches;
    const int lo = o->rank_hi > 0 ? o->rank_lo : 0, hi = o->rank_hi > 0 ? o->rank_hi : n;
    const long cap = (long)m->max_B * m->max_T; /* tokens of activation capacity */
    const int share = o->share_prefix && m->backend->attention_forward_packed && m->backend->attention_backward_packed;
    int T = 1;
    for (int i = 0; i < n; i++) T = row_len(ro, i) > T ? row_len(ro, i) : T;
    /* Unshared: a minibatch larger than the activation capacity runs as micro-batches of `micro`
     * rows of T tokens whose gradients add up before the optimizer step (the weights are
     * normalised over the whole minibatch). Shared: micro-batches of packed rows, as many as fit. */
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
    micro_arrays x;
    x.tok = malloc(sizeof(int) * cap), x.tgt = malloc(sizeof(int) * cap), x.pos = malloc(sizeof(int) * cap);
    x.seg = malloc(sizeof(int) * cap), x.prefix_len = malloc(sizeof(int) * cap);
    x.w = malloc(sizeof(float) * cap), x.lp_old = malloc(sizeof(float) * cap);
    x.adv = malloc(sizeof(float) * cap), x.lp_ref = malloc(sizeof(float) * cap);
    float *wt = malloc(sizeof(float) * n);
    packed_row *pr = malloc(sizeof *pr * mb_rows);
    if (!x.tok || !x.tgt || !x.pos || !x.seg || !x.prefix_len || !x.w || !x.lp_old || !x.adv || !x.lp_ref || !wt || !pr) {
        fprintf(stderr, "exitrl: out of host memory for the GRPO batch\n");
        exit(1);
    }
    int rc = 0;
    memset(st, 0, sizeof *st);
    st->steps = grpo_update_steps(n, o->minibatches, o->epochs);
    int adv_finite = o->test_fault != GRPO_FAULT_ADV;
    for (int i = 0; i < n && adv_finite; i++) adv_finite = isfinite(adv[i]);
    if (!adv_finite) { /* every step would carry it into the weights */
        st->skipped = st->steps;
        st->skip_reason = "advantage";
        st->loss = st->kl = st->clip_frac = st->grad_norm = NAN;
        goto done;
    }
    nvtx_push("grpo_update");
    for (int epoch = 0; epoch < o->epochs && !rc; epoch++)
        for (int r0 = 0; r0 < n && !rc; r0 += mb_rows) {
            int rows = n - r0 < mb_rows ? n - r0 : mb_rows;
            long tokens = 0;
            for (int b = 0; b < rows; b++) tokens += ro->gen_len[r0 + b];
            for (int i = r0; i < r0 + rows; i++)
                wt[i] = o->aggregation == GRPO_AGG_GRPO ? 1.0f / ((float)rows * ro->gen_len[i])
                      : o->aggregation == GRPO_AGG_DAPO ? 1.0f / (float)tokens
                                                        : 1.0f / ((float)rows * o->max_new_tokens);
            /* This rank's completions of the minibatch (all of them in one process). */
            const int own0 = r0 > lo ? r0 : lo, own1 = r0 + rows < hi ? r0 + rows : hi;
            const int n_rows = own1 > own0 ? plan_rows(ro, own0, own1 - own0, share, cap, pr) : 0;
            gpt_zero_grad(m);
            float step_loss = 0.0f, step_kl = 0.0f;
            for (int k0 = 0, k1; k0 < n_rows; k0 = k1) {
                int uT = share ? pr[k0].len : T;
                k1 = k0 + 1;
                if (share) { /* as many packed rows as fit, padded to the longest */
                    while (k1 < n_rows && (long)(k1 - k0 + 1) * (pr[k1].len > uT ? pr[k1].len : uT) <= cap)
                        uT = pr[k1].len > uT ? pr[k1].len : uT, k1++;
                    if (!gpt_packed_fits(m, k1 - k0, uT)) {
                        fprintf(stderr, "exitrl: a packed GRPO row of %d tokens exceeds the model's capacity (%ld tokens)\n",
                                uT, cap);
                        rc = -1;
                        break;
                    }
                } else {
                    k1 = k0 + micro < n_rows ? k0 + micro : n_rows;
                }
                const int urows = k1 - k0;
                for (int b = 0; b < urows; b++) fill_row(ro, &pr[k0 + b], adv, wt, b, uT, &x);
                if (o->test_fault == GRPO_FAULT_LOSS) x.lp_old[x.prefix_len[0]] = NAN;
                if (share) gpt_set_packing(m, x.pos, x.seg, x.prefix_len, urows, uT);
                gpt_set_batch(m, x.tok, x.tgt, x.w, urows, uT);
                if (o->loss.beta > 0) {
                    void *own = m->params;
                    m->params = ref->params; /* the same forward, under the reference weights */
                    gpt_token_logprobs(m, urows, uT, o->loss.inv_temp, x.lp_ref);
                    m->params = own;
                    gpt_set_batch(m, x.tok, x.tgt, x.w, urows, uT); /* gpt_token_logprobs used the weights as scratch */
                }
                gpt_set_grpo_inputs(m, x.lp_old, o->loss.beta > 0 ? x.lp_ref : NULL, x.adv, urows, uT);
                gpt_grpo_stats gs;
                gpt_forward_backward_grpo(m, urows, uT, &o->loss, &gs);
                st->row_tokens += (long)urows * uT;
                step_loss += gs.loss;
                step_kl += gs.kl * gs.tokens;
                st->clip_frac += gs.clip_frac * gs.tokens;
                st->tokens += gs.tokens;
            }
            if (dist_or(rc != 0, "GRPO micro-batches")) {
                rc = -1;
                break;
            }
            float sums[2] = {step_loss, step_kl}; /* the minibatch's, over every rank's rows */
            dist_sum_f32(sums, 2, "GRPO loss and KL");
            step_loss = sums[0], step_kl = sums[1];
            dist_sum_grads(m, "GRPO gradients");
            st->loss += step_loss;
            st->kl += step_kl;
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
    gpt_set_packing(m, NULL, NULL, NULL, 0, 0);
    double counts[3] = {st->clip_frac, (double)st->tokens, (double)st->row_tokens};
    dist_sum_f64(counts, 3, "GRPO statistics");
    st->clip_frac = (float)counts[0], st->tokens = (long)counts[1], st->row_tokens = (long)counts[2];
    if (st->tokens) {
        st->kl /= st->tokens;
        st->clip_frac /= st->tokens;
    }
    st->loss /= st->steps;
    st->grad_norm /= st->steps;
    st->tokens /= o->epochs;
    st->row_tokens /= o->epochs;
done:
    micro_arrays_free(&x);
    free(wt);
    free(pr);
    return rc;
}
