/* GPT-2 policy: parameters, activations, the transformer block, forward and backward, through the
 * backend only. The optimizer step lives in optimizer.c. */
#include "model/model.h"
#include "model/model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/nvtx.h"
#include "model/rng.h"
#include "model/tokenizer.h"

typedef struct {
    const char *name;
    gpt_config cfg;
} gpt_preset;

/* tiny: ~1M parameters, the CPU demo and test size. small: ~11M, the GPU default for ExIt runs.
 * gpt2-124m: GPT-2 small's shape with our byte vocabulary (benchmarks compare per-token work). */
static const gpt_preset presets[] = {
    {"tiny", {4, 4, 128, 256, EXITRL_VOCAB, EXITRL_VOCAB_PADDED}},
    {"small", {6, 6, 384, 512, EXITRL_VOCAB, EXITRL_VOCAB_PADDED}},
    {"gpt2-124m", {12, 12, 768, 1024, EXITRL_VOCAB, EXITRL_VOCAB_PADDED}},
};

int gpt_config_preset(const char *name, gpt_config *cfg) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) {
            *cfg = presets[i].cfg;
            return 0;
        }
    fprintf(stderr, "exitrl: unknown model size '%s' (known: tiny, small, gpt2-124m)\n", name);
    return -1;
}

int gpt_config_validate(const gpt_config *c, char *why, size_t why_len) {
    if (c->n_layer < 1 || c->n_layer > 256)
        snprintf(why, why_len, "n_layer = %d, must be in [1, 256]", c->n_layer);
    else if (c->n_head < 1 || c->d_model < 1 || c->d_model % c->n_head)
        snprintf(why, why_len, "d_model = %d must be a positive multiple of n_head = %d", c->d_model,
                 c->n_head);
    else if (c->d_model > 16384)
        snprintf(why, why_len, "d_model = %d, must be at most 16384", c->d_model);
    else if (c->max_seq < 2 || c->max_seq > 65536)
        snprintf(why, why_len, "max_seq = %d, must be in [2, 65536]", c->max_seq);
    else if (c->vocab < 1 || c->vocab_padded < c->vocab)
        snprintf(why, why_len, "vocab_padded = %d must be at least vocab = %d", c->vocab_padded,
                 c->vocab);
    else
        return 0;
    return -1;
}

static void param_sizes(const gpt_config *c, size_t *sz) {
    size_t L = c->n_layer, C = c->d_model, Vp = c->vocab_padded, T = c->max_seq;
    sz[P_WTE] = Vp * C;
    sz[P_WPE] = T * C;
    sz[P_LN1W] = L * C;
    sz[P_LN1B] = L * C;
    sz[P_QKVW] = L * 3 * C * C;
    sz[P_QKVB] = L * 3 * C;
    sz[P_ATTPROJW] = L * C * C;
    sz[P_ATTPROJB] = L * C;
    sz[P_LN2W] = L * C;
    sz[P_LN2B] = L * C;
    sz[P_FCW] = L * 4 * C * C;
    sz[P_FCB] = L * 4 * C;
    sz[P_FCPROJW] = L * C * 4 * C;
    sz[P_FCPROJB] = L * C;
    sz[P_LNFW] = C;
    sz[P_LNFB] = C;
}

size_t gpt_num_params(const gpt_config *cfg) {
    size_t sz[GPT_NUM_PARAM_TENSORS], n = 0;
    param_sizes(cfg, sz);
    for (int i = 0; i < GPT_NUM_PARAM_TENSORS; i++) n += sz[i];
    return n;
}

/* The activation tensors, in carving order: element counts and whether each is fp32. */
enum { A_COUNT = 38 };
static void act_layout(const gpt_config *c, int B, int T, size_t *n, int *is_f32) {
    size_t L = c->n_layer, C = c->d_model, NH = c->n_head, BT = (size_t)B * T;
    size_t spec[A_COUNT][2] = {
        {BT * C, 0},          /* encoded */
        {L * BT * C, 0},      /* ln1 */
        {L * BT, 1},          /* ln1_mean */
        {L * BT, 1},          /* ln1_rstd */
        {L * BT * 3 * C, 0},  /* qkv */
        {L * BT * C, 0},      /* atty */
        {L * B * NH * T, 1},  /* att_lse */
        {L * BT * C, 0},      /* attproj */
        {L * BT * C, 0},      /* residual2 */
        {L * BT * C, 0},      /* ln2 */
        {L * BT, 1},          /* ln2_mean */
        {L * BT, 1},          /* ln2_rstd */
        {L * BT * 4 * C, 0},  /* fch */
        {L * BT * 4 * C, 0},  /* fch_gelu */
        {L * BT * C, 0},      /* fcproj */
        {L * BT * C, 0},      /* residual3 */
        {BT * C, 0},          /* lnf */
        {BT, 1},              /* lnf_mean */
        {BT, 1},              /* lnf_rstd */
        {BT * c->vocab_padded, 0}, /* logits */
        {BT, 1},              /* losses */
        {BT * C, 0},          /* dresidual */
        {BT * C, 0},          /* dbuf_c */
        {BT * 3 * C, 0},      /* dbuf_3c */
        {BT * 4 * C, 0},      /* dbuf_4c */
        {BT, 1},              /* tokens (int32, 4 bytes) */
        {BT, 1},              /* targets */
        {BT, 1},              /* loss_weights */
        {BT, 1},              /* lp_old */
        {BT, 1},              /* lp_ref */
        {BT, 1},              /* adv */
        {BT, 1},              /* lp_new */
        {BT, 1},              /* loss_tok */
        {BT, 1},              /* clipped */
        {BT, 1},              /* positions (int32) */
        {BT, 1},              /* seg_start (int32) */
        {BT, 1},              /* prefix_len (int32; B used) */
        {C, 1},               /* enc_scratch */
    };
    for (int i = 0; i < A_COUNT; i++) {
        n[i] = spec[i][0];
        is_f32[i] = (int)spec[i][1];
    }
}

static size_t align_up(size_t x) { return (x + 255) & ~(size_t)255; }

size_t gpt_activation_bytes(const gpt_config *cfg, exitrl_dtype act, int B, int T) {
    size_t n[A_COUNT], total = 0;
    int f32[A_COUNT];
    act_layout(cfg, B, T, n, f32);
    for (int i = 0; i < A_COUNT; i++) total += align_up(n[i] * (f32[i] ? 4 : exitrl_dtype_size(act)));
    return total;
}

int gpt_create(gpt_model *m, exitrl_backend *be, const gpt_config *cfg, int B, int T) {
    char why[160];
    memset(m, 0, sizeof *m);
    if (gpt_config_validate(cfg, why, sizeof why)) {
        fprintf(stderr, "exitrl: invalid model config: %s\n", why);
        return -1;
    }
    if (B < 1 || T < 1 || T > cfg->max_seq) {
        fprintf(stderr, "exitrl: batch %d x %d does not fit the model (need B >= 1, 1 <= T <= %d)\n",
                B, T, cfg->max_seq);
        return -1;
    }
    m->cfg = *cfg;
    m->backend = be;
    m->max_B = B;
    m->max_T = T;
    param_sizes(cfg, m->param_sizes);
    for (int i = 0; i < GPT_NUM_PARAM_TENSORS; i++) {
        m->param_offsets[i] = m->num_params;
        m->num_params += m->param_sizes[i];
    }
    size_t pbytes = m->num_params * sizeof(float);
    m->master = be->alloc(be, pbytes);
    m->grads = be->alloc(be, pbytes);
    m->adam_m = be->alloc(be, pbytes);
    m->adam_v = be->alloc(be, pbytes);
    if (be->act_dtype == EXITRL_F32)
        m->params = m->master;
    else
        m->params = be->alloc(be, m->num_params * exitrl_dtype_size(be->act_dtype));
    m->acts_mem = be->alloc(be, gpt_activation_bytes(cfg, be->act_dtype, B, T));
    m->step_vals = be->alloc(be, EXITRL_STEP_NVALS * sizeof(float));
    if (!m->master || !m->grads || !m->adam_m || !m->adam_v || !m->params || !m->acts_mem || !m->step_vals) {
        gpt_destroy(m);
        return -1;
    }

    size_t n[A_COUNT];
    int f32[A_COUNT];
    act_layout(cfg, B, T, n, f32);
    void **slots[A_COUNT] = {
        &m->acts.encoded,   &m->acts.ln1,       (void **)&m->acts.ln1_mean, (void **)&m->acts.ln1_rstd,
        &m->acts.qkv,       &m->acts.atty,      (void **)&m->acts.att_lse,  &m->acts.attproj,
        &m->acts.residual2, &m->acts.ln2,       (void **)&m->acts.ln2_mean, (void **)&m->acts.ln2_rstd,
        &m->acts.fch,       &m->acts.fch_gelu,  &m->acts.fcproj,            &m->acts.residual3,
        &m->acts.lnf,       (void **)&m->acts.lnf_mean, (void **)&m->acts.lnf_rstd, &m->acts.logits,
        (void **)&m->acts.losses, &m->acts.dresidual, &m->acts.dbuf_c, &m->acts.dbuf_3c,
        &m->acts.dbuf_4c,   (void **)&m->acts.tokens, (void **)&m->acts.targets,
        (void **)&m->acts.loss_weights, (void **)&m->acts.lp_old, (void **)&m->acts.lp_ref,
        (void **)&m->acts.adv, (void **)&m->acts.lp_new, (void **)&m->acts.loss_tok,
        (void **)&m->acts.clipped, (void **)&m->acts.positions, (void **)&m->acts.seg_start,
        (void **)&m->acts.prefix_len, (void **)&m->acts.enc_scratch};
    char *p = m->acts_mem;
    for (int i = 0; i < A_COUNT; i++) {
        *slots[i] = p;
        p += align_up(n[i] * (f32[i] ? 4 : exitrl_dtype_size(be->act_dtype)));
    }
    return 0;
}

void gpt_destroy(gpt_model *m) {
    exitrl_backend *be = m->backend;
    if (!be) return;
    if (m->step_graph) be->graph_destroy(be, m->step_graph);
    if (m->params && m->params != m->master) be->free(be, m->params);
    be->free(be, m->master);
    be->free(be, m->grads);
    be->free(be, m->adam_m);
    be->free(be, m->adam_v);
    be->free(be, m->acts_mem);
    be->free(be, m->step_vals);
    memset(m, 0, sizeof *m);
}

void gpt_load_params(gpt_model *m, const float *host_params) {
    exitrl_backend *be = m->backend;
    be->upload(be, m->master, host_params, m->num_params * sizeof(float));
    be->f32_to_act(be, m->params, m->master, m->num_params);
}

void gpt_init_random(gpt_model *m, uint64_t seed) {
    const gpt_config *c = &m->cfg;
    float *w = calloc(m->num_params, sizeof(float));
    if (!w) {
        fprintf(stderr, "exitrl: out of host memory initialising %zu parameters\n", m->num_params);
        exit(1);
    }
    rng_state r;
    rng_seed(&r, seed);
    float resid_std = 0.02f / sqrtf(2.0f * c->n_layer);
    for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++) {
        float *p = w + m->param_offsets[t];
        size_t n = m->param_sizes[t];
        switch (t) {
        case P_LN1W: case P_LN2W: case P_LNFW:
            for (size_t i = 0; i < n; i++) p[i] = 1.0f;
            break;
        case P_WTE: /* the padded rows stay 0: no token ever selects them */
            n = (size_t)c->vocab * c->d_model;
            for (size_t i = 0; i < n; i++) p[i] = 0.02f * rng_normal(&r);
            break;
        case P_WPE: case P_QKVW: case P_FCW:
            for (size_t i = 0; i < n; i++) p[i] = 0.02f * rng_normal(&r);
            break;
        case P_ATTPROJW: case P_FCPROJW:
            for (size_t i = 0; i < n; i++) p[i] = resid_std * rng_normal(&r);
            break;
        default: /* biases */
            break;
        }
    }
    gpt_load_params(m, w);
    free(w);
}

void gpt_set_batch(gpt_model *m, const int *tokens, const int *targets, const float *loss_weights,
                   int B, int T) {
    exitrl_backend *be = m->backend;
    size_t BT = (size_t)B * T;
    float *w = malloc(BT * sizeof(float));
    if (!w) {
        fprintf(stderr, "exitrl: out of host memory for a batch of %zu tokens\n", BT);
        exit(1);
    }
    if (loss_weights) {
        memcpy(w, loss_weights, BT * sizeof(float));
    } else {
        size_t count = 0;
        for (size_t i = 0; i < BT; i++) count += targets[i] >= 0;
        for (size_t i = 0; i < BT; i++) w[i] = targets[i] >= 0 && count ? 1.0f / count : 0.0f;
    }
    be->upload(be, m->acts.tokens, tokens, BT * sizeof(int));
    be->upload(be, m->acts.targets, targets, BT * sizeof(int));
    be->upload(be, m->acts.loss_weights, w, BT * sizeof(float));
    free(w);
}

void *gpt_act_at(const gpt_model *m, const void *base, size_t index) {
    return (char *)base + index * exitrl_dtype_size(m->backend->act_dtype);
}
void *gpt_param(const gpt_model *m, int t, size_t index) {
    return gpt_act_at(m, m->params, m->param_offsets[t] + index);
}
static float *grad(const gpt_model *m, int t, size_t index) {
    return m->grads + m->param_offsets[t] + index;
}

/* Every activation tensor is a multiple of B*T elements, so any batch with B*T within the capacity
 * (and T within the context) fits the same buffers. */
int gpt_batch_fits(const gpt_model *m, int B, int T) {
    return B >= 1 && T >= 1 && T <= m->cfg.max_seq && (long long)B * T <= (long long)m->max_B * m->max_T;
}

int gpt_packed_fits(const gpt_model *m, int B, int T) {
    return B >= 1 && T >= 1 && (long long)B * T <= (long long)m->max_B * m->max_T;
}

void gpt_check_batch(const gpt_model *m, int B, int T) {
    if (!(m->packed ? gpt_packed_fits(m, B, T) : gpt_batch_fits(m, B, T))) {
        fprintf(stderr, "exitrl: internal error: batch %d x %d exceeds the model's capacity of %d x %d tokens\n",
                B, T, m->max_B, m->max_T);
        abort();
    }
}

gpt_layer_weights gpt_layer(const gpt_model *m, int l) {
    const size_t C = m->cfg.d_model, i = (size_t)l;
    const int last = l + 1 == m->cfg.n_layer;
    return (gpt_layer_weights){
        gpt_param(m, P_LN1W, i * C), gpt_param(m, P_LN1B, i * C),
        gpt_param(m, P_QKVW, i * 3 * C * C), gpt_param(m, P_QKVB, i * 3 * C),
        gpt_param(m, P_ATTPROJW, i * C * C), gpt_param(m, P_ATTPROJB, i * C),
        gpt_param(m, P_LN2W, i * C), gpt_param(m, P_LN2B, i * C),
        gpt_param(m, P_FCW, i * 4 * C * C), gpt_param(m, P_FCB, i * 4 * C),
        gpt_param(m, P_FCPROJW, i * 4 * C * C), gpt_param(m, P_FCPROJB, i * C),
        last ? gpt_param(m, P_LNFW, 0) : gpt_param(m, P_LN1W, (i + 1) * C),
        last ? gpt_param(m, P_LNFB, 0) : gpt_param(m, P_LN1B, (i + 1) * C),
    };
}

/* matmul_forward, or matmul_forward_panels when the weight's panel copy is given. */
static void matmul(exitrl_backend *be, const void *wpanels, void *out, void *pre_gelu, const void *inp,
                   const void *w, const void *bias, int N, int C, int OC) {
    if (wpanels)
        be->matmul_forward_panels(be, out, pre_gelu, inp, wpanels, bias, N, C, OC);
    else
        be->matmul_forward(be, out, pre_gelu, inp, w, bias, N, C, OC);
}

void gpt_block_forward(gpt_model *m, const gpt_layer_weights *w, const gpt_block_acts *a,
                       const gpt_block_cache *cache, int B, int T) {
    exitrl_backend *be = m->backend;
    const int C = m->cfg.d_model, NH = m->cfg.n_head, N = B * T;
    const gpt_layer_panels *p = cache && cache->start_pos ? cache->panels : NULL;
    matmul(be, p ? p->qkvw : NULL, a->qkv, NULL, a->ln1, w->qkvw, w->qkvb, N, C, 3 * C);
    if (cache) be->kv_cache_store(be, cache->k, cache->v, a->qkv, cache->start_pos, B, T, cache->S, C);
    if (cache && cache->start_pos)
        be->attention_decode(be, a->atty, a->qkv, cache->k, cache->v, cache->start_pos, B, cache->S, C, NH);
    else if (a->prefix_len)
        be->attention_forward_packed(be, a->atty, a->att_lse, a->qkv, a->prefix_len, a->seg_start, B, T, C, NH);
    else
        be->attention_forward(be, a->atty, a->att_lse, a->qkv, B, T, C, NH);
    matmul(be, p ? p->attprojw : NULL, a->attproj, NULL, a->atty, w->attprojw, w->attprojb, N, C, C);
    be->residual_layernorm_forward(be, a->residual2, a->ln2, a->ln2_mean, a->ln2_rstd, a->residual, a->attproj,
                                   w->ln2w, w->ln2b, N, C);
    matmul(be, p ? p->fcw : NULL, a->fch_gelu, a->fch, a->ln2, w->fcw, w->fcb, N, C, 4 * C);
    matmul(be, p ? p->fcprojw : NULL, a->fcproj, NULL, a->fch_gelu, w->fcprojw, w->fcprojb, N, 4 * C, C);
    /* The next layer's LayerNorm (or the final one) is fused with this residual add. */
    be->residual_layernorm_forward(be, a->residual3, a->ln_next, a->ln_next_mean, a->ln_next_rstd, a->residual2,
                                   a->fcproj, w->next_lnw, w->next_lnb, N, C);
}

/* Layer l's slices of the training activations (gpt_acts holds every layer, for the backward). */
static gpt_block_acts training_block(gpt_model *m, int l, int B, int T) {
    gpt_acts *a = &m->acts;
    const int L = m->cfg.n_layer, NH = m->cfg.n_head, N = B * T;
    const size_t BTC = (size_t)N * m->cfg.d_model, i = (size_t)l;
    const int last = l + 1 == L;
    return (gpt_block_acts){
        .residual = l == 0 ? a->encoded : gpt_act_at(m, a->residual3, (i - 1) * BTC),
        .ln1 = gpt_act_at(m, a->ln1, i * BTC),
        .qkv = gpt_act_at(m, a->qkv, i * 3 * BTC),
        .atty = gpt_act_at(m, a->atty, i * BTC),
        .att_lse = a->att_lse + i * B * NH * T,
        .attproj = gpt_act_at(m, a->attproj, i * BTC),
        .residual2 = gpt_act_at(m, a->residual2, i * BTC),
        .ln2 = gpt_act_at(m, a->ln2, i * BTC),
        .ln2_mean = a->ln2_mean + i * N,
        .ln2_rstd = a->ln2_rstd + i * N,
        .fch = gpt_act_at(m, a->fch, i * 4 * BTC),
        .fch_gelu = gpt_act_at(m, a->fch_gelu, i * 4 * BTC),
        .fcproj = gpt_act_at(m, a->fcproj, i * BTC),
        .residual3 = gpt_act_at(m, a->residual3, i * BTC),
        .ln_next = last ? a->lnf : gpt_act_at(m, a->ln1, (i + 1) * BTC),
        .ln_next_mean = last ? a->lnf_mean : a->ln1_mean + (i + 1) * N,
        .ln_next_rstd = last ? a->lnf_rstd : a->ln1_rstd + (i + 1) * N,
        .prefix_len = m->packed ? a->prefix_len : NULL,
        .seg_start = m->packed ? a->seg_start : NULL,
    };
}

/* Runs every layer and the final LayerNorm + logits; does not touch the loss. */
void gpt_forward_body(gpt_model *m, int B, int T) {
    exitrl_backend *be = m->backend;
    gpt_acts *a = &m->acts;
    const int C = m->cfg.d_model, N = B * T;
    nvtx_push("forward");
    if (m->packed) { /* wte[token] + wpe[position], the sum fused with the first LayerNorm */
        be->gather_rows(be, a->dbuf_c, gpt_param(m, P_WTE, 0), a->tokens, N, C);
        be->gather_rows(be, a->dresidual, gpt_param(m, P_WPE, 0), a->positions, N, C);
        be->residual_layernorm_forward(be, a->encoded, a->ln1, a->ln1_mean, a->ln1_rstd, a->dbuf_c, a->dresidual,
                                       gpt_param(m, P_LN1W, 0), gpt_param(m, P_LN1B, 0), N, C);
    } else {
        be->encoder_forward(be, a->encoded, a->tokens, gpt_param(m, P_WTE, 0), gpt_param(m, P_WPE, 0), B, T, C);
        be->layernorm_forward(be, a->ln1, a->ln1_mean, a->ln1_rstd, a->encoded, gpt_param(m, P_LN1W, 0),
                              gpt_param(m, P_LN1B, 0), N, C);
    }
    for (int l = 0; l < m->cfg.n_layer; l++) {
        nvtx_push("layer");
        gpt_layer_weights w = gpt_layer(m, l);
        gpt_block_acts ba = training_block(m, l, B, T);
        gpt_block_forward(m, &w, &ba, NULL, B, T);
        nvtx_pop();
    }
    be->matmul_forward(be, a->logits, NULL, a->lnf, gpt_param(m, P_WTE, 0), NULL, N, C, m->cfg.vocab_padded);
    nvtx_pop();
}

void gpt_forward(gpt_model *m, int B, int T) {
    gpt_check_batch(m, B, T);
    gpt_forward_body(m, B, T);
    m->backend->classifier_forward_backward(m->backend, m->acts.logits, m->acts.losses, NULL, m->acts.targets,
                                       B * T, m->cfg.vocab, m->cfg.vocab_padded);
}

float gpt_weighted_loss(gpt_model *m, int B, int T) {
    size_t BT = (size_t)B * T;
    float *buf = malloc(2 * BT * sizeof(float));
    if (!buf) {
        fprintf(stderr, "exitrl: out of host memory reading %zu losses\n", BT);
        exit(1);
    }
    m->backend->download(m->backend, buf, m->acts.losses, BT * sizeof(float));
    m->backend->download(m->backend, buf + BT, m->acts.loss_weights, BT * sizeof(float));
    double s = 0.0;
    for (size_t i = 0; i < BT; i++) s += (double)buf[i] * buf[BT + i];
    free(buf);
    return (float)s;
}

/* Layer l's gradient slices, in the layout of gpt_layer_weights. */
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} layer_grads;

static layer_grads layer_grad(const gpt_model *m, int l) {
    const size_t C = m->cfg.d_model, i = (size_t)l;
    return (layer_grads){
        grad(m, P_LN1W, i * C), grad(m, P_LN1B, i * C),
        grad(m, P_QKVW, i * 3 * C * C), grad(m, P_QKVB, i * 3 * C),
        grad(m, P_ATTPROJW, i * C * C), grad(m, P_ATTPROJB, i * C),
        grad(m, P_LN2W, i * C), grad(m, P_LN2B, i * C),
        grad(m, P_FCW, i * 4 * C * C), grad(m, P_FCB, i * 4 * C),
        grad(m, P_FCPROJW, i * 4 * C * C), grad(m, P_FCPROJB, i * C),
    };
}

/* Backward from the dlogits left in the logits buffer by a fused classifier; accumulates grads. */
void gpt_backward_body(gpt_model *m, int B, int T) {
    exitrl_backend *be = m->backend;
    gpt_acts *a = &m->acts;
    const int L = m->cfg.n_layer, C = m->cfg.d_model, NH = m->cfg.n_head, N = B * T;
    const size_t BTC = (size_t)N * C;
    nvtx_push("backward");
    be->zero(be, a->dresidual, BTC * exitrl_dtype_size(be->act_dtype));
    be->matmul_backward(be, a->dbuf_c, grad(m, P_WTE, 0), NULL, a->logits, a->lnf, gpt_param(m, P_WTE, 0),
                        NULL, N, C, m->cfg.vocab_padded);
    be->layernorm_backward(be, a->dresidual, grad(m, P_LNFW, 0), grad(m, P_LNFB, 0), a->dbuf_c,
                           gpt_act_at(m, a->residual3, (L - 1) * BTC), gpt_param(m, P_LNFW, 0), a->lnf_mean,
                           a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        nvtx_push("layer");
        const gpt_layer_weights w = gpt_layer(m, l);
        const layer_grads g = layer_grad(m, l);
        const gpt_block_acts x = training_block(m, l, B, T);
        const float *ln1_mean = a->ln1_mean + (size_t)l * N, *ln1_rstd = a->ln1_rstd + (size_t)l * N;
        /* Here dresidual is the gradient w.r.t. residual3[l] = residual2[l] + fcproj[l]. */
        be->matmul_backward(be, a->dbuf_4c, g.fcprojw, g.fcprojb, a->dresidual, x.fch_gelu, w.fcprojw, NULL, N,
                            4 * C, C);
        be->matmul_backward(be, a->dbuf_c, g.fcw, g.fcb, a->dbuf_4c, x.ln2, w.fcw, x.fch, N, C, 4 * C);
        be->layernorm_backward(be, a->dresidual, g.ln2w, g.ln2b, a->dbuf_c, x.residual2, w.ln2w, x.ln2_mean,
                               x.ln2_rstd, N, C);
        /* Now dresidual is the gradient w.r.t. residual2[l] = residual + attproj[l]. */
        be->matmul_backward(be, a->dbuf_c, g.attprojw, g.attprojb, a->dresidual, x.atty, w.attprojw, NULL, N, C,
                            C);
        if (m->packed)
            be->attention_backward_packed(be, a->dbuf_3c, a->dbuf_c, x.qkv, x.atty, x.att_lse, a->prefix_len,
                                          a->seg_start, B, T, C, NH);
        else
            be->attention_backward(be, a->dbuf_3c, a->dbuf_c, x.qkv, x.atty, x.att_lse, B, T, C, NH);
        be->matmul_backward(be, a->dbuf_c, g.qkvw, g.qkvb, a->dbuf_3c, x.ln1, w.qkvw, NULL, N, C, 3 * C);
        be->layernorm_backward(be, a->dresidual, g.ln1w, g.ln1b, a->dbuf_c, x.residual, w.ln1w, ln1_mean,
                               ln1_rstd, N, C);
        nvtx_pop();
    }
    if (m->packed) { /* scatter-adds by token and by position (ops.h encoder_backward with T = 1) */
        be->encoder_backward(be, grad(m, P_WTE, 0), a->enc_scratch, a->dresidual, a->tokens, N, 1, C);
        be->encoder_backward(be, grad(m, P_WPE, 0), a->enc_scratch, a->dresidual, a->positions, N, 1, C);
    } else {
        be->encoder_backward(be, grad(m, P_WTE, 0), grad(m, P_WPE, 0), a->dresidual, a->tokens, B, T, C);
    }
    nvtx_pop();
}

float gpt_forward_backward(gpt_model *m, int B, int T) {
    gpt_check_batch(m, B, T);
    gpt_forward_body(m, B, T);
    /* The classifier turns logits into dlogits in place: the probabilities are never stored twice. */
    m->backend->classifier_forward_backward(m->backend, m->acts.logits, m->acts.losses, m->acts.loss_weights,
                                       m->acts.targets, B * T, m->cfg.vocab, m->cfg.vocab_padded);
    gpt_backward_body(m, B, T);
    return gpt_weighted_loss(m, B, T);
}

int gpt_set_packing(gpt_model *m, const int *positions, const int *seg_start, const int *prefix_len, int B, int T) {
    exitrl_backend *be = m->backend;
    if (!positions) {
        m->packed = 0;
        return 0;
    }
    if (!be->attention_forward_packed || !be->attention_backward_packed) return -1;
    const size_t BT = (size_t)B * T;
    for (size_t i = 0; i < BT; i++)
        if (positions[i] < 0 || positions[i] >= m->cfg.max_seq) {
            fprintf(stderr, "exitrl: internal error: packed position %d outside [0, %d)\n", positions[i], m->cfg.max_seq);
            abort();
        }
    m->packed = 1;
    gpt_check_batch(m, B, T);
    be->upload(be, m->acts.positions, positions, BT * sizeof(int));
    be->upload(be, m->acts.seg_start, seg_start, BT * sizeof(int));
    be->upload(be, m->acts.prefix_len, prefix_len, (size_t)B * sizeof(int));
    return 0;
}

void gpt_set_grpo_inputs(gpt_model *m, const float *lp_old, const float *lp_ref, const float *adv, int B,
                         int T) {
    exitrl_backend *be = m->backend;
    size_t bytes = sizeof(float) * (size_t)B * T;
    be->upload(be, m->acts.lp_old, lp_old, bytes);
    be->upload(be, m->acts.adv, adv, bytes);
    if (lp_ref) be->upload(be, m->acts.lp_ref, lp_ref, bytes);
    m->grpo_has_ref = lp_ref != NULL;
}

/* Sums of the per-token GRPO outputs, downloaded once per batch. */
static void grpo_stats(gpt_model *m, int B, int T, gpt_grpo_stats *st) {
    size_t BT = (size_t)B * T;
    float *h = malloc(sizeof(float) * BT * 5);
    int *tgt = malloc(sizeof(int) * BT);
    if (!h || !tgt) {
        fprintf(stderr, "exitrl: out of host memory for GRPO statistics\n");
        exit(1);
    }
    exitrl_backend *be = m->backend;
    be->download(be, h, m->acts.loss_tok, sizeof(float) * BT);
    be->download(be, h + BT, m->acts.loss_weights, sizeof(float) * BT);
    be->download(be, h + 2 * BT, m->acts.clipped, sizeof(float) * BT);
    be->download(be, h + 3 * BT, m->acts.lp_new, sizeof(float) * BT);
    be->download(be, h + 4 * BT, m->acts.lp_ref, sizeof(float) * BT);
    be->download(be, tgt, m->acts.targets, sizeof(int) * BT);
    double loss = 0, clip = 0, kl = 0;
    long n = 0;
    for (size_t i = 0; i < BT; i++) {
        if (tgt[i] < 0) continue;
        loss += (double)h[BT + i] * h[i];
        clip += h[2 * BT + i];
        if (m->grpo_has_ref) { /* k3 estimate of KL(pi || pi_ref) */
            double d = (double)h[4 * BT + i] - h[3 * BT + i];
            kl += exp(d) - d - 1.0;
        }
        n++;
    }
    st->loss = (float)loss;
    st->clip_frac = n ? (float)(clip / n) : 0.0f;
    st->kl = n ? (float)(kl / n) : 0.0f;
    st->tokens = n;
    free(h);
    free(tgt);
}

void gpt_forward_backward_grpo(gpt_model *m, int B, int T, const gpt_grpo_params *p, gpt_grpo_stats *st) {
    gpt_check_batch(m, B, T);
    gpt_forward_body(m, B, T);
    gpt_acts *a = &m->acts;
    m->backend->grpo_classifier(m->backend, a->logits, a->targets, a->lp_old, m->grpo_has_ref ? a->lp_ref : NULL, a->adv,
                           a->loss_weights, p->inv_temp, p->eps_low, p->eps_high, p->beta, a->lp_new, a->loss_tok,
                           a->clipped, B * T, m->cfg.vocab, m->cfg.vocab_padded);
    gpt_backward_body(m, B, T);
    if (st) grpo_stats(m, B, T, st);
}

void gpt_token_logprobs(gpt_model *m, int B, int T, float inv_temp, float *host_lp) {
    gpt_check_batch(m, B, T);
    exitrl_backend *be = m->backend;
    gpt_acts *a = &m->acts;
    size_t bytes = sizeof(float) * (size_t)B * T;
    gpt_forward_body(m, B, T);
    /* The GRPO classifier with zero weights and zero advantages computes the log-probs at the same
     * temperature as training and leaves an all-zero gradient: one code path for both. */
    be->zero(be, a->adv, bytes);
    be->zero(be, a->lp_old, bytes);
    be->zero(be, a->loss_weights, bytes);
    be->grpo_classifier(be, a->logits, a->targets, a->lp_old, NULL, a->adv, a->loss_weights, inv_temp, 0.2f, 0.2f,
                        0.0f, a->lp_new, NULL, NULL, B * T, m->cfg.vocab, m->cfg.vocab_padded);
    be->download(be, host_lp, a->lp_new, bytes);
}
