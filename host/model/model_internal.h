/* Shared by model/model.c and model/optimizer.c only: the device work of a forward and a backward
 * over the batch set by gpt_set_batch, with no host copies or synchronisation (so a training step
 * can be captured as one graph). Not part of the policy's interface (model.h). */
#ifndef EXITRL_MODEL_INTERNAL_H
#define EXITRL_MODEL_INTERNAL_H
#include "model/model.h"

/* Aborts (an internal error) when B x T exceeds the activation capacity. */
void gpt_check_batch(const gpt_model *m, int B, int T);
/* Every layer and the final LayerNorm + logits into m->acts; does not touch the loss. */
void gpt_forward_body(gpt_model *m, int B, int T);
/* Backward from the dlogits a fused classifier left in the logits buffer; gradients accumulate. */
void gpt_backward_body(gpt_model *m, int B, int T);
#endif
