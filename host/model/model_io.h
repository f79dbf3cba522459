/* Saving and loading the policy (config, weights, AdamW state) in checkpoint sections. */
#ifndef EXITRL_MODEL_IO_H
#define EXITRL_MODEL_IO_H
#include "model/checkpoint.h"
#include "model/model.h"

/* Writes model_config, params, adam_m, adam_v and adam_step, plus the caller's extra sections
 * (run state, config text, ExIt buffer), atomically. Returns 0 or -1 with a reason in err. */
int model_save(const char *path, gpt_model *m, const ckpt_section *extra, int n_extra, char *err,
               size_t err_len);
/* Reads and validates the model_config section of an opened checkpoint. */
int model_read_config(ckpt_reader *r, gpt_config *cfg, char *err, size_t err_len);
/* Loads the weights (and, when with_optimizer, the AdamW moments and step) into a model created
 * with the checkpoint's config. */
int model_load(ckpt_reader *r, gpt_model *m, int with_optimizer, char *err, size_t err_len);
#endif
