#include "model/model_io.h"

#include <stdio.h>
#include <stdlib.h>

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
    if (gpt_config_validate(cfg, why, sizeof why)) {
        snprintf(err, err_len, "%s: invalid model config in checkpoint: %s", r->path, why);
        return -1;
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
    if (!rc) gpt_load_params(m, host);
    if (!rc && with_optimizer) {
        int32_t step = 0;
        rc = ckpt_read(r, "adam_m", host, bytes, err, err_len);
        if (!rc) be->upload(be, m->adam_m, host, bytes);
        if (!rc) rc = ckpt_read(r, "adam_v", host, bytes, err, err_len);
        if (!rc) be->upload(be, m->adam_v, host, bytes);
        if (!rc) rc = ckpt_read(r, "adam_step", &step, sizeof step, err, err_len);
        if (!rc && step < 0) {
            snprintf(err, err_len, "%s: negative optimizer step %d", r->path, (int)step);
            rc = -1;
        }
        if (!rc) m->adam_step = step;
    }
    free(host);
    return rc;
}
