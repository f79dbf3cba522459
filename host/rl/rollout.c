#include "rl/rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/nvtx.h"
#include "model/tokenizer.h"

#define DEFAULT_PREFILL_ROWS 16384

/* Element `index` of an act-dtype buffer of the engine. */
static void *at(const rollout_engine *r, void *base, size_t index) { return gpt_act_at(r->model, base, index); }

int rollout_create(rollout_engine *r, gpt_model *m, int max_B, int max_S) {
    memset(r, 0, sizeof *r);
    exitrl_backend *be = m->backend;
    const gpt_config *c = &m->cfg;
    if (max_B < 1 || max_S < 2 || max_S > c->max_seq) {
        fprintf(stderr, "exitrl: rollout capacity %d x %d is invalid (need B >= 1, 2 <= S <= %d)\n", max_B,
                max_S, c->max_seq);
        return -1;
    }
    r->model = m;
    r->max_B = max_B;
    r->max_S = max_S;
    r->max_prefill_rows = DEFAULT_PREFILL_ROWS > max_S ? DEFAULT_PREFILL_ROWS : max_S;
    r->done_check_interval = 8;
    r->share_prefix = 1;
    r->use_panels = 1;
    size_t C = (size_t)c->d_model, L = (size_t)c->n_layer, BS = (size_t)max_B * max_S, act = exitrl_dtype_size(be->act_dtype);
    size_t rows = (size_t)r->max_prefill_rows > (size_t)max_B ? (size_t)r->max_prefill_rows : (size_t)max_B;
    r->kcache = be->alloc(be, L * BS * C * act);
    r->vcache = be->alloc(be, L * BS * C * act);
    r->tok_buf = be->alloc(be, BS * sizeof(int));
    r->logprob_buf = be->alloc(be, BS * sizeof(float));
    r->pos = be->alloc(be, (size_t)max_B * sizeof(int));
    r->done = be->alloc(be, (size_t)max_B * sizeof(int));
    r->limit = be->alloc(be, (size_t)max_B * sizeof(int));
    r->gather_idx = be->alloc(be, (size_t)max_B * sizeof(int));
    r->prefill_tokens = be->alloc(be, rows * sizeof(int));
    r->emb = be->alloc(be, (size_t)max_B * C * sizeof(float));
    /* Workspace, in elements of act: per row res, res2, ln, att, proj (C each), qkv (3C), fch and
     * fchg (4C each); plus last [max_B, C] and logits [max_B, Vp]. */
    size_t per_row = 16 * C, total = rows * per_row + (size_t)max_B * (C + (size_t)c->vocab_padded);
    r->ws = be->alloc(be, total * act);
    if (!r->kcache || !r->vcache || !r->tok_buf || !r->logprob_buf || !r->pos || !r->done || !r->limit ||
        !r->gather_idx || !r->prefill_tokens || !r->emb || !r->ws) {
        rollout_destroy(r);
        return -1;
    }
    size_t off = 0;
    void **carve[] = {&r->res, &r->res2, &r->ln, &r->att, &r->proj};
    for (int i = 0; i < 5; i++, off += rows * C) *carve[i] = at(r, r->ws, off);
    r->qkv = at(r, r->ws, off), off += rows * 3 * C;
    r->fch = at(r, r->ws, off), off += rows * 4 * C;
    r->fchg = at(r, r->ws, off), off += rows * 4 * C;
    r->last = at(r, r->ws, off), off += (size_t)max_B * C;
    r->logits = at(r, r->ws, off);
    return 0;
}

void rollout_destroy(rollout_engine *r) {
    if (!r->model) return;
    exitrl_backend *be = r->model->backend;
    if (r->decode_graph) be->graph_destroy(be, r->decode_graph);
    free(r->layer_panels);
    void *ptrs[] = {r->kcache, r->vcache, r->tok_buf, r->logprob_buf, r->pos, r->done, r->limit,
                    r->gather_idx, r->prefill_tokens, r->emb, r->ws, r->panel_buf};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i]) be->free(be, ptrs[i]);
    memset(r, 0, sizeof *r);
}

int sampling_validate(const struct exitrl_sampling *sp, char *err, size_t err_len) {
    if (sp->greedy) return 0;
    if (!(sp->temperature > 0.0f) || !isfinite(sp->temperature))
        snprintf(err, err_len, "temperature = %g, must be > 0 (use greedy for argmax)", sp->temperature);
    else if (sp->top_k < 0)
        snprintf(err, err_len, "top_k = %d, must be >= 0 (0 = off)", sp->top_k);
    else if (!(sp->top_p > 0.0f && sp->top_p <= 1.0f))
        snprintf(err, err_len, "top_p = %g, must be in (0, 1]", sp->top_p);
    else
        return 0;
    return -1;
}

/* Lays the current weights out in the backend's panel layout for this generation's decode steps
 * (allocating the copy at first use). Returns 1 when decode steps use it, 0 when they multiply by
 * the weights as they are (switched off, a backend without the layout, or no memory for it). */
static int lay_out_panels(rollout_engine *r) {
    gpt_model *m = r->model;
    exitrl_backend *be = m->backend;
    if (!r->use_panels || !be->panel_weight) return 0;
    const int C = m->cfg.d_model, L = m->cfg.n_layer, Vp = m->cfg.vocab_padded;
    const size_t qkv = be->panel_weight_bytes(be, C, 3 * C), proj = be->panel_weight_bytes(be, C, C),
                 fc = be->panel_weight_bytes(be, C, 4 * C), fcproj = be->panel_weight_bytes(be, 4 * C, C),
                 layer = qkv + proj + fc + fcproj;
    if (!r->panel_buf) {
        r->layer_panels = malloc(sizeof(gpt_layer_panels) * L);
        r->panel_buf = r->layer_panels ? be->alloc(be, L * layer + be->panel_weight_bytes(be, C, Vp)) : NULL;
        if (!r->panel_buf) { /* the backend said so; decode on the weights as they are */
            free(r->layer_panels);
            r->layer_panels = NULL;
            r->use_panels = 0;
            return 0;
        }
        for (int l = 0; l < L; l++) {
            char *base = (char *)r->panel_buf + (size_t)l * layer;
            r->layer_panels[l] = (gpt_layer_panels){base, base + qkv, base + qkv + proj, base + qkv + proj + fc};
        }
        r->wte_panels = (char *)r->panel_buf + (size_t)L * layer;
    }
    for (int l = 0; l < L; l++) {
        const gpt_layer_weights w = gpt_layer(m, l);
        const gpt_layer_panels *p = &r->layer_panels[l];
        be->panel_weight(be, (void *)p->qkvw, w.qkvw, C, 3 * C);
        be->panel_weight(be, (void *)p->attprojw, w.attprojw, C, C);
        be->panel_weight(be, (void *)p->fcw, w.fcw, C, 4 * C);
        be->panel_weight(be, (void *)p->fcprojw, w.fcprojw, 4 * C, C);
    }
    be->panel_weight(be, (void *)r->wte_panels, gpt_param(m, P_WTE, 0), C, Vp);
    return 1;
}

/* Runs the transformer body over N rows already embedded in r->res and leaves the final
 * LayerNorm's output in r->ln. Prefill (start_pos NULL) stores rows [B, T] into the cache from
 * position 0 and attends causally within the rows; a decode step (T = 1) stores each row at
 * start_pos[b] and attends over the cache. Nothing is kept for a backward, so every layer reuses
 * the same buffers: res is the residual stream in and out, ln each LayerNorm's output. */
static void body_forward(rollout_engine *r, int b0, int B, int T, const int *start_pos) {
    gpt_model *m = r->model;
    const int L = m->cfg.n_layer, C = m->cfg.d_model, S = r->max_S;
    m->backend->layernorm_forward(m->backend, r->ln, NULL, NULL, r->res, gpt_param(m, P_LN1W, 0), gpt_param(m, P_LN1B, 0),
                             B * T, C);
    const gpt_block_acts a = {.residual = r->res, .ln1 = r->ln, .qkv = r->qkv, .atty = r->att,
                              .attproj = r->proj, .residual2 = r->res2, .ln2 = r->ln, .fch = r->fch,
                              .fch_gelu = r->fchg, .fcproj = r->proj, .residual3 = r->res, .ln_next = r->ln};
    for (int l = 0; l < L; l++) {
        size_t cache_off = ((size_t)l * r->max_B + b0) * S * C;
        const gpt_block_cache cache = {at(r, r->kcache, cache_off), at(r, r->vcache, cache_off), S, start_pos,
                                       r->panels_ready ? &r->layer_panels[l] : NULL};
        const gpt_layer_weights w = gpt_layer(m, l);
        gpt_block_forward(m, &w, &a, &cache, B, T);
    }
}

/* Logits of the B rows in `hidden`, then the emitting state's contribution to the embedding and one
 * sampled token per live sequence. */
static void emit(rollout_engine *r, const void *hidden, int B, const struct exitrl_sampling *sp, int seq_offset) {
    gpt_model *m = r->model;
    exitrl_backend *be = m->backend;
    const int C = m->cfg.d_model;
    if (r->panels_ready)
        be->matmul_forward_panels(be, r->logits, NULL, hidden, r->wte_panels, NULL, B, C, m->cfg.vocab_padded);
    else
        be->matmul_forward(be, r->logits, NULL, hidden, gpt_param(r->model, P_WTE, 0), NULL, B, C, m->cfg.vocab_padded);
    be->hidden_accumulate(be, r->emb, hidden, r->done, B, C);
    be->sample_step(be, r->logits, sp, r->tok_buf, r->logprob_buf, r->pos, r->done, r->limit, B, r->max_S,
                    m->cfg.vocab, m->cfg.vocab_padded, seq_offset);
}

/* One decode step for all B sequences. Every op reads its per-sequence state from backend memory
 * (positions, finished flags, tokens), so the step is the same sequence of launches each time:
 * on backends with graphs it is captured once per (B, sampling, offset, weights) and replayed. The
 * first step of a generation runs uncaptured, so lazy set-up inside ops (library handles,
 * workspaces, algorithm choice for these shapes) happens outside a capture. */
static void decode_step(rollout_engine *r, int B, const struct exitrl_sampling *sp, int seq_offset,
                        int allow_capture) {
    gpt_model *m = r->model;
    exitrl_backend *be = m->backend;
    const int C = m->cfg.d_model;
    if (be->graph_capture_begin && r->decode_graph &&
        (r->graph_B != B || r->graph_offset != seq_offset || memcmp(&r->graph_sp, sp, sizeof *sp) ||
         r->graph_params != m->params)) {
        be->graph_destroy(be, r->decode_graph);
        r->decode_graph = NULL;
    }
    if (allow_capture && be->graph_capture_begin && !r->decode_graph && !r->graph_failed) {
        if (be->graph_capture_begin(be) == 0) {
            r->graph_sp = *sp; /* the sampling parameters are read at capture time: keep them fixed */
            be->encoder_forward_at(be, r->res, r->tok_buf, r->pos, r->max_S, gpt_param(r->model, P_WTE, 0), gpt_param(r->model, P_WPE, 0),
                                   B, C);
            body_forward(r, 0, B, 1, r->pos);
            emit(r, r->ln, B, &r->graph_sp, seq_offset);
            r->decode_graph = be->graph_capture_end(be);
            r->graph_B = B;
            r->graph_offset = seq_offset;
            r->graph_params = m->params;
        }
        r->graph_failed = r->decode_graph == NULL; /* the backend said why: run uncaptured from now on */
    }
    if (r->decode_graph) {
        be->graph_launch(be, r->decode_graph);
        return;
    }
    be->encoder_forward_at(be, r->res, r->tok_buf, r->pos, r->max_S, gpt_param(r->model, P_WTE, 0), gpt_param(r->model, P_WPE, 0), B, C);
    body_forward(r, 0, B, 1, r->pos);
    emit(r, r->ln, B, sp, seq_offset);
}

/* Shared prefixes: with share_prefix on, a sequence whose prompt equals the previous sequence's
 * (same length, same ids) joins its group; each group's prompt is prefilled once. Fills lead[]
 * with the first sequence of each group ([n_groups + 1], lead[n_groups] = B) and returns n_groups. */
static int prompt_groups(const rollout_engine *r, const int *host_tok, const int *lens, int B, int *lead) {
    int n = 0;
    for (int b = 0; b < B; b++) {
        const int same = r->share_prefix && b > 0 && lens[b] == lens[b - 1] &&
                         !memcmp(host_tok + (size_t)b * r->max_S, host_tok + (size_t)(b - 1) * r->max_S,
                                 sizeof(int) * lens[b]);
        if (!same) lead[n++] = b;
    }
    lead[n] = B;
    return n;
}

/* Prefill of a chunk: the prompt of each group g (sequences lead[g] .. lead[g+1]-1) runs once, into
 * cache slot g, in batches of groups whose padded prompts fit max_prefill_rows; each sequence's
 * last prompt state goes to r->last. Then, last group first, slot g's prompt rows are copied to the
 * slots of the group's sequences (slot g <= lead[g], so no slot is overwritten before it is read).
 * With one sequence per group this is the plain prefill: no copies. */
static void prefill_chunk(rollout_engine *r, const int *host_tok, const int *lens, int B, const int *lead,
                          int n_groups, int *ptoks, int *gather) {
    gpt_model *m = r->model;
    exitrl_backend *be = m->backend;
    const int C = m->cfg.d_model, S = r->max_S;
    for (int g0 = 0; g0 < n_groups;) {
        int Tp = 0, ng = 0;
        while (g0 + ng < n_groups) {
            int t = lens[lead[g0 + ng]] > Tp ? lens[lead[g0 + ng]] : Tp;
            if ((size_t)(ng + 1) * t > (size_t)r->max_prefill_rows) break;
            Tp = t;
            ng++;
        }
        for (int g = 0; g < ng; g++) {
            const int b = lead[g0 + g], len = lens[b];
            for (int t = 0; t < Tp; t++) ptoks[g * Tp + t] = t < len ? host_tok[(size_t)b * S + t] : TOK_PAD;
            for (int j = b; j < lead[g0 + g + 1]; j++) gather[j] = g * Tp + len - 1;
        }
        const int b_first = lead[g0], n_seq = lead[g0 + ng] - b_first;
        be->upload(be, r->prefill_tokens, ptoks, sizeof(int) * (size_t)ng * Tp);
        be->upload(be, r->gather_idx, gather + b_first, sizeof(int) * n_seq);
        be->encoder_forward(be, r->res, r->prefill_tokens, gpt_param(r->model, P_WTE, 0), gpt_param(r->model, P_WPE, 0), ng, Tp, C);
        body_forward(r, g0, ng, Tp, NULL);
        be->gather_rows(be, at(r, r->last, (size_t)b_first * C), r->ln, r->gather_idx, n_seq, C);
        g0 += ng;
    }
    const size_t act = exitrl_dtype_size(be->act_dtype);
    for (int g = n_groups - 1; g >= 0; g--)
        for (int b = lead[g]; b < lead[g + 1]; b++) {
            if (b == g) continue;
            const size_t bytes = (size_t)lens[b] * C * act;
            for (int l = 0; l < m->cfg.n_layer; l++) {
                const size_t layer = (size_t)l * r->max_B * S * C;
                be->copy(be, at(r, r->kcache, layer + (size_t)b * S * C), at(r, r->kcache, layer + (size_t)g * S * C), bytes);
                be->copy(be, at(r, r->vcache, layer + (size_t)b * S * C), at(r, r->vcache, layer + (size_t)g * S * C), bytes);
            }
        }
}

/* One chunk of at most max_B sequences whose prompts are in host_tok rows of stride max_S. */
static void generate_chunk(rollout_engine *r, int *host_tok, const int *lens, int B, int max_new,
                           const struct exitrl_sampling *sp, int seq_offset, int *host_pos, int *host_done) {
    gpt_model *m = r->model;
    exitrl_backend *be = m->backend;
    const int C = m->cfg.d_model, S = r->max_S;
    int *limit = malloc(sizeof(int) * B), *gather = malloc(sizeof(int) * B), *lead = malloc(sizeof(int) * (B + 1));
    int *ptoks = malloc(sizeof(int) * r->max_prefill_rows);
    if (!limit || !gather || !lead || !ptoks) {
        fprintf(stderr, "exitrl: out of host memory in rollout\n");
        exit(1);
    }
    for (int b = 0; b < B; b++) {
        host_pos[b] = lens[b] - 1;
        host_done[b] = 0;
        limit[b] = lens[b] + max_new < S ? lens[b] + max_new : S;
    }
    be->upload(be, r->tok_buf, host_tok, sizeof(int) * (size_t)B * S);
    be->upload(be, r->pos, host_pos, sizeof(int) * B);
    be->upload(be, r->done, host_done, sizeof(int) * B);
    be->upload(be, r->limit, limit, sizeof(int) * B);
    be->zero(be, r->emb, sizeof(float) * (size_t)B * C);
    be->zero(be, r->logprob_buf, sizeof(float) * (size_t)B * S);

    nvtx_push("prefill");
    prefill_chunk(r, host_tok, lens, B, lead, prompt_groups(r, host_tok, lens, B, lead), ptoks, gather);
    emit(r, r->last, B, sp, seq_offset);
    nvtx_pop();

    nvtx_push("decode");
    for (int step = 1; step < max_new; step++) {
        if (step % r->done_check_interval == 0) {
            be->download(be, host_done, r->done, sizeof(int) * B);
            int live = 0;
            for (int b = 0; b < B; b++) live += !host_done[b];
            if (!live) break;
        }
        decode_step(r, B, sp, seq_offset, step > 1);
    }
    nvtx_pop();
    be->download(be, host_pos, r->pos, sizeof(int) * B);
    be->download(be, host_done, r->done, sizeof(int) * B);
    free(limit);
    free(gather);
    free(lead);
    free(ptoks);
}

/* Sequences decoded together: max_B, or fewer where the backend asks for the KV cache of a chunk
 * (need_S positions) to stay within decode_cache_bytes: a multiple of 64 that fits, at least 64
 * (ops.h). */
static int decode_chunk(const rollout_engine *r, int need_S) {
    const gpt_model *m = r->model;
    size_t per_seq = 2 * (size_t)m->cfg.n_layer * need_S * m->cfg.d_model * exitrl_dtype_size(m->backend->act_dtype);
    size_t budget = m->backend->decode_cache_bytes;
    if (budget == 0) return r->max_B;
    size_t fit = budget / (64 * per_seq) * 64;
    if (fit < 64) fit = 64;
    return fit < (size_t)r->max_B ? (int)fit : r->max_B;
}

int rollout_output_alloc(rollout_output *o, int B, int S, int C) {
    memset(o, 0, sizeof *o);
    o->B = B, o->S = S, o->C = C;
    o->tokens = malloc(sizeof(int) * (size_t)B * S);
    o->logprobs = malloc(sizeof(float) * (size_t)B * S);
    o->prompt_len = malloc(sizeof(int) * B);
    o->gen_len = malloc(sizeof(int) * B);
    o->hit_eos = malloc(sizeof(int) * B);
    o->embed = malloc(sizeof(float) * (size_t)B * C);
    if (!o->tokens || !o->logprobs || !o->prompt_len || !o->gen_len || !o->hit_eos || !o->embed) {
        rollout_output_free(o);
        fprintf(stderr, "exitrl: out of host memory for %d rollouts of %d tokens\n", B, S);
        return -1;
    }
    return 0;
}

void rollout_output_free(rollout_output *o) {
    free(o->tokens);
    free(o->logprobs);
    free(o->prompt_len);
    free(o->gen_len);
    free(o->hit_eos);
    free(o->embed);
    memset(o, 0, sizeof *o);
}

int rollout_generate(rollout_engine *r, const int *prompts, const int *prompt_lens, int prompt_stride,
                     int B, int max_new, const struct exitrl_sampling *sp, int seq_offset,
                     rollout_output *out, char *err, size_t err_len) {
    gpt_model *m = r->model;
    exitrl_backend *be = m->backend;
    const int C = m->cfg.d_model, S = r->max_S;
    if (B < 1) return snprintf(err, err_len, "empty batch: no prompts to generate from"), -1;
    if (max_new < 1) return snprintf(err, err_len, "max_new_tokens = %d, must be >= 1", max_new), -1;
    if (sampling_validate(sp, err, err_len)) return -1;
    if (sp->eos < 0 || sp->eos >= m->cfg.vocab) return snprintf(err, err_len, "eos id %d outside the vocabulary", sp->eos), -1;
    int max_len = 0;
    for (int b = 0; b < B; b++) {
        int len = prompt_lens[b];
        if (len < 1) return snprintf(err, err_len, "prompt %d is empty", b), -1;
        if (len >= S)
            return snprintf(err, err_len, "prompt %d has %d tokens; the context (rollout capacity %d, model max_seq %d) "
                            "leaves no room to generate", b, len, S, m->cfg.max_seq), -1;
        for (int t = 0; t < len; t++) {
            int id = prompts[(size_t)b * prompt_stride + t];
            if (id < 0 || id >= m->cfg.vocab)
                return snprintf(err, err_len, "prompt %d token %d has id %d outside [0, %d)", b, t, id, m->cfg.vocab), -1;
        }
        max_len = len > max_len ? len : max_len;
    }
    int need_S = max_len + max_new < S ? max_len + max_new : S;
    if (out->B < B || out->S < need_S || out->C != C)
        return snprintf(err, err_len, "rollout output holds %d x %d (C %d), needs %d x %d (C %d)", out->B, out->S,
                        out->C, B, need_S, C), -1;
    int *host_tok = malloc(sizeof(int) * (size_t)r->max_B * S);
    float *host_lp = malloc(sizeof(float) * (size_t)r->max_B * S);
    float *host_emb = malloc(sizeof(float) * (size_t)r->max_B * C);
    int *host_pos = malloc(sizeof(int) * r->max_B), *host_done = malloc(sizeof(int) * r->max_B);
    if (!host_tok || !host_lp || !host_emb || !host_pos || !host_done) {
        free(host_tok), free(host_lp), free(host_emb), free(host_pos), free(host_done);
        return snprintf(err, err_len, "out of host memory for rollouts"), -1;
    }
    int chunk = decode_chunk(r, need_S);
    nvtx_push("rollout");
    r->panels_ready = lay_out_panels(r);
    for (int c0 = 0; c0 < B; c0 += chunk) {
        int nb = B - c0 < chunk ? B - c0 : chunk;
        for (size_t i = 0; i < (size_t)nb * S; i++) host_tok[i] = TOK_PAD;
        for (int b = 0; b < nb; b++)
            memcpy(host_tok + (size_t)b * S, prompts + (size_t)(c0 + b) * prompt_stride, sizeof(int) * prompt_lens[c0 + b]);
        generate_chunk(r, host_tok, prompt_lens + c0, nb, max_new, sp, seq_offset + c0, host_pos, host_done);
        be->download(be, host_tok, r->tok_buf, sizeof(int) * (size_t)nb * S);
        be->download(be, host_lp, r->logprob_buf, sizeof(float) * (size_t)nb * S);
        be->download(be, host_emb, r->emb, sizeof(float) * (size_t)nb * C);
        for (int b = 0; b < nb; b++) {
            int ob = c0 + b, len = prompt_lens[ob], end = host_pos[b] + 1;
            for (int t = 0; t < out->S; t++) {
                int keep = t < end && t < S;
                out->tokens[(size_t)ob * out->S + t] = keep ? host_tok[(size_t)b * S + t] : TOK_PAD;
                out->logprobs[(size_t)ob * out->S + t] = keep && t >= len ? host_lp[(size_t)b * S + t] : 0.0f;
            }
            out->prompt_len[ob] = len;
            out->gen_len[ob] = end - len;
            out->hit_eos[ob] = host_tok[(size_t)b * S + end - 1] == sp->eos;
            for (int c = 0; c < C; c++) out->embed[(size_t)ob * C + c] = host_emb[(size_t)b * C + c] / (end - len);
        }
    }
    nvtx_pop();
    r->panels_ready = 0; /* the weights may change before the next generation lays them out again */
    free(host_tok), free(host_lp), free(host_emb), free(host_pos), free(host_done);
    return 0;
}
