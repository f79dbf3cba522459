/* Shared start-up of every run: the backend (CUDA when compiled in and a GPU answers, else the CPU
 * reference; when CUDA is not compiled in, its entry points are defined here and say so), CPU
 * threads and the model config. */
#include "run/setup.h"

#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dist/dist.h"

#ifndef EXITRL_HAVE_CUDA
exitrl_backend *exitrl_backend_cuda_create(int device, int fp32_mode, char *why, size_t why_len) {
    (void)device;
    (void)fp32_mode;
    if (why && why_len) snprintf(why, why_len, "this build has no CUDA backend (nvcc was not found)");
    return NULL;
}
int exitrl_cuda_available(void) { return 0; }
void exitrl_cuda_info(char *buf, size_t len) {
    snprintf(buf, len, "CUDA backend: not compiled in (nvcc was not found at build time)\n");
}
#endif

exitrl_backend *backend_open(const char *device, int fp32_mode) {
    char why[256] = "";
    if (strcmp(device, "cpu") == 0) return exitrl_backend_cpu_create();
    if (strcmp(device, "cuda") == 0) {
        exitrl_backend *be = exitrl_backend_cuda_create(dist_local_rank(), fp32_mode, why, sizeof why);
        if (!be) fprintf(stderr, "exitrl: --device cuda: %s\n", why);
        return be;
    }
    if (strcmp(device, "auto") == 0) {
        if (exitrl_cuda_available()) {
            exitrl_backend *be = exitrl_backend_cuda_create(dist_local_rank(), fp32_mode, why, sizeof why);
            if (be) return be;
            fprintf(stderr, "exitrl: CUDA backend unavailable (%s); using the CPU backend\n", why);
        }
        return exitrl_backend_cpu_create();
    }
    fprintf(stderr, "exitrl: unknown device '%s' (expected auto, cpu or cuda)\n", device);
    return NULL;
}

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
