#include "setup.h"

#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend_select.h"

exitrl_backend *setup_backend(const exitrl_config *cfg) {
#ifdef _OPENMP
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
#endif
    return backend_open(cfg->device, cfg->fp32);
}

int setup_model_config(const exitrl_config *cfg, gpt_config *out) {
    if (gpt_config_preset(cfg->model, out)) return 2;
    if (cfg->n_layer) out->n_layer = cfg->n_layer;
    if (cfg->n_head) out->n_head = cfg->n_head;
    if (cfg->d_model) out->d_model = cfg->d_model;
    if (cfg->max_seq) out->max_seq = cfg->max_seq;
    char why[160];
    if (gpt_config_validate(out, why, sizeof why)) {
        fprintf(stderr, "exitrl: model config: %s\n", why);
        return 2;
    }
    return 0;
}
