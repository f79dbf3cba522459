/* Shared start-up of every run: backend choice, CPU threads and the model config. */
#ifndef EXITRL_SETUP_H
#define EXITRL_SETUP_H
#include "run/config.h"
#include "model/model.h"

/* device: "auto" (CUDA when a GPU answers, else CPU), "cpu" or "cuda". Returns NULL with a message
 * on stderr when the requested backend cannot be opened. fp32_mode applies to CUDA only. */
exitrl_backend *backend_open(const char *device, int fp32_mode);
/* Opens the backend named by cfg->device (NULL with a message on failure) and sets CPU threads. */
exitrl_backend *setup_backend(const exitrl_config *cfg);
/* The model config from the preset plus the n_layer/n_head/d_model/max_seq overrides. Returns 0, or
 * 2 with a message naming the key. */
int setup_model_config(const exitrl_config *cfg, gpt_config *out);
#endif
