#include "model/model_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/tokenizer.h"

/* Every value finite (and >= 0 when nonneg), and the padded vocabulary rows of wte zero (they
 * never get a gradient, so training keeps them at zero). 0, or -1 naming the first bad value. */
static int check_values(const char *path, const char *section, const gpt_model *m, const float *x,
                        int nonneg, char *err, size_t err_len) {
    static const char *const names[GPT_NUM_PARAM_TENSORS] = {
        "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
    const size_t pad_start = (size_t)m->cfg.vocab * m->cfg.d_model, pad_end = (size_t)m->cfg.vocab_padded * m->cfg.d_model;
    for (int t = 0; t < GPT_NUM_PARAM_TENSORS; t++)
        for (size_t i = 0; i < m->param_sizes[t]; i++) {
            float v = x[m->param_offsets[t] + i];
            const char *bad = !isfinite(v) ? "is not finite" : nonneg && v < 0 ? "is negative"
                            : t == P_WTE && i >= pad_start && i < pad_end && v != 0 ? "is in a padded vocabulary row, "
                                                                                     "which must be zero"
                                                                                   : NULL;
            if (bad) {
                snprintf(err, err_len, "%s: section '%s' field '%s[%zu]' = %g %s", path, section, names[t], i,
                         (double)v, bad);
                return -1;
            }
        }
    return 0;
}

int model_save(const char *path, gpt_model *m, const ckpt_section *extra, int n_extra, char *err,
               size_t err_len) {
    exitrl_backend *be = m->backend;
    size_t bytes = m->num_params * sizeof(float);
    if (n_extra < 0 || n_extra > CKPT_MAX_SECTIONS - 5) {
        snprintf(err, err_len, "too many checkpoint sections (%d)", n_extra);
        return -1;
    }
    float *host = malloc(3 * bytes);
    if (!host) {
        snprintf(err, err_len, "out of host memory (%zu bytes) saving a checkpoint", 3 * bytes);
        return -1;
    }
    be->download(be, host, m->master, bytes);
    be->download(be, host + m->num_params, m->adam_m, bytes);
    be->download(be, host + 2 * m->num_params, m->adam_v, bytes);
    /* Never write what model_load would refuse: a run that diverged keeps its previous checkpoint. */
    static const char *const names[3] = {"params", "adam_m", "adam_v"};
    for (int i = 0; i < 3; i++)
        if (check_values(path, names[i], m, host + i * m->num_params, i == 2, err, err_len)) {
            free(host);
            return -1;
        }
    const gpt_config *c = &m->cfg;
    int32_t cfg[6] = {c->n_layer, c->n_head, c->d_model, c->max_seq, c->vocab, c->vocab_padded};
    int32_t step = m->adam_step;
    ckpt_section s[CKPT_MAX_SECTIONS] = {
        {"model_config", cfg, sizeof cfg},
        {"params", host, bytes},
        {"adam_m", host + m->num_params, bytes},
        {"adam_v", host + 2 * m->num_params, bytes},
        {"adam_step", &step, sizeof step},
    };
    for (int i = 0; i < n_extra; i++) s[5 + i] = extra[i];
    int rc = ckpt_write(path, s, 5 + n_extra, err, err_len);
    free(host);
    return rc;
}

int model_read_config(ckpt_reader *r, gpt_config *cfg, char *err, size_t err_len) {
    int32_t v[6];
    if (ckpt_read(r, "model_config", v, sizeof v, err, err_len)) return -1;
    *cfg = (gpt_config){v[0], v[1], v[2], v[3], v[4], v[5]};
    char why[160];
    if (cfg->vocab != EXITRL_VOCAB || cfg->vocab_padded != EXITRL_VOCAB_PADDED) {
        snprintf(err, err_len, "%s: section 'model_config' field '%s' = %d: this tokenizer has vocab %d, padded to %d",
                 r->path, cfg->vocab != EXITRL_VOCAB ? "vocab" : "vocab_padded",
                 cfg->vocab != EXITRL_VOCAB ? cfg->vocab : cfg->vocab_padded, EXITRL_VOCAB, EXITRL_VOCAB_PADDED);
        return -1;
    }
    if (gpt_config_validate(cfg, why, sizeof why)) {
        snprintf(err, err_len, "%s: section 'model_config': %s", r->path, why);
        return -1;
    }
    /* The weight sections must fit this shape before anyone allocates a model for it. */
    const uint64_t bytes = (uint64_t)gpt_num_params(cfg) * sizeof(float);
    static const char *const weights[] = {"params", "adam_m", "adam_v", "ref_params"};
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++) {
        int64_t have = ckpt_section_size(r, weights[i]);
        if ((have < 0 && i == 0) || (have >= 0 && (uint64_t)have != bytes)) {
            snprintf(err, err_len,
                     "%s: section '%s' is %lld bytes, but section 'model_config' (n_layer %d, n_head %d, d_model %d, "
                     "max_seq %d) needs %llu",
                     r->path, weights[i], (long long)have, cfg->n_layer, cfg->n_head, cfg->d_model, cfg->max_seq,
                     (unsigned long long)bytes);
            return -1;
        }
    }
    return 0;
}

int model_load(ckpt_reader *r, gpt_model *m, int with_optimizer, char *err, size_t err_len) {
    exitrl_backend *be = m->backend;
    size_t bytes = m->num_params * sizeof(float);
    float *host = malloc(bytes);
    if (!host) {
        snprintf(err, err_len, "out of host memory (%zu bytes) loading a checkpoint", bytes);
        return -1;
    }
    int rc = ckpt_read(r, "params", host, bytes, err, err_len);
    if (!rc) rc = check_values(r->path, "params", m, host, 0, err, err_len);
    if (!rc) gpt_load_params(m, host);
    if (!rc && with_optimizer) {
        int32_t step = 0;
        rc = ckpt_read(r, "adam_m", host, bytes, err, err_len);
        if (!rc) rc = check_values(r->path, "adam_m", m, host, 0, err, err_len);
        if (!rc) be->upload(be, m->adam_m, host, bytes);
        if (!rc) rc = ckpt_read(r, "adam_v", host, bytes, err, err_len);
        if (!rc) rc = check_values(r->path, "adam_v", m, host, 1, err, err_len);
        if (!rc) be->upload(be, m->adam_v, host, bytes);
        if (!rc) rc = ckpt_read(r, "adam_step", &step, sizeof step, err, err_len);
        if (!rc && step < 0) {
            snprintf(err, err_len, "%s: section 'adam_step' = %d is negative", r->path, (int)step);
            rc = -1;
        }
        if (!rc) m->adam_step = step;
    }
    free(host);
    return rc;
}

int model_check_weights(const ckpt_reader *r, const char *section, const gpt_model *m, const float *host,
                        char *err, size_t err_len) {
    return check_values(r->path, section, m, host, 0, err, err_len);
}
