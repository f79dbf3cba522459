/* Saving and loading the policy (config, weights, AdamW state) in checkpoint sections. */
#ifndef EXITRL_MODEL_IO_H
#define EXITRL_MODEL_IO_H
#include "model/checkpoint.h"
#include "model/model.h"

/* Writes model_config, params, adam_m, adam_v and adam_step, plus the caller's extra sections
 * (run state, config text, ExIt buffer), atomically. Returns 0 or -1 with a reason in err; also
 * when a weight or moment is not finite (a diverged run), so that nothing model_load refuses is
 * ever written and the previous checkpoint stays. */
int model_save(const char *path, gpt_model *m, const ckpt_section *extra, int n_extra, char *err,
               size_t err_len);
/* Reads and validates the model_config section of an opened checkpoint: vocab and vocab_padded
 * those of the tokenizer, the shape valid (gpt_config_validate), and the weight sections present
 * (params, and adam_m, adam_v, ref_params when there) exactly the size that shape needs, so a
 * caller may allocate a model from cfg. Returns 0, or -1 with a message naming the file, the
 * section and the field. */
int model_read_config(ckpt_reader *r, gpt_config *cfg, char *err, size_t err_len);
/* Loads the weights (and, when with_optimizer, the AdamW moments and step) into a model created
 * with the checkpoint's config. Every value is checked before use: finite, adam_v >= 0, wte's
 * padded vocabulary rows zero, adam_step >= 0 (its upper bound is the command's: it knows the
 * steps taken). Returns 0, or -1 with a message naming the section and the value. */
int model_load(ckpt_reader *r, gpt_model *m, int with_optimizer, char *err, size_t err_len);
/* The check model_load applies to params, for other fp32 weight sets of the same layout (the RL
 * reference policy) read from section `section` into host[num_params]. */
int model_check_weights(const ckpt_reader *r, const char *section, const gpt_model *m, const float *host,
                        char *err, size_t err_len);
#endif
