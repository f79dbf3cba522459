/* GRPO policy update from a batch of rollouts: packs each (prompt, completion) into a row, weights
 * its completion tokens by the chosen aggregation, and takes epochs x minibatches AdamW steps with
 * the fused GRPO loss (ops.h grpo_classifier). The reference policy's log-probs come from a second
 * weight set swapped into the same model, so no second model is allocated. */
#ifndef EXITRL_GRPO_H
#define EXITRL_GRPO_H
#include "model/model.h"
#include "run/config.h"
#include "rl/rollout.h"

typedef struct {
    int aggregation;       /* GRPO_AGG_*: per-sequence mean then mean | token mean | sum / (n x max_len) */
    int epochs, minibatches;
    int max_new_tokens;    /* the dr_grpo normaliser's max_len */
    gpt_grpo_params loss;  /* temperature, clip range, KL beta */
    gpt_adamw_params opt;
} grpo_options;

typedef struct {
    float loss, kl, clip_frac, grad_norm;
    long tokens;           /* completion tokens trained on (per epoch) */
} grpo_stats;

/* The reference policy: fp32 weights plus their compute copy (aliases when fp32). */
typedef struct {
    float *master;
    void *params;
} grpo_reference;

/* Allocates the reference weights as a copy of the model's current weights. Returns 0 or -1. */
int grpo_reference_init(grpo_reference *ref, gpt_model *m);
/* theta_ref <- alpha * theta + (1 - alpha) * theta_ref. */
void grpo_reference_update(grpo_reference *ref, gpt_model *m, float alpha);
void grpo_reference_free(grpo_reference *ref, gpt_model *m);

/* One update on the n completions of `ro` (rows 0..n-1) with advantages adv[n]. The model must
 * have been created with batch capacity >= ceil(n / minibatches) rows of T >= the longest row.
 * ref may be NULL when loss.beta == 0. Returns 0, or -1 with a message (bad shapes). */
int grpo_update(gpt_model *m, const grpo_reference *ref, const rollout_output *ro, int n, const float *adv,
                const grpo_options *o, grpo_stats *st);
#endif
